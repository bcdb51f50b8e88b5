"""The four vocabularies on a hand-written base vocabulary, with exact ids and word-piece savings."""

from __future__ import annotations

import string
from collections import Counter

import pytest

from tests.helpers import from_params
from vbert.text.tokenization import Vocab
from vbert.text.vocabulary import (
    VocabConfig,
    WordCounts,
    build_vocab,
    free_slots,
    merge_candidates,
    old_pieces,
    piece_cost,
    rank_candidates,
    tokenization_stats,
)

BASE_TOKENS = [
    "[PAD]",
    "[unused0]",
    "[unused1]",
    "[unused2]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "ü",
    "λ",
    "the",
    "file",
    *string.ascii_lowercase,
    *("##" + c for c in string.ascii_lowercase),
]


@pytest.fixture
def base() -> Vocab:
    return Vocab(BASE_TOKENS)


WORDS = Counter({"vsphere": 10, "kubectl": 5, "the": 20, "files": 3, "λx": 2})


def test_piece_cost_counts_unknown_as_worse_than_letters(base):
    assert piece_cost("vsphere", base) == 7
    assert piece_cost("files", base) == 2
    assert piece_cost("v€", base) == 3  # [UNK]: length + 1


def test_rank_candidates_by_pieces_saved(base):
    ranked = rank_candidates(["vsphere", "##sphere", "kubectl", "zzz", "the", "[MASK]"], WORDS, base, 1)
    # vsphere: 7 -> 1 piece, x10 = 60; ##sphere: 7 -> 2, x10 = 50; kubectl: 7 -> 1, x5 = 30; the: already one
    assert ranked == [("vsphere", 60), ("##sphere", 50), ("kubectl", 30)]


def test_merge_candidates_are_runs_of_adjacent_pieces(base):
    words = Counter({"files": 3, "vsp": 2, "rare": 1, "λx": 1, "v€": 5})
    # files -> file ##s; vsp -> v ##s ##p; rare is too rare; λx -> λ ##x is too rare; v€ is [UNK]
    assert merge_candidates(words, base, 2) == {"files", "vs", "##sp", "vsp", "v€"}


def test_losses_count_against_a_candidate(base):
    # "fil" would turn "file" (one piece, untouched) ... and "files" = file ##s stays; "filx": f ##i ##l ##x -> fil ##x
    words = Counter({"filx": 1, "fi": 0})
    ranked = dict(rank_candidates(["fil", "##il"], words, base, -100))
    assert ranked == {"fil": 2, "##il": 1}
    tricky = Vocab([*BASE_TOKENS, "##ax"])  # "vax" = v ##ax; with "va" added: va ##x (still 2 pieces)
    assert dict(rank_candidates(["va"], Counter({"vax": 3}), tricky, -100)) == {"va": 0}
    no_x = Vocab([t for t in BASE_TOKENS if t != "##x"] + ["##ax"])  # with "va": va + ##x missing -> [UNK]
    assert dict(rank_candidates(["va"], Counter({"vax": 3}), no_x, -100)) == {"va": (2 - 4) * 3}


def test_old_pieces(base):
    assert old_pieces("vsphere", base) == ["v", "##s", "##p", "##h", "##e", "##r", "##e"]
    assert old_pieces("##sphere", base) == ["##s", "##p", "##h", "##e", "##r", "##e"]


def test_free_slots(base):
    used = {"λ"}
    assert free_slots(base, "default", used, 100) == []
    assert free_slots(base, "unused", used, 100) == [1, 2, 3]
    assert free_slots(base, "unused-nonascii", used, 100) == [1, 2, 3, 8]  # ü is never produced (accents strip)
    assert free_slots(base, "unused-nonascii", used, 2) == [1, 2]
    assert free_slots(base, "extend", used, 3) == [len(base), len(base) + 1, len(base) + 2]


@pytest.mark.parametrize("variant", ["default", "unused", "unused-nonascii"])
def test_build_vocab_keeps_ids_and_size(base, variant):
    counts = WordCounts(train=WORDS, heldout=Counter({"vsphere": 1, "kubectl": 1, "the": 2}))
    config = from_params(VocabConfig, "vocabulary", variant=variant, min_frequency=1)
    vocab, replaced, metrics = build_vocab(base, counts, config)
    assert len(vocab) == len(base)
    changed = {i for i, (old, new) in enumerate(zip(base.tokens, vocab.tokens, strict=True)) if old != new}
    assert changed == {r["id"] for r in replaced}
    assert changed <= set(free_slots(base, variant, {"λ", "the", "##s"}, 10_000))
    if variant == "default":
        assert replaced == [] and metrics["tokens_added"] == 0
        return
    assert vocab.tokens[1] == "vsphere"  # the best candidate takes the first free slot
    first = replaced[0]
    assert first == {
        "id": 1,
        "old_token": "[unused0]",
        "new_token": "vsphere",
        "old_pieces": ["v", "##s", "##p", "##h", "##e", "##r", "##e"],
        "old_piece_ids": [base.ids[p] for p in first["old_pieces"]],
        "pieces_saved": 60,
    }
    assert metrics["pieces_per_word_before"] == pytest.approx((7 + 7 + 2) / 4)
    assert metrics["pieces_per_word_after"] < metrics["pieces_per_word_before"]
    assert metrics["tokens_added"] == len(replaced) == len(changed)


def test_tokenization_stats_exact(base):
    stats = tokenization_stats(Counter({"the": 3, "vs": 1, "v€": 1}), base)
    # pieces: the=1 x3, vs=2, v€=[UNK]; 6 pieces over 5 words, one word of five is [UNK]
    assert stats == {"pieces_per_word": 1.2, "unk_rate": 0.2}


def test_extend_keeps_every_base_token_and_appends_the_best_candidates(base):
    counts = WordCounts(train=WORDS, heldout=Counter({"vsphere": 1, "kubectl": 1, "the": 2}))
    config = from_params(VocabConfig, "vocabulary", variant="extend", min_frequency=1, max_new_tokens=2)
    vocab, replaced, metrics = build_vocab(base, counts, config)
    assert vocab.tokens[: len(base)] == base.tokens and len(vocab) == len(base) + 2
    assert vocab.tokens[len(base)] == "vsphere" and vocab.ids["vsphere"] == len(base)
    assert [(r["id"], r["old_token"]) for r in replaced] == [(len(base), None), (len(base) + 1, None)]
    assert replaced[0]["old_piece_ids"] == [base.ids[p] for p in ["v", "##s", "##p", "##h", "##e", "##r", "##e"]]
    assert metrics["vocab_size"] == len(base) + 2 and metrics["tokens_added"] == 2


def test_metrics_compare_all_four_variants_on_the_heldout_words(base):
    counts = WordCounts(train=WORDS, heldout=Counter({"vsphere": 1, "kubectl": 1, "the": 2}))
    config = from_params(VocabConfig, "vocabulary", variant="default", min_frequency=1)
    _, _, metrics = build_vocab(base, counts, config)
    variants = metrics["variants"]
    assert list(variants) == ["default", "unused", "unused-nonascii", "extend"]
    assert variants["default"] == {"tokens_added": 0, "pieces_per_word": (7 + 7 + 1 + 1) / 4, "unk_rate": 0.0}
    assert variants["unused"]["tokens_added"] == 3 and variants["unused-nonascii"]["tokens_added"] == 4
    assert variants["extend"]["pieces_per_word"] < variants["unused"]["pieces_per_word"] < 4.0
