"""Task-adaptive pretraining's batches (vbert.data.task_adaptive): masks re-drawn each epoch, own lengths."""

from __future__ import annotations

import numpy as np

from vbert.data.instances import InstanceConfig, SpecialIds
from vbert.data.task_adaptive import batches_per_epoch, epoch_batches, task_adaptive_dataset
from vbert.text.encoding import Row

CLS, SEP, MASK = 1, 2, 3
SPECIAL = SpecialIds(CLS, SEP, MASK, 100, tuple(False for _ in range(100)))
CONFIG = InstanceConfig(
    max_seq_length=32,
    max_predictions_per_seq=4,
    masked_lm_prob=0.15,
    short_seq_prob=0.0,
    dupe_factor=1,
    do_whole_word_mask=False,
    exact_google_rng=False,
)


def single(*ids: int) -> Row:
    return Row([CLS, *ids, SEP], len(ids) + 2)


def pair(a: list[int], b: list[int]) -> Row:
    return Row([CLS, *a, SEP, *b, SEP], len(a) + 2)


ROWS = [single(*range(10, 10 + n)) for n in (3, 20, 7, 12, 1, 25)] + [pair([40, 41, 42], [50, 51])]


def unmasked(batch: dict) -> list[list[int]]:
    """The batch's rows with the masked positions put back, without padding."""
    rows = []
    for ids, mask, positions, labels, weights in zip(
        batch["input_ids"],
        batch["input_mask"],
        batch["masked_lm_positions"],
        batch["masked_lm_ids"],
        batch["masked_lm_weights"],
        strict=True,
    ):
        restored = ids.copy()
        real = weights > 0
        restored[positions[real]] = labels[real]
        rows.append(restored[mask > 0].tolist())
    return rows


def test_every_text_once_an_epoch_each_batch_padded_to_its_longest():
    batches = epoch_batches(ROWS, CONFIG, SPECIAL, batch_size=3, seed=7, epoch=0)
    assert len(batches) == batches_per_epoch(len(ROWS), 3) == 3
    seen = sorted(row for batch in batches for row in unmasked(batch))
    assert seen == sorted(row.ids for row in ROWS)
    for batch in batches:
        assert batch["input_ids"].shape[1] == batch["input_mask"].sum(1).max()  # its longest, not max_seq_length
        assert batch["masked_lm_positions"].shape[1] == CONFIG.max_predictions_per_seq
        assert batch["next_sentence_labels"].shape == (len(batch["input_ids"]), 1)


def test_masks_follow_googles_count_and_never_touch_cls_or_sep():
    for batch in epoch_batches(ROWS, CONFIG, SPECIAL, batch_size=4, seed=7, epoch=0):
        lengths = batch["input_mask"].sum(1)
        counts = batch["masked_lm_weights"].sum(1)
        expected = np.minimum(CONFIG.max_predictions_per_seq, np.maximum(1, np.rint(lengths * 0.15)))
        np.testing.assert_array_equal(counts, expected)
        real = batch["masked_lm_weights"] > 0
        assert not np.isin(batch["masked_lm_ids"][real], [CLS, SEP]).any()


def test_segment_ids_mark_the_second_text_of_a_pair():
    batches = epoch_batches(ROWS, CONFIG, SPECIAL, batch_size=8, seed=7, epoch=0)
    (batch,) = batches
    index = next(i for i, row in enumerate(unmasked(batch)) if row[:2] == [CLS, 40])
    assert batch["segment_ids"][index].tolist()[:8] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert batch["segment_ids"][index].sum() == 3 and batch["segment_ids"].sum() == 3  # singles are all segment 0


def test_masks_are_drawn_anew_each_epoch_and_the_same_for_the_same_seed_and_epoch():
    def masked_positions(seed: int, epoch: int) -> dict[tuple, tuple]:
        out = {}
        for batch in epoch_batches(ROWS, CONFIG, SPECIAL, batch_size=3, seed=seed, epoch=epoch):
            for row, positions, weights in zip(
                unmasked(batch), batch["masked_lm_positions"], batch["masked_lm_weights"], strict=True
            ):
                out[tuple(row)] = tuple(positions[weights > 0])
        return out

    assert masked_positions(7, 0) == masked_positions(7, 0)
    assert masked_positions(7, 0) != masked_positions(7, 1)
    assert masked_positions(7, 0) != masked_positions(8, 0)


def test_the_dataset_holds_every_epoch():
    dataset = task_adaptive_dataset(ROWS, CONFIG, SPECIAL, batch_size=3, seed=7, epochs=2)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == 2 * 3
    assert sum(len(b["input_ids"]) for b in batches) == 2 * len(ROWS)
    assert {b["input_ids"].dtype for b in batches} == {np.dtype(np.int32)}
