"""Masked-LM predictions for a whole chunk of instances at once, with numpy.

The same rule as Google's `create_masked_lm_predictions`, including whole-word masking: candidate positions are
all but [CLS] and the [SEP]s; with whole-word masking a `##` piece joins the group before it (the first candidate
always opens one). Groups are taken in a uniformly random order and each is masked whole if it still fits in
`num_to_predict = min(max_predictions_per_seq, max(1, round(length * masked_lm_prob)))`, else skipped; each
masked position becomes [MASK] (80%), stays (10%) or becomes a uniformly random id (10%).

The greedy "take it if it fits, else skip it" runs as a few vectorised passes: each pass accepts the longest run of
remaining groups (in random order) that fits and rejects the first group that does not.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import numpy as np

from vbert.data.instances import Document, InstanceConfig, SpecialIds, pack_document


class UnmaskedBatch(NamedTuple):
    input_ids: np.ndarray  # [N, max_seq_length] int32, zero-padded: [CLS] A [SEP] B [SEP]
    lengths: np.ndarray  # [N]
    first_segment: np.ndarray  # [N] tokens with segment id 0: len(A) + 2
    is_random_next: np.ndarray  # [N] bool


class MaskedBatch(NamedTuple):
    input_ids: np.ndarray  # [N, max_seq_length] after masking
    lengths: np.ndarray
    first_segment: np.ndarray
    is_random_next: np.ndarray
    masked_lm_positions: np.ndarray  # [N, max_predictions_per_seq], ascending, zero-padded
    masked_lm_ids: np.ndarray  # [N, max_predictions_per_seq], the original ids, zero-padded
    masked_counts: np.ndarray  # [N]


def pack_rows(rows: list[list[int]], width: int) -> np.ndarray:
    """Zero-padded [len(rows), width] int32 array of ragged rows."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    values: list[int] = []
    for row in rows:
        values.extend(row)
    out = np.zeros((len(rows), width), dtype=np.int32)
    out[np.arange(width)[None, :] < lengths[:, None]] = values
    return out


def _group_ids(batch: UnmaskedBatch, config: InstanceConfig, special: SpecialIds) -> tuple[np.ndarray, np.ndarray]:
    """Per position, its candidate group (-1 for [CLS], [SEP] and padding); and the groups per row."""
    column = np.arange(batch.input_ids.shape[1])[None, :]
    candidate = (column >= 1) & (column < batch.lengths[:, None] - 1) & (column != batch.first_segment[:, None] - 1)
    starts = candidate.copy()
    if config.do_whole_word_mask:
        continuation = np.asarray(special.is_continuation, dtype=bool)[batch.input_ids]
        starts &= ~continuation | (column == 1)
    group = np.cumsum(starts, axis=1) - 1
    group[~candidate] = -1
    return group, starts.sum(axis=1)


def _greedy_accept(sizes: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Google's greedy pass over groups in the given order: take a group if it still fits, else skip it.

    Each round takes, per row, the longest run of undecided groups that fits, then drops every undecided group
    larger than what is left (it could never fit later either), so a few rounds settle every row.
    """
    accepted = np.zeros(sizes.shape, dtype=bool)
    undecided = sizes > 0
    used = np.zeros(len(sizes), dtype=np.int64)
    column = np.arange(sizes.shape[1])[None, :]
    while undecided.any():
        running = used[:, None] + np.cumsum(np.where(undecided, sizes, 0), axis=1)
        overflow = undecided & (running > budget[:, None])
        first_overflow = np.where(overflow.any(axis=1), overflow.argmax(axis=1), sizes.shape[1])
        take = undecided & (column < first_overflow[:, None])
        accepted |= take
        used += np.where(take, sizes, 0).sum(axis=1)
        undecided &= ~take & (sizes <= (budget - used)[:, None])
    return accepted


def mask_batch(
    batch: UnmaskedBatch, config: InstanceConfig, special: SpecialIds, generator: np.random.Generator
) -> MaskedBatch:
    """Choose and apply the masked-LM predictions of every instance in `batch`."""
    n, width = batch.input_ids.shape
    predictions = config.max_predictions_per_seq
    group, groups_per_row = _group_ids(batch, config, special)
    max_groups = max(1, int(groups_per_row.max(initial=0)))
    rows = np.repeat(np.arange(n, dtype=np.int32), width).reshape(n, width)
    in_group = group >= 0
    sizes = np.bincount(rows[in_group] * max_groups + group[in_group], minlength=n * max_groups)
    sizes = sizes.reshape(n, max_groups)

    keys = generator.random((n, max_groups))
    keys[sizes == 0] = np.inf
    order = np.argsort(keys, axis=1)
    budget = np.minimum(predictions, np.maximum(1, np.rint(batch.lengths * config.masked_lm_prob))).astype(np.int64)
    accepted_in_order = _greedy_accept(np.take_along_axis(sizes, order, axis=1), budget)
    accepted = np.zeros_like(accepted_in_order)
    np.put_along_axis(accepted, order, accepted_in_order, axis=1)

    masked = (group >= 0) & np.take_along_axis(accepted, np.maximum(group, 0), axis=1)
    row_index, positions = np.nonzero(masked)  # row-major: ascending positions within each row
    counts = masked.sum(axis=1)
    slot = np.arange(len(row_index)) - np.repeat(np.cumsum(counts) - counts, counts)
    labels = batch.input_ids[row_index, positions]

    decision = generator.random(len(row_index))
    replacement = labels.copy()
    replacement[decision < 0.8] = special.mask
    random_ids = (generator.random(len(row_index)) * special.vocab_size).astype(np.int32)
    replacement[decision >= 0.9] = random_ids[decision >= 0.9]
    output = batch.input_ids.copy()
    output[row_index, positions] = replacement

    masked_positions = np.zeros((n, predictions), dtype=np.int32)
    masked_ids = np.zeros((n, predictions), dtype=np.int32)
    masked_positions[row_index, slot] = positions
    masked_ids[row_index, slot] = labels
    return MaskedBatch(
        output, batch.lengths, batch.first_segment, batch.is_random_next, masked_positions, masked_ids, counts
    )


def create_training_batch(
    documents: list[Document],
    config: InstanceConfig,
    special: SpecialIds,
    rng: random.Random,
    generator: np.random.Generator,
) -> MaskedBatch:
    """Google's create_training_instances for one chunk (shuffle, `dupe_factor` passes, shuffle), masked at once."""
    all_documents = [d for d in documents if d]
    rng.shuffle(all_documents)
    packed = [
        instance
        for _ in range(config.dupe_factor)
        for index in range(len(all_documents))
        for instance in pack_document(all_documents, index, config, special, rng)
    ]
    rng.shuffle(packed)
    tokens = [p[0] for p in packed]
    batch = UnmaskedBatch(
        input_ids=pack_rows(tokens, config.max_seq_length),
        lengths=np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)),
        first_segment=np.array([p[1] for p in packed], dtype=np.int64),
        is_random_next=np.array([p[2] for p in packed], dtype=bool),
    )
    return mask_batch(batch, config, special, generator)
