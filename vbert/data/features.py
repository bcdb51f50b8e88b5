"""The pretraining features: one schema for the TFRecords the tfrecords stage writes and the pretrain stage reads.

The names, types and lengths are those of google-research/bert's run_pretraining.py `name_to_features`, so Google's
own TFRecord files read the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

FEATURES = {  # name: (dtype, length key)
    "input_ids": ("int64", "max_seq_length"),
    "input_mask": ("int64", "max_seq_length"),
    "segment_ids": ("int64", "max_seq_length"),
    "masked_lm_positions": ("int64", "max_predictions_per_seq"),
    "masked_lm_ids": ("int64", "max_predictions_per_seq"),
    "masked_lm_weights": ("float32", "max_predictions_per_seq"),
    "next_sentence_labels": ("int64", 1),
}


def feature_lengths(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tuple[str, int]]:
    """Each feature's dtype and length for one phase."""
    sizes = {"max_seq_length": max_seq_length, "max_predictions_per_seq": max_predictions_per_seq}
    return {name: (dtype, sizes.get(length, length)) for name, (dtype, length) in FEATURES.items()}


def tf_schema(max_seq_length: int, max_predictions_per_seq: int) -> dict:
    """The schema for `tf.io.parse_single_example` (Google's `name_to_features`)."""
    import tensorflow as tf

    lengths = feature_lengths(max_seq_length, max_predictions_per_seq)
    return {name: tf.io.FixedLenFeature([length], getattr(tf, dtype)) for name, (dtype, length) in lengths.items()}


def pretraining_dataset(
    files: Sequence[str | os.PathLike],
    max_seq_length: int,
    max_predictions_per_seq: int,
    batch_size: int,
    *,
    training: bool,
    seed: int = 12345,
):
    """A tf.data.Dataset of batches of the features (int32), shuffled and repeated when `training`."""
    import tensorflow as tf

    schema = tf_schema(max_seq_length, max_predictions_per_seq)

    def parse(record):
        example = tf.io.parse_single_example(record, schema)
        return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}

    dataset = tf.data.TFRecordDataset([str(f) for f in files])
    if training:
        dataset = dataset.shuffle(10_000, seed=seed).repeat()
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
