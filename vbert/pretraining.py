"""Pretraining pieces after google-research/bert's run_pretraining.py and optimization.py, in Keras 3 on TF.

* `pretraining_dataset`: Google's TFRecord features (ours or Google's own files) as batches for Keras.
* `WarmupLinearDecay` + `make_optimizer`: AdamW, no weight decay on LayerNorm and bias, linear warm-up then
  linear decay to 0, global clip-norm 1.0, epsilon 1e-6, weight decay 0.01, as optimization.py.
* `BertPretrainer`: backbone + MLM/NSP heads with Google's losses and eval metrics (masked_lm_accuracy,
  masked_lm_loss, next_sentence_accuracy, next_sentence_loss).
* `reinitialise_replaced_rows`: embedding rows of the tokens a vocabulary variant replaced.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from vbert.modeling import BertConfig, build_backbone, build_pretraining_heads

FEATURE_NAMES = (
    "input_ids",
    "input_mask",
    "segment_ids",
    "masked_lm_positions",
    "masked_lm_ids",
    "masked_lm_weights",
    "next_sentence_labels",
)


def feature_schema(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """Google's run_pretraining.py `name_to_features`."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def pretraining_dataset(
    files: Sequence[str | os.PathLike],
    max_seq_length: int,
    max_predictions_per_seq: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 12345,
) -> tf.data.Dataset:
    """Batches of Google's pretraining features (int32), shuffled and repeated when `training`."""
    schema = feature_schema(max_seq_length, max_predictions_per_seq)

    def parse(record):
        example = tf.io.parse_single_example(record, schema)
        return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}

    dataset = tf.data.TFRecordDataset([str(f) for f in files])
    if training:
        dataset = dataset.shuffle(10_000, seed=seed).repeat()
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


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


class BertPretrainer(keras.Model):
    """Backbone + heads; trains on the sum of the masked-LM and next-sentence losses, as Google's."""

    def __init__(self, config: BertConfig, **kwargs):
        super().__init__(**kwargs)
        self.bert_config = config
        self.backbone = build_backbone(config)
        self.pretraining_heads = build_pretraining_heads(config, self.backbone)
        self.tracked = {
            name: keras.metrics.Mean(name=name)
            for name in ("loss", "masked_lm_loss", "masked_lm_accuracy", "next_sentence_loss", "next_sentence_accuracy")
        }

    @property
    def metrics(self):
        return list(self.tracked.values())

    def call(self, features, training=False):
        outputs = self.backbone(
            {
                "token_ids": features["input_ids"],
                "segment_ids": features["segment_ids"],
                "padding_mask": features["input_mask"],
            },
            training=training,
        )
        return self.pretraining_heads(
            outputs["sequence_output"], outputs["pooled_output"], features["masked_lm_positions"]
        )

    def _pretraining_losses(self, features, training):
        mlm_logits, nsp_logits = self(features, training=training)
        weights = features["masked_lm_weights"]
        mlm_per_position = keras.losses.sparse_categorical_crossentropy(
            features["masked_lm_ids"], mlm_logits, from_logits=True
        )
        mlm_loss = keras.ops.sum(mlm_per_position * weights) / (keras.ops.sum(weights) + 1e-5)
        nsp_labels = features["next_sentence_labels"][:, 0]
        nsp_loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(nsp_labels, nsp_logits, from_logits=True)
        )
        mlm_hits = keras.ops.cast(keras.ops.argmax(mlm_logits, -1) == features["masked_lm_ids"], "float32")
        nsp_hits = keras.ops.cast(keras.ops.argmax(nsp_logits, -1) == nsp_labels, "float32")
        return mlm_loss + nsp_loss, {
            "masked_lm_loss": (mlm_loss, None),
            "masked_lm_accuracy": (
                keras.ops.sum(mlm_hits * weights) / (keras.ops.sum(weights) + 1e-5),
                keras.ops.sum(weights),
            ),
            "next_sentence_loss": (nsp_loss, None),
            "next_sentence_accuracy": (keras.ops.mean(nsp_hits), None),
        }

    def _update_metrics(self, loss, parts):
        self.tracked["loss"].update_state(loss)
        for name, (value, weight) in parts.items():
            self.tracked[name].update_state(value, sample_weight=weight)
        results = {name: metric.result() for name, metric in self.tracked.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3.15 reduces step outputs across workers along axis 0, which a scalar lacks
            results = {name: keras.ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3.15 builds the model from a first batch it reduces across replicas, which fails under
        # MultiWorkerMirroredStrategy for a dict of features; the stage builds the model before training.
        built = all(layer.built for layer in self._flatten_layers())
        if built and self.optimizer is not None and self.optimizer.built:
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, features):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss, parts = self._pretraining_losses(features, training=True)
            # Under tf.distribute the optimizer sums the replicas' gradients: scale so that the sum is the
            # mean over replicas, as Google's CrossShardOptimizer does on TPU.
            scaled = loss / replicas if replicas > 1 else loss
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return self._update_metrics(loss, parts)

    def test_step(self, features):
        loss, parts = self._pretraining_losses(features, training=False)
        return self._update_metrics(loss, parts)


def reinitialise_replaced_rows(
    embeddings: np.ndarray,
    replaced: Sequence[dict],
    mode: str = "mean",
    initializer_range: float = 0.02,
    seed: int = 12345,
) -> np.ndarray:
    """Rows of replaced tokens: the mean of the old rows of the new token's pieces (default) or random."""
    if mode not in ("mean", "random"):
        raise ValueError(f"unknown embedding initialisation {mode!r} (mean or random)")
    result = embeddings.copy()
    rng = np.random.default_rng(seed)
    for entry in replaced:
        if mode == "mean" and entry["old_piece_ids"]:
            result[entry["id"]] = embeddings[entry["old_piece_ids"]].mean(axis=0)
        else:
            result[entry["id"]] = np.clip(
                rng.normal(0, initializer_range, embeddings.shape[1]), -2 * initializer_range, 2 * initializer_range
            )
    return result
