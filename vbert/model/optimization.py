"""Google's optimization.py in Keras 3: AdamW (weight decay 0.01, none on LayerNorm and bias), epsilon 1e-6,
global clip-norm 1.0, and a linear warm-up to the learning rate followed by a linear decay to 0."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="vbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Google's schedule: linear warm-up to `learning_rate`, then linear decay to 0 at `num_train_steps`."""

    def __init__(self, learning_rate: float, num_train_steps: int, num_warmup_steps: int):
        self.learning_rate = learning_rate
        self.num_train_steps = num_train_steps
        self.num_warmup_steps = num_warmup_steps

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
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
        }


def make_optimizer(learning_rate: float, num_train_steps: int, num_warmup_steps: int) -> keras.optimizers.AdamW:
    """AdamW as google-research/bert's optimization.py (decay 0.01, eps 1e-6, clip-norm 1.0)."""
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, num_train_steps, num_warmup_steps),
        weight_decay=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        global_clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=["layer_norm", "LayerNorm", "bias", "gamma", "beta"])
    return optimizer
