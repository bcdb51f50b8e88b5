"""Masked-LM + next-sentence training instances, exactly as google-research/bert's create_pretraining_data.py.

The functions below follow Google's code step by step, on token ids instead of token strings, with the
whole-word masking of Google's later version. Drawing from `random.Random` in Google's order, they give the same
instances as Google's script for the same documents and seed (tests/test_pretraining_data.py checks this against
bert-tensorflow's copy): that is the `exact_google_rng` mode of the tfrecords stage.

The default mode packs instances here too (`pack_document`, with `truncate_seq_pair_at_once`) and masks a whole
chunk at once in `vbert.data.masking`: the same distribution, several times faster.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from vbert.data.tfrecord_format import (
    VarintTable,
    feature_entry,
    float_feature,
    int64_feature,
    varint,
    varint_matrix,
    varint_rows,
)
from vbert.text.tokenization import Vocab

Document = list[list[int]]  # a document is a list of sentences, each a non-empty list of token ids


@dataclass(frozen=True)
class InstanceConfig:
    """Google's flags for instance creation (same names; the values live in params.yaml's `tfrecords`)."""

    max_seq_length: int
    max_predictions_per_seq: int
    masked_lm_prob: float
    short_seq_prob: float
    dupe_factor: int
    do_whole_word_mask: bool
    exact_google_rng: bool


class SpecialIds(NamedTuple):
    cls: int
    sep: int
    mask: int
    vocab_size: int
    is_continuation: tuple[bool, ...]  # token starts with "##" (for whole-word masking)

    @classmethod
    def from_vocab(cls, vocab: Vocab) -> SpecialIds:
        return cls(
            vocab.ids["[CLS]"],
            vocab.ids["[SEP]"],
            vocab.ids["[MASK]"],
            len(vocab),
            tuple(t.startswith("##") for t in vocab.tokens),
        )


class TrainingInstance(NamedTuple):
    input_ids: list[int]
    segment_ids: list[int]
    masked_lm_positions: list[int]
    masked_lm_ids: list[int]
    is_random_next: bool


def create_training_instances(
    documents: list[Document], config: InstanceConfig, special: SpecialIds, rng: random.Random
) -> list[TrainingInstance]:
    """Google's create_training_instances after reading: shuffle documents, `dupe_factor` passes, shuffle."""
    all_documents = [d for d in documents if d]
    rng.shuffle(all_documents)
    instances: list[TrainingInstance] = []
    for _ in range(config.dupe_factor):
        for document_index in range(len(all_documents)):
            instances.extend(create_instances_from_document(all_documents, document_index, config, special, rng))
    rng.shuffle(instances)
    return instances


PackedInstance = tuple[list[int], int, bool]  # [CLS] A [SEP] B [SEP] ids, len(A) + 2, is_random_next


def create_instances_from_document(
    all_documents: list[Document],
    document_index: int,
    config: InstanceConfig,
    special: SpecialIds,
    rng: random.Random,
) -> list[TrainingInstance]:
    """Google's create_instances_from_document: pack sentences into A/B segments, then mask each instance."""
    instances = []
    for tokens, first_segment, is_random_next in pack_document(all_documents, document_index, config, special, rng):
        segment_ids = [0] * first_segment + [1] * (len(tokens) - first_segment)
        masked, positions, labels = create_masked_lm_predictions(tokens, config, special, rng)
        instances.append(TrainingInstance(masked, segment_ids, positions, labels, is_random_next))
    return instances


def pack_document(
    all_documents: list[Document],
    document_index: int,
    config: InstanceConfig,
    special: SpecialIds,
    rng: random.Random,
) -> Iterator[PackedInstance]:
    """The packing half of Google's create_instances_from_document: half of the B segments are random.

    A generator, so a caller that masks each instance before asking for the next one draws random numbers in
    exactly Google's order.
    """
    document = all_documents[document_index]
    max_num_tokens = config.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    current_chunk: list[list[int]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a: list[int] = []
                for segment in current_chunk[:a_end]:
                    tokens_a.extend(segment)
                tokens_b: list[int] = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    i -= len(current_chunk) - a_end  # put the unused segments back
                else:
                    is_random_next = False
                    for segment in current_chunk[a_end:]:
                        tokens_b.extend(segment)
                if config.exact_google_rng:
                    truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                else:
                    tokens_a, tokens_b = truncate_seq_pair_at_once(tokens_a, tokens_b, max_num_tokens, rng)
                assert tokens_a and tokens_b
                yield [special.cls, *tokens_a, special.sep, *tokens_b, special.sep], len(tokens_a) + 2, is_random_next
            current_chunk = []
            current_length = 0
        i += 1


def candidate_groups(tokens: list[int], config: InstanceConfig, special: SpecialIds) -> list[list[int]]:
    """Positions that may be masked, grouped by word when whole-word masking is on (`##` pieces join)."""
    cls, sep, is_continuation = special.cls, special.sep, special.is_continuation
    cand_indexes: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in (cls, sep):
            continue
        if config.do_whole_word_mask and cand_indexes and is_continuation[token]:
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    return cand_indexes


def create_masked_lm_predictions(
    tokens: list[int], config: InstanceConfig, special: SpecialIds, rng: random.Random
) -> tuple[list[int], list[int], list[int]]:
    """Google's masking: 15% of positions (whole words if asked), 80% [MASK], 10% kept, 10% random."""
    cand_indexes = candidate_groups(tokens, config, special)
    rng.shuffle(cand_indexes)

    output_tokens = list(tokens)
    num_to_predict = min(config.max_predictions_per_seq, max(1, round(len(tokens) * config.masked_lm_prob)))
    masked: list[tuple[int, int]] = []
    covered: set[int] = set()
    random_draw, randint = rng.random, rng.randint
    last_id = special.vocab_size - 1
    for index_set in cand_indexes:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(index_set) > num_to_predict:
            continue
        if any(index in covered for index in index_set):
            continue
        for index in index_set:
            covered.add(index)
            if random_draw() < 0.8:
                output_tokens[index] = special.mask
            elif random_draw() >= 0.5:
                output_tokens[index] = randint(0, last_id)
            masked.append((index, tokens[index]))
    masked.sort()
    return output_tokens, [p for p, _ in masked], [label for _, label in masked]


def truncate_seq_pair_at_once(
    tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random
) -> tuple[list[int], list[int]]:
    """Google's truncation rule with one random draw per side instead of one per token.

    Which side loses each token depends only on the lengths, so the number cut from each side is fixed; each cut
    is from the front with probability 1/2, so the number cut from the front is Binomial(cuts, 1/2): the
    popcount of `cuts` random bits.
    """
    length_a, length_b = len(tokens_a), len(tokens_b)
    while length_a + length_b > max_num_tokens:
        if length_a > length_b:
            length_a -= 1
        else:
            length_b -= 1
    result = []
    for tokens, keep in ((tokens_a, length_a), (tokens_b, length_b)):
        cuts = len(tokens) - keep
        front = rng.getrandbits(cuts).bit_count() if cuts else 0
        result.append(tokens[front : front + keep])
    return result[0], result[1]


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Google's rule: trim the longer segment, from the front or the back at random, until both fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert trunc_tokens
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


class ExampleEncoder:
    """Serialise instances as Google's tf.train.Example features, padded to fixed shapes.

    Byte strings that depend only on lengths (input_mask, segment_ids, masked_lm_weights, the labels, and the
    protobuf headers of each feature) are built once and reused; per instance, only the ids are encoded and
    everything is joined once.
    """

    def __init__(self, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        self.max_seq_length = max_seq_length
        self.max_predictions = max_predictions_per_seq
        self.varints = VarintTable(max(vocab_size, max_seq_length, 1 << 15))
        self._weights = [
            feature_entry("masked_lm_weights", float_feature([1.0] * n + [0.0] * (max_predictions_per_seq - n)))
            for n in range(max_predictions_per_seq + 1)
        ]
        self._labels = [feature_entry("next_sentence_labels", int64_feature(self.varints.packed([n]))) for n in (0, 1)]
        self._masks: dict[int, bytes] = {}
        self._segments: dict[tuple[int, int], bytes] = {}
        self._headers: dict[tuple[str, int], bytes] = {}

    def _header(self, name: str, packed_length: int) -> bytes:
        """Everything of an int64 feature entry that precedes its packed values."""
        header = self._headers.get((name, packed_length))
        if header is None:
            fake = feature_entry(name, int64_feature(b"\x00" * packed_length))
            header = self._headers[(name, packed_length)] = fake[: len(fake) - packed_length]
        return header

    def _padded(self, name: str, values: list[int], length: int, packed: bytes | None = None) -> list[bytes]:
        if packed is None:
            packed = self.varints.packed(values)
        padding = b"\x00" * (length - len(values))  # varint(0) is one zero byte
        return [self._header(name, len(packed) + len(padding)), packed, padding]

    def _mask_entry(self, length: int) -> bytes:
        entry = self._masks.get(length)
        if entry is None:
            entry = self._masks[length] = b"".join(self._padded("input_mask", [1] * length, self.max_seq_length))
        return entry

    def _segment_entry(self, first_segment: int, length: int) -> bytes:
        entry = self._segments.get((first_segment, length))
        if entry is None:
            ids = [0] * first_segment + [1] * (length - first_segment)
            entry = b"".join(self._padded("segment_ids", ids, self.max_seq_length))
            self._segments[(first_segment, length)] = entry
        return entry

    def encode(self, instance: TrainingInstance) -> bytes:
        return self.encode_batch([instance])[0]

    def encode_arrays(self, batch) -> list[bytes]:
        """Serialised Examples of a `vbert.data.masking.MaskedBatch` (zero-padded arrays: padding is one 0x00 each)."""
        ids, positions, labels = (
            varint_matrix(a) for a in (batch.input_ids, batch.masked_lm_positions, batch.masked_lm_ids)
        )
        table, header = self.varints.table, self._header
        records = []
        for i, (length, first_segment, count, random_next) in enumerate(
            zip(
                batch.lengths.tolist(),
                batch.first_segment.tolist(),
                batch.masked_counts.tolist(),
                batch.is_random_next.tolist(),
                strict=True,
            )
        ):
            parts = [
                header("input_ids", len(ids[i])),
                ids[i],
                self._mask_entry(length),
                self._segment_entry(first_segment, length),
                header("masked_lm_positions", len(positions[i])),
                positions[i],
                header("masked_lm_ids", len(labels[i])),
                labels[i],
                self._weights[count],
                self._labels[random_next],
            ]
            size = sum(map(len, parts))
            records.append(b"".join([b"\x0a", table[size] if size < len(table) else varint(size), *parts]))
        return records

    def encode_batch(self, instances: list[TrainingInstance]) -> list[bytes]:
        """Serialised Examples; the ids of all instances are varint-encoded together (numpy)."""
        packed_ids = varint_rows([i.input_ids for i in instances])
        packed_positions = varint_rows([i.masked_lm_positions for i in instances])
        packed_labels = varint_rows([i.masked_lm_ids for i in instances])
        table, padded, msl, predictions = self.varints.table, self._padded, self.max_seq_length, self.max_predictions
        records = []
        for instance, ids, positions, labels in zip(
            instances, packed_ids, packed_positions, packed_labels, strict=True
        ):
            length = len(instance.input_ids)
            parts = [
                *padded("input_ids", instance.input_ids, msl, ids),
                self._mask_entry(length),
                self._segment_entry(instance.segment_ids.index(1), length),
                *padded("masked_lm_positions", instance.masked_lm_positions, predictions, positions),
                *padded("masked_lm_ids", instance.masked_lm_ids, predictions, labels),
                self._weights[len(instance.masked_lm_positions)],
                self._labels[int(instance.is_random_next)],
            ]
            size = sum(map(len, parts))
            records.append(b"".join([b"\x0a", table[size] if size < len(table) else varint(size), *parts]))
        return records
