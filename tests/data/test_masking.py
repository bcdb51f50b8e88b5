"""Chunk-at-once masking: the same rule as Google's, checked against a plain Python greedy and by its statistics."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.helpers import google_flags
from vbert.data.instances import ExampleEncoder, SpecialIds, TrainingInstance
from vbert.data.masking import UnmaskedBatch, _greedy_accept, create_training_batch, mask_batch, pack_rows
from vbert.text.tokenization import Vocab

# ids: 0 [PAD] 1 [UNK] 2 [CLS] 3 [SEP] 4 [MASK] 5 the 6 file 7 ##system 8 ##s 9 is 10 full
SPECIAL = SpecialIds.from_vocab(
    Vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "file", "##system", "##s", "is", "full"])
)


def python_greedy(sizes: list[int], budget: int) -> list[bool]:
    """Google's loop: stop when full, skip a group that would overflow."""
    taken, used = [], 0
    for size in sizes:
        fits = size > 0 and used < budget and used + size <= budget
        taken.append(fits)
        used += size if fits else 0
    return taken


def test_greedy_accept_matches_googles_loop():
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 5, size=(2000, 30)) * (rng.random((2000, 30)) < 0.9)
    budget = rng.integers(1, 25, size=2000)
    accepted = _greedy_accept(sizes, budget)
    for row in range(2000):
        assert accepted[row].tolist() == python_greedy(sizes[row].tolist(), int(budget[row])), row


def batch_of(rows: list[list[int]], first_segments: list[int]) -> UnmaskedBatch:
    return UnmaskedBatch(
        pack_rows(rows, 24), np.array([len(r) for r in rows]), np.array(first_segments), np.zeros(len(rows), dtype=bool)
    )


def test_never_masks_cls_sep_or_padding_and_counts_exactly():
    rows = [[2, 5, 6, 9, 10, 3, 5, 6, 9, 10, 5, 3]] * 500  # 12 tokens, [SEP] at 5 and 11
    config = google_flags(max_predictions_per_seq=4, masked_lm_prob=0.3)
    masked = mask_batch(batch_of(rows, [6] * 500), config, SPECIAL, np.random.default_rng(1))
    assert masked.masked_counts.tolist() == [4] * 500  # min(4, round(12 * 0.3) = 4)
    for i in range(500):
        positions = masked.masked_lm_positions[i].tolist()
        assert positions == sorted(positions) and not {0, 5, 11} & set(positions)
        assert all(1 <= p <= 10 for p in positions)
        assert masked.masked_lm_ids[i].tolist() == [rows[i][p] for p in positions]
        untouched = set(range(12)) - set(positions)
        assert all(masked.input_ids[i, j] == rows[i][j] for j in untouched)
        assert masked.input_ids[i, 12:].tolist() == [0] * 12


def test_whole_words_are_masked_whole():
    rows = [[2, 6, 7, 8, 9, 5, 3, 6, 7, 3]] * 400  # "filesystems is the" / "filesystem"
    config = google_flags(max_predictions_per_seq=20, masked_lm_prob=0.5, do_whole_word_mask=True)
    masked = mask_batch(batch_of(rows, [7] * 400), config, SPECIAL, np.random.default_rng(2))
    words = [{1, 2, 3}, {4}, {5}, {7, 8}]
    for i in range(400):
        chosen = set(masked.masked_lm_positions[i, : masked.masked_counts[i]].tolist())
        assert all(word <= chosen or not word & chosen for word in words)
        assert len(chosen) <= 5  # round(10 * 0.5)


def test_positions_are_uniform_and_replacements_80_10_10():
    rows = [[2, *[5] * 9, 3, *[9] * 10, 3]] * 20000
    config = google_flags(max_predictions_per_seq=3, masked_lm_prob=0.15)
    masked = mask_batch(batch_of(rows, [11] * 20000), config, SPECIAL, np.random.default_rng(3))
    picked = np.bincount(masked.masked_lm_positions.ravel(), minlength=22)
    assert picked[[0, 10, 21]].tolist() == [0, 0, 0]
    assert np.allclose(picked[1:10] / 60000, 1 / 19, atol=0.004) and np.allclose(
        picked[11:21] / 60000, 1 / 19, atol=0.004
    )
    rows_index = np.repeat(np.arange(20000), 3)
    output = masked.input_ids[rows_index, masked.masked_lm_positions.ravel()]
    labels = masked.masked_lm_ids.ravel()
    assert np.mean(output == 4) == pytest.approx(0.8 + 0.1 / 11, abs=0.006)
    assert np.mean(output == labels) == pytest.approx(0.1 + 0.1 / 11, abs=0.006)


def test_batch_encoding_equals_instance_encoding():
    documents = [[[5, 6, 9, 10, 7], [5, 6, 7, 8], [9, 10, 5]] for _ in range(40)]
    config = google_flags(max_seq_length=16, max_predictions_per_seq=3, dupe_factor=2, do_whole_word_mask=True)
    batch = create_training_batch(documents, config, SPECIAL, random.Random(5), np.random.default_rng(5))
    encoder = ExampleEncoder(16, 3, SPECIAL.vocab_size)
    instances = []
    for i in range(len(batch.lengths)):
        length, first, count = int(batch.lengths[i]), int(batch.first_segment[i]), int(batch.masked_counts[i])
        instances.append(
            TrainingInstance(
                batch.input_ids[i, :length].tolist(),
                [0] * first + [1] * (length - first),
                batch.masked_lm_positions[i, :count].tolist(),
                batch.masked_lm_ids[i, :count].tolist(),
                bool(batch.is_random_next[i]),
            )
        )
    assert encoder.encode_arrays(batch) == encoder.encode_batch(instances)
    again = create_training_batch(documents, config, SPECIAL, random.Random(5), np.random.default_rng(5))
    assert all(np.array_equal(a, b) for a, b in zip(batch, again, strict=True))
