"""Masked-LM + next-sentence training instances, exactly as google-research/bert's create_pretraining_data.py.

The functions below follow Google's code step by step and draw from `random.Random` in the same order, so for
the same documents and seed they give the same instances as Google's script (tests/test_pretraining_data.py
checks this against bert-tensorflow's copy). They work on token ids instead of token strings, which is what
makes them fast; `create_masked_lm_predictions` adds the whole-word masking of Google's later version.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from vbert.tfrecord import VarintTable, example, float_feature, int64_feature
from vbert.tokenization import Vocab

Document = list[list[int]]  # a document is a list of sentences, each a non-empty list of token ids


@dataclass(frozen=True)
class InstanceConfig:
    """Google's flags for instance creation (same names, same defaults)."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    do_whole_word_mask: bool = False


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


def create_instances_from_document(
    all_documents: list[Document],
    document_index: int,
    config: InstanceConfig,
    special: SpecialIds,
    rng: random.Random,
) -> list[TrainingInstance]:
    """Google's create_instances_from_document: pack sentences into A/B segments, half with a random B."""
    document = all_documents[document_index]
    max_num_tokens = config.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < config.short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
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
                tokens_a = [t for segment in current_chunk[:a_end] for t in segment]
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
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert tokens_a and tokens_b

                tokens = [special.cls, *tokens_a, special.sep, *tokens_b, special.sep]
                segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                tokens, positions, labels = create_masked_lm_predictions(tokens, config, special, rng)
                instances.append(TrainingInstance(tokens, segment_ids, positions, labels, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def create_masked_lm_predictions(
    tokens: list[int], config: InstanceConfig, special: SpecialIds, rng: random.Random
) -> tuple[list[int], list[int], list[int]]:
    """Google's masking: 15% of positions (whole words if asked), 80% [MASK], 10% kept, 10% random."""
    cls, sep, is_continuation = special.cls, special.sep, special.is_continuation
    cand_indexes: list[list[int]] = []
    for i, token in enumerate(tokens):
        if token in (cls, sep):
            continue
        if config.do_whole_word_mask and cand_indexes and is_continuation[token]:
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
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
    """Serialise instances as Google's tf.train.Example features, padded to fixed shapes."""

    def __init__(self, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        self.max_seq_length = max_seq_length
        self.max_predictions = max_predictions_per_seq
        self.varints = VarintTable(max(vocab_size, max_seq_length, 2))
        self._ones = [
            float_feature([1.0] * n + [0.0] * (max_predictions_per_seq - n)) for n in range(max_predictions_per_seq + 1)
        ]
        self._next_sentence = [int64_feature(self.varints.packed([label])) for label in (0, 1)]

    def encode(self, instance: TrainingInstance) -> bytes:
        seq_pad = [0] * (self.max_seq_length - len(instance.input_ids))
        pred_pad = [0] * (self.max_predictions - len(instance.masked_lm_positions))
        packed = self.varints.packed
        return example(
            {
                "input_ids": int64_feature(packed(instance.input_ids + seq_pad)),
                "input_mask": int64_feature(packed([1] * len(instance.input_ids) + seq_pad)),
                "segment_ids": int64_feature(packed(instance.segment_ids + seq_pad)),
                "masked_lm_positions": int64_feature(packed(instance.masked_lm_positions + pred_pad)),
                "masked_lm_ids": int64_feature(packed(instance.masked_lm_ids + pred_pad)),
                "masked_lm_weights": self._ones[len(instance.masked_lm_positions)],
                "next_sentence_labels": self._next_sentence[int(instance.is_random_next)],
            }
        )
