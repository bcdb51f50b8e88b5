"""The one encoder: texts (or text pairs) -> BERT's inputs, as google-research/bert's convert_single_example.

    [CLS] a [SEP]             segment ids 0 ... 0
    [CLS] a [SEP] b [SEP]     segment ids 0 ... 0 1 ... 1

A text too long keeps its first `max_seq_length - 2` pieces; a pair drops the last piece of its longer side until
both fit (Google's `_truncate_seq_pair`). Only the first `max_seq_length x CHARS_PER_PIECE_BUDGET` characters of a
text are read (`FullTokenizer.encode_batch`), so the work per text is bounded whatever it holds. Rows are padded
with zeros (input_mask 0) to the longest row or to `pad_to`.
Fine-tuning, the ir stage's checks, the server and the bench all encode through `Encoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeAlias

import numpy as np

from vbert.text.tokenization import FullTokenizer

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")  # the model's inputs, the SavedModel's signature
Item: TypeAlias = str | Sequence[str]  # a text, or a (text_a, text_b) pair


class Row(NamedTuple):
    ids: list[int]  # [CLS] a [SEP] (b [SEP])
    first_segment: int  # how many leading tokens have segment id 0: len(a) + 2


class Encoded(NamedTuple):
    features: dict[str, np.ndarray]  # INPUT_NAMES -> int32 [rows, width]
    truncated: list[int]  # indices of the rows that were cut to fit


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_length: int) -> None:
    """Google's rule: drop the last token of the longer side until both fit in `max_length`."""
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


def pad_rows(rows: Sequence[Row], width: int) -> dict[str, np.ndarray]:
    """Zero-padded int32 arrays of `width` columns (every row must fit)."""
    ids = np.zeros((len(rows), width), np.int32)
    segments = np.zeros_like(ids)
    mask = np.zeros_like(ids)
    for index, row in enumerate(rows):
        length = len(row.ids)
        ids[index, :length] = row.ids
        segments[index, row.first_segment : length] = 1
        mask[index, :length] = 1
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


class Encoder:
    """Texts -> model inputs for one tokenizer and one max_seq_length."""

    def __init__(self, tokenizer: FullTokenizer, max_seq_length: int):
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length {max_seq_length}: needs room for [CLS], a piece and [SEP]")
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self._cls, self._sep = tokenizer.vocab.ids["[CLS]"], tokenizer.vocab.ids["[SEP]"]

    def rows(self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None) -> tuple[list[Row], list[int]]:
        """Each text (pair) as a row of ids, cut to fit; and the indices of the rows that were cut."""
        # the first max_seq_length pieces of each text settle its row (and whether it was cut): no more are made
        pieces_a = self.tokenizer.encode_batch(texts_a, self.max_seq_length)
        if texts_b is None:
            limit = self.max_seq_length - 2
            truncated = [i for i, a in enumerate(pieces_a) if len(a) > limit]
            return [Row([self._cls, *a[:limit], self._sep], min(len(a), limit) + 2) for a in pieces_a], truncated
        if len(texts_b) != len(texts_a):
            raise ValueError(f"{len(texts_a)} first texts but {len(texts_b)} second texts")
        limit = self.max_seq_length - 3
        rows, truncated = [], []
        pieces_b = self.tokenizer.encode_batch(texts_b, self.max_seq_length)
        for index, (a, b) in enumerate(zip(pieces_a, pieces_b, strict=True)):
            if len(a) + len(b) > limit:
                truncated.append(index)
                truncate_pair(a, b, limit)
            rows.append(Row([self._cls, *a, self._sep, *b, self._sep], len(a) + 2))
        return rows, truncated

    def __call__(self, texts_a: Sequence[str], texts_b: Sequence[str] | None = None, pad_to: int = 0) -> Encoded:
        """The padded inputs (to the longest row, or to `pad_to` if that is longer) and the rows cut to fit."""
        rows, truncated = self.rows(texts_a, texts_b)
        width = max([pad_to, *(len(row.ids) for row in rows)])
        return Encoded(pad_rows(rows, width), truncated)

    def encode_items(self, items: Sequence[Item], pad_to: int = 0) -> Encoded:
        """Texts, or [text_a, text_b] pairs (all of one kind), as `__call__` encodes them."""
        if all(isinstance(item, str) for item in items):
            return self(list(items), pad_to=pad_to)
        if all(_is_pair(item) for item in items):
            return self([a for a, _ in items], [b for _, b in items], pad_to=pad_to)
        raise ValueError("expected texts, or [text_a, text_b] pairs, all of one kind")


def _is_pair(item) -> bool:
    return isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(text, str) for text in item)


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, group: int = 50
) -> list[np.ndarray]:
    """Training batches (row indices) of similar lengths, so little padding: the rows shuffled, cut into groups of
    `group` batches, each group sorted by length and cut into batches, then the batches shuffled."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    for start in range(0, len(order), group * batch_size):
        chunk = order[start : start + group * batch_size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Evaluation batches (row indices): all rows by length, so each batch pads little."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
