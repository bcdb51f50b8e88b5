"""The vocab stage: the paper's three vocabularies and one with room, built on Google's uncased BERT vocabulary.

* `default`: the base vocabulary unchanged.
* `unused`: new domain tokens written into the `[unusedN]` slots.
* `unused-nonascii`: also into the slots of non-ASCII tokens that the corpus never uses, up to `max_new_tokens`.
* `extend`: every base token kept, up to `max_new_tokens` new tokens appended after them (the model's embedding
  matrix and masked-LM bias grow by as many rows).

Candidates are learnt from the cleaned corpus the way WordPiece grows a vocabulary, by merging adjacent word
pieces: every run of two or more consecutive pieces of a word (as the base vocabulary splits it) that the corpus
uses at least `min_frequency` times is a candidate, and so is every such word. They are ranked by how many word
pieces each would save on the corpus on its own. (Hugging Face's WordPiece trainer was the first choice, but its
result changes from one process to the next, Rust hash maps being seeded at random, which DVC cannot cache.)
Every kept token keeps its id, so a checkpoint trained on the base vocabulary still fits (for `extend`, with rows
appended). A new token's embedding row starts as the mean of the rows of the pieces it replaces.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vbert.core import params as knob
from vbert.core.errors import InputError
from vbert.text.corpus import CorpusReader, is_heldout
from vbert.text.tokenization import SPECIAL_TOKENS, FullTokenizer, Vocab, wordpiece_tokenize

log = logging.getLogger(__name__)

VARIANTS = ("default", "unused", "unused-nonascii", "extend")
_UNUSED = re.compile(r"^\[unused\d+\]$")


@dataclass(frozen=True)
class VocabConfig:
    variant: str = knob.choice(
        VARIANTS, "the paper's three vocabularies, or extend (new tokens appended after the base)", switch="vocab"
    )
    max_new_tokens: int = knob.integer("the most new tokens (unused: 994 slots; unused-nonascii: ~2,900)", min=0)
    min_frequency: int = knob.integer("candidates come from words the corpus uses this often", min=1)
    min_savings: int = knob.integer("word pieces a new token must save on the corpus", min=1)
    heldout_fraction: float = knob.probability("documents kept out for the before/after metrics", max_open=True)
    random_seed: int = knob.integer("seed of the held-out documents", min=0)
    do_lower_case: bool = knob.boolean(
        "the casing of the whole pipeline: recorded with the vocabulary, read by every later stage"
    )


@dataclass
class WordCounts:
    train: Counter
    heldout: Counter


def count_corpus_words(corpus: Path, tokenizer: FullTokenizer, config: VocabConfig) -> WordCounts:
    """Basic-tokenised word counts of the corpus, split into training and held-out documents."""
    counts = WordCounts(Counter(), Counter())
    reader = CorpusReader([corpus])
    with tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc="vocab count") as progress:
        for index, document in enumerate(reader):
            target = counts.heldout if is_heldout(index, config.heldout_fraction, config.random_seed) else counts.train
            for line in document:
                target.update(tokenizer.basic_tokens(line))
            progress.update(reader.bytes_read - progress.n)
    reader.require_documents(2)
    if not counts.train:
        raise InputError(f"{corpus}: no words left to learn from after holding out {config.heldout_fraction}")
    return counts


def merge_candidates(words: Counter, base: Vocab, min_frequency: int) -> set[str]:
    """Tokens made by merging two or more adjacent word pieces of a word the corpus uses `min_frequency` times
    (the whole word for an [UNK] word); deterministic, unlike a trainer built on randomly seeded hash maps."""
    candidates: set[str] = set()
    for word, count in words.items():
        if count < min_frequency:
            continue
        pieces = wordpiece_tokenize(word, base)
        if pieces == ["[UNK]"]:
            candidates.add(word)
            continue
        bounds = [0]
        for piece in pieces:
            bounds.append(bounds[-1] + len(piece.removeprefix("##")))
        for start in range(len(pieces) - 1):
            for end in range(start + 2, len(pieces) + 1):
                span = word[bounds[start] : bounds[end]]
                candidates.add(span if start == 0 else "##" + span)
    return candidates


def piece_cost(word: str, vocab: set[str] | dict[str, int] | Vocab) -> int:
    """Word pieces for `word`; an [UNK] costs one more than spelling the word out letter by letter."""
    pieces = wordpiece_tokenize(word, vocab)
    return len(word) + 1 if pieces == ["[UNK]"] else len(pieces)


class _WithExtra:
    """A vocabulary plus one extra token, for trying candidates without copying the vocabulary."""

    def __init__(self, vocab: Vocab, extra: str):
        self.vocab, self.extra = vocab, extra

    def __contains__(self, token: str) -> bool:
        return token == self.extra or token in self.vocab


def rank_candidates(candidates: Iterable[str], words: Counter, base: Vocab, min_savings: int) -> list[tuple[str, int]]:
    """Candidates absent from `base`, ordered by the word pieces each saves on `words` on its own.

    Greedy longest-match is not monotone: a new token can also make a word worse (`abc` turns `ab ##cx` into
    `abc ##x`, or into [UNK] when `##x` is missing), and such losses count against the candidate.
    """
    pool = {c for c in candidates if c not in base and c not in SPECIAL_TOKENS and c.strip("#")}
    savings: Counter = Counter()
    for word, count in tqdm(words.items(), desc="vocab rank", unit="word", mininterval=1):
        cost = piece_cost(word, base)
        if cost <= 1:
            continue  # a one-piece word is in the vocabulary whole, and greedy matching keeps it whole
        matches = {
            word[start:end] if start == 0 else "##" + word[start:end]
            for start in range(len(word))
            for end in range(start + 1, len(word) + 1)
        } & pool
        for piece in matches:
            savings[piece] += (cost - piece_cost(word, _WithExtra(base, piece))) * count
    ranked = [(token, saved) for token, saved in savings.items() if saved >= min_savings]
    ranked.sort(key=lambda item: (-item[1], item[0]))
    return ranked


def free_slots(base: Vocab, variant: str, used_pieces: set[str], max_new_tokens: int) -> list[int]:
    """Ids that may take a new token: [unusedN] slots, then (for unused-nonascii) unused non-ASCII tokens; for
    `extend`, the ids after the base vocabulary's."""
    if variant == "default":
        return []
    if variant == "extend":
        return list(range(len(base), len(base) + max_new_tokens))
    slots = [i for i, t in enumerate(base.tokens) if _UNUSED.match(t)]
    if variant == "unused-nonascii":
        slots += [
            i for i, t in enumerate(base.tokens) if not t.isascii() and t not in used_pieces and t not in SPECIAL_TOKENS
        ]
    return sorted(slots)[:max_new_tokens]


def old_pieces(token: str, base: Vocab) -> list[str]:
    """The new token's word pieces under the base vocabulary (`##x` tokens are split as continuations)."""
    if token.startswith("##"):
        pieces = wordpiece_tokenize("x" + token[2:], _WithExtra(base, "x"))
        return ["[UNK]"] if pieces == ["[UNK]"] else pieces[1:]
    return wordpiece_tokenize(token, base)


def pieces_used(words: Counter, vocab: Vocab) -> set[str]:
    return {piece for word in words for piece in wordpiece_tokenize(word, vocab)}


def tokenization_stats(words: Counter, vocab: Vocab) -> dict[str, float]:
    """Word pieces per word, and [UNK] rate as the share of words that become [UNK].

    (A share of pieces would rise whenever a better vocabulary needs fewer pieces for the same unknown words.)
    """
    total_words = sum(words.values())
    pieces = unknown = 0
    for word, count in words.items():
        tokens = wordpiece_tokenize(word, vocab)
        pieces += len(tokens) * count
        unknown += tokens.count("[UNK]") * count
    return {
        "pieces_per_word": round(pieces / max(1, total_words), 5),
        "unk_rate": round(unknown / max(1, total_words), 6),
    }


def variant_vocab(base: Vocab, variant: str, slots: list[int], ranked: list[tuple[str, int]]) -> tuple[Vocab, list]:
    """The best-ranked candidates written into `slots` in order (appended where a slot is past the base's end);
    returns the vocabulary and one record per new token (`old_token` None where it was appended)."""
    tokens = list(base.tokens)
    replaced: list[dict] = []
    for slot, (token, saved) in zip(slots, ranked, strict=False):
        pieces = old_pieces(token, base)
        replaced.append(
            {
                "id": slot,
                "old_token": base.tokens[slot] if slot < len(base) else None,
                "new_token": token,
                "old_pieces": pieces,
                "old_piece_ids": base.convert_tokens_to_ids(pieces),
                "pieces_saved": saved,
            }
        )
        if slot < len(base):
            tokens[slot] = token
        else:
            tokens.append(token)
    return Vocab(tokens, source=f"<{variant} vocabulary>"), replaced


def build_vocab(base: Vocab, counts: WordCounts, config: VocabConfig) -> tuple[Vocab, list[dict], dict]:
    """Returns the new vocabulary, its new tokens (id, the token it replaced, its old pieces), and metrics:
    the chosen variant's, and pieces per word and [UNK] rate on the held-out slice for every variant."""
    if config.variant not in VARIANTS:
        raise InputError(f"unknown vocabulary variant {config.variant!r}: choose one of {', '.join(VARIANTS)}")
    used = pieces_used(counts.train, base)
    ranked = rank_candidates(
        merge_candidates(counts.train, base, config.min_frequency), counts.train, base, config.min_savings
    )
    built = {}
    for variant in VARIANTS:
        slots = free_slots(base, variant, used, config.max_new_tokens)
        vocab, replaced = variant_vocab(base, variant, slots, ranked)
        built[variant] = (vocab, replaced, slots)
    new_vocab, replaced, slots = built[config.variant]
    before, after = tokenization_stats(counts.heldout, base), tokenization_stats(counts.heldout, new_vocab)
    metrics = {
        "variant": config.variant,
        "vocab_size": len(new_vocab),
        "slots_available": len(slots),
        "candidates": len(ranked),
        "tokens_added": len(replaced),
        "heldout_words": sum(counts.heldout.values()),
        "pieces_per_word_before": before["pieces_per_word"],
        "pieces_per_word_after": after["pieces_per_word"],
        "unk_rate_before": before["unk_rate"],
        "unk_rate_after": after["unk_rate"],
        "variants": {
            variant: {"tokens_added": len(r), **tokenization_stats(counts.heldout, v)}
            for variant, (v, r, _) in built.items()
        },
    }
    return new_vocab, replaced, metrics
