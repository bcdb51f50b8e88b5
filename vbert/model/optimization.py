"""Google's optimization.py in Keras 3: AdamW (weight decay 0.01, none on LayerNorm and bias), epsilon 1e-6,
global clip-norm 1.0, and a linear warm-up to the learning rate followed by a linear decay to 0."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="vbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Google's schedule: linear warm-up to `learning_rate`, then linear decay to 0 at `num_train_steps` updates.

    Keras calls the schedule with its count of batches; with gradient accumulation an update takes
    `batches_per_update` of them, and the update made after batch b is update b // batches_per_update."""

    def __init__(self, learning_rate: float, num_train_steps: int, num_warmup_steps: int, batches_per_update: int = 1):
        self.learning_rate = learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps
        self.batches_per_update = batches_per_update

    def __call__(self, step):
        step = keras.ops.cast(keras.ops.floor_divide(step, self.batches_per_update), "float32")
        decayed = self.learning_rate * keras.ops.maximum(0.0, 1.0 - step / float(self.num_train_steps))
        if not self.num_warmup_steps:
            return decayed
        warmup = self.learning_rate * step / float(self.num_warmup_steps)
        return keras.ops.where(step < self.num_warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "num_train_steps": self.num_train_steps,
            "num_warmup_steps": self.num_warmup_steps,
            "batches_per_update": self.batches_per_update,
        }


def make_optimizer(
    learning_rate: float,
    num_train_steps: int,
    num_warmup_steps: int,
    *,
    gradient_accumulation_steps: int = 1,
    no_decay: tuple[str, ...] = (),
) -> keras.optimizers.AdamW:
    """AdamW as google-research/bert's optimization.py (decay 0.01, eps 1e-6, clip-norm 1.0), over
    `num_train_steps` updates. With `gradient_accumulation_steps` N, each update averages the gradients of N
    batches (Keras applies them every N-th call, clipping the average). `no_decay`: more variable names to keep out
    of weight decay."""
    accumulate = gradient_accumulation_steps if gradient_accumulation_steps > 1 else None
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, num_train_steps, num_warmup_steps, gradient_accumulation_steps),
        weight_decay=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=1.0,
        gradient_accumulation_steps=accumulate,
    )
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "LayerNorm", "bias", "gamma", "beta", *no_decay])
    return optimizer
