"""Task-adaptive pretraining's data (TAPT, Gururangan et al. 2020, "Don't Stop Pretraining"): masked LM on the
task's own train texts (never eval or test), many epochs, the masks drawn anew every epoch (dynamic masking, as
RoBERTa's), each text at its own length (batches of similar lengths, padded to their longest, not to 128).

Masking is the tfrecords stage's rule (`vbert.data.masking.mask_batch`: Google's, whole-word masking included)
with that stage's settings for the phase, so TAPT and domain pretraining predict the same kind of thing. Texts
are single segments ([CLS] a [SEP]) or the task's pairs ([CLS] a [SEP] b [SEP]); there is no next-sentence
target, so the phase trains on the masked-LM loss alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vbert.data.instances import InstanceConfig, SpecialIds
from vbert.data.masking import UnmaskedBatch, mask_batch, pack_rows
from vbert.text.encoding import Encoder, Row, length_grouped_batches
from vbert.text.tasks import read_split, split_file
from vbert.text.tokenization import load_tokenizer, load_vocab, tokenizer_files


def task_train_rows(task_dir: Path, vocab_dir: Path, max_seq_length: int) -> list[Row]:
    """The task's train texts (pairs joined as in fine-tuning), encoded with the vocabulary of `vocab_dir`, cut
    to `max_seq_length` pieces."""
    split = read_split(split_file(task_dir, "train"))
    return Encoder(load_tokenizer(vocab_dir), max_seq_length).rows(split.texts_a, split.texts_b)[0]


def special_ids(vocab_dir: Path) -> SpecialIds:
    return SpecialIds.from_vocab(load_vocab(tokenizer_files(vocab_dir)[0]))


def task_masking(max_seq_length: int) -> InstanceConfig:
    """BERT's masking for task texts outside a pretraining phase (end-task-aware fine-tuning): 15% of the pieces,
    whole words together, at most 15% of `max_seq_length` predictions per text (Google's 20 of 128)."""
    return InstanceConfig(
        max_seq_length=max_seq_length,
        max_predictions_per_seq=max(1, -(-15 * max_seq_length // 100)),
        masked_lm_prob=0.15,
        short_seq_prob=0.0,
        dupe_factor=1,
        do_whole_word_mask=True,
        exact_google_rng=False,
    )


def masked_features(
    rows: list[Row], config: InstanceConfig, special: SpecialIds, generator: np.random.Generator
) -> dict[str, np.ndarray]:
    """`rows` masked anew (Google's rule, `vbert.data.masking.mask_batch`) and padded to the longest of them: the
    pretrainer's features (input_ids masked, input_mask, segment_ids, masked_lm_positions/ids/weights)."""
    lengths = np.fromiter((len(row.ids) for row in rows), np.int64, len(rows))
    width = int(lengths.max())
    first = np.fromiter((row.first_segment for row in rows), np.int64, len(rows))
    unmasked = UnmaskedBatch(pack_rows([row.ids for row in rows], width), lengths, first, np.zeros(len(rows), bool))
    masked = mask_batch(unmasked, config, special, generator)
    column = np.arange(width)[None, :]
    slots = np.arange(config.max_predictions_per_seq)[None, :]
    real = column < lengths[:, None]
    return {
        "input_ids": masked.input_ids.astype(np.int32, copy=False),
        "input_mask": real.astype(np.int32),
        "segment_ids": ((column >= first[:, None]) & real).astype(np.int32),
        "masked_lm_positions": masked.masked_lm_positions.astype(np.int32, copy=False),
        "masked_lm_ids": masked.masked_lm_ids.astype(np.int32, copy=False),
        "masked_lm_weights": (slots < masked.masked_counts[:, None]).astype(np.float32),
    }


def epoch_batches(
    rows: list[Row], config: InstanceConfig, special: SpecialIds, batch_size: int, seed: int, epoch: int
) -> list[dict[str, np.ndarray]]:
    """One epoch of masked-LM batches over `rows`: every row masked anew (the draw depends on `seed` and `epoch`
    only), batches of similar lengths in a random order, each padded to its longest row."""
    generator = np.random.default_rng([seed, epoch])
    batches = length_grouped_batches([len(row.ids) for row in rows], batch_size, generator)
    return [
        masked_features([rows[i] for i in batch], config, special, generator)
        | {"next_sentence_labels": np.zeros((len(batch), 1), np.int32)}
        for batch in batches
    ]


def batches_per_epoch(rows: int, batch_size: int) -> int:
    return -(-rows // batch_size)


def task_adaptive_dataset(
    rows: list[Row], config: InstanceConfig, special: SpecialIds, batch_size: int, seed: int, epochs: int
):
    """A tf.data.Dataset of `epochs` epochs of `epoch_batches`, made lazily (an epoch's masks when it starts)."""
    import tensorflow as tf

    def generate() -> Iterator[dict[str, np.ndarray]]:
        for epoch in range(epochs):
            yield from epoch_batches(rows, config, special, batch_size, seed, epoch)

    predictions = config.max_predictions_per_seq
    spec = {name: tf.TensorSpec((None, None), tf.int32) for name in ("input_ids", "input_mask", "segment_ids")}
    spec |= {
        "masked_lm_positions": tf.TensorSpec((None, predictions), tf.int32),
        "masked_lm_ids": tf.TensorSpec((None, predictions), tf.int32),
        "masked_lm_weights": tf.TensorSpec((None, predictions), tf.float32),
        "next_sentence_labels": tf.TensorSpec((None, 1), tf.int32),
    }
    return tf.data.Dataset.from_generator(generate, output_signature=spec)
