"""Tokenisation: google-research/bert's own test cases with exact ids, then the fast path against the reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.adversarial import KINDS
from tests.helpers import GOOGLE_TEST_VOCAB, write_lines
from vbert.core.errors import InputError
from vbert.text.tokenization import (
    CHARS_PER_PIECE_BUDGET,
    FullTokenizer,
    GoogleTokenizer,
    Vocab,
    _is_control,
    _is_punctuation,
    _is_whitespace,
    basic_tokenize,
    load_vocab,
    wordpiece_tokenize,
)


@pytest.fixture
def vocab(google_test_vocab) -> Vocab:
    return load_vocab(google_test_vocab)


@pytest.mark.parametrize("tokenizer_class", [GoogleTokenizer, FullTokenizer])
def test_full_tokenizer_exact_ids(vocab, tokenizer_class):
    tokenizer = tokenizer_class(vocab, do_lower_case=True)
    tokens = tokenizer.tokenize("UNwant\u00e9d,running")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing"]
    assert vocab.convert_tokens_to_ids(tokens) == [7, 4, 5, 10, 8, 9]
    assert tokenizer.encode("UNwant\u00e9d,running") == [7, 4, 5, 10, 8, 9]


def test_chinese_characters_are_split():
    assert basic_tokenize("ah\u535a\u63a8zz", do_lower_case=True) == ["ah", "\u535a", "\u63a8", "zz"]


def test_basic_tokenizer_lower_strips_accents():
    assert basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", do_lower_case=True) == ["hello", "!", "how", "are", "you", "?"]
    assert basic_tokenize("H\u00e9llo", do_lower_case=True) == ["hello"]


def test_basic_tokenizer_cased_keeps_case_and_accents():
    assert basic_tokenize(" \tHeLLo!how  \n Are yoU?  ", do_lower_case=False) == [
        "HeLLo",
        "!",
        "how",
        "Are",
        "yoU",
        "?",
    ]
    assert basic_tokenize("H\u00e9llo", do_lower_case=False) == ["H\u00e9llo"]


def test_control_characters_are_removed_and_whitespace_normalised():
    assert basic_tokenize("a\x00b\ufffdc\x07d\u200be\u00a0f", do_lower_case=True) == ["abcde", "f"]


def test_wordpiece_tokenizer(vocab):
    assert wordpiece_tokenize("", vocab) == []
    pieces = [p for w in ["unwanted", "running"] for p in wordpiece_tokenize(w, vocab)]
    assert pieces == ["un", "##want", "##ed", "runn", "##ing"]
    pieces = [p for w in ["unwantedX", "running"] for p in wordpiece_tokenize(w, vocab)]
    assert pieces == ["[UNK]", "runn", "##ing"]


def test_words_longer_than_googles_limit_are_unknown(vocab):
    tokenizer = FullTokenizer(vocab, do_lower_case=True)
    assert tokenizer.tokenize("want" + "ed" * 98) == ["want"] + ["##ed"] * 98  # 200 characters: split
    assert tokenizer.tokenize("want" + "ed" * 98 + "e") == ["[UNK]"]  # 201 characters: [UNK]


def test_character_classes():
    assert _is_whitespace(" ") and _is_whitespace("\t") and _is_whitespace("\r") and _is_whitespace("\n")
    assert _is_whitespace("\u00a0") and not _is_whitespace("A") and not _is_whitespace("-")
    assert _is_control("\u0005") and not _is_control("A") and not _is_control(" ")
    assert not _is_control("\t") and not _is_control("\r")
    assert _is_punctuation("-") and _is_punctuation("$") and _is_punctuation("`") and _is_punctuation(".")
    assert not _is_punctuation("A") and not _is_punctuation(" ")


def test_vocab_rejects_missing_special_tokens(tmp_path):
    path = write_lines(tmp_path / "vocab.txt", [t for t in GOOGLE_TEST_VOCAB if t != "[MASK]"])
    with pytest.raises(InputError, match=r"vocab.txt: vocabulary lacks the special token\(s\) \[MASK\]"):
        load_vocab(path)


def test_vocab_rejects_duplicates_with_line_numbers(tmp_path):
    path = write_lines(tmp_path / "vocab.txt", [*GOOGLE_TEST_VOCAB, "want"])
    with pytest.raises(InputError, match=r"vocab.txt:14: token 'want' appears twice \(first on line 4\)"):
        load_vocab(path)


# Characters from every block the fast path claims, plus anything else (which must go to the reference).
_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x24F),
        st.characters(min_codepoint=0x300, max_codepoint=0x4FF),
        st.characters(min_codepoint=0x2000, max_codepoint=0x22FF),
        st.characters(min_codepoint=0x3000, max_codepoint=0x303F),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0xFF00, max_codepoint=0xFFEF),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
)


@settings(max_examples=600, deadline=None)
@given(text=_TEXT)
def test_fast_tokenizer_equals_reference(bert_vocab_tokenizers, text):
    fast, reference = bert_vocab_tokenizers
    assert fast.encode(text) == reference.encode(text)


@settings(max_examples=600, deadline=None)
@given(
    text=st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60)
    | st.text(alphabet="ab_-.", min_size=195, max_size=210)
)
def test_ascii_path_equals_reference(bert_vocab_tokenizers, text):
    fast, reference = bert_vocab_tokenizers
    assert fast.encode(text) == reference.encode(text)
    assert fast.encode(text) == fast.encode(text)  # the second time from the word cache


@settings(max_examples=150, deadline=None)
@given(
    unit=_TEXT.filter(bool) | st.sampled_from([u for u in KINDS.values() if u]),
    repeats=st.integers(1, 20_000),
    tail=_TEXT,
)
def test_long_runs_give_the_references_first_pieces_of_the_budget(bert_vocab_tokenizers, unit, repeats, tail):
    """The fuzzed inputs include the adversarial kinds: long runs of one unit, then anything. With max_pieces the
    answer is the reference's first pieces of the text cut to max_pieces x CHARS_PER_PIECE_BUDGET characters."""
    fast, reference = bert_vocab_tokenizers
    text = unit * repeats + tail
    (pieces,) = fast.encode_batch([text], 16)
    expected = reference.encode(text[: 16 * CHARS_PER_PIECE_BUDGET])
    assert pieces[:16] == expected[:16] and len(pieces) >= min(16, len(expected))


@pytest.fixture(scope="module")
def bert_vocab_tokenizers(bert_vocab_path):
    vocab = load_vocab(bert_vocab_path)
    return FullTokenizer(vocab, do_lower_case=True), GoogleTokenizer(vocab, do_lower_case=True)


def test_fast_tokenizer_equals_googles_code_on_the_sample_corpus(bert_vocab_path, sample_docs):
    """Differential test against bert-tensorflow's tokenization.py itself, line by line."""
    from bert import tokenization as google

    google.FLAGS(["test"])  # its tokenization module reads one absl flag (preserve_unused_tokens, off)
    theirs = google.FullTokenizer(str(bert_vocab_path), do_lower_case=True)
    ours = FullTokenizer(load_vocab(bert_vocab_path), do_lower_case=True)
    lines = [line for line in sample_docs.read_text(encoding="utf-8").splitlines() if line][:4000]
    lines += ["Ünïcödé naïve café", "\u2028split\u2029here", "tab\tand\u00a0nbsp", "emoji 🙂 and 𝔘𝔫𝔦"]
    assert [theirs.tokenize(line) for line in lines] == [ours.tokenize(line) for line in lines]


def test_the_first_pieces_of_a_long_text_without_tokenising_it_all(bert_vocab_path):
    """The encoder asks only for max_seq_length pieces: a prefix cut at ASCII white space gives exactly the first
    pieces of the text (Google's tokens never span it), whatever it holds, once the text is cut to its character
    budget (max_pieces x CHARS_PER_PIECE_BUDGET): a text of real words has its first pieces well inside it."""
    import random

    tokenizer = FullTokenizer(load_vocab(bert_vocab_path), do_lower_case=True)
    rng = random.Random(0)
    words = ["puzzle", "Café", "naïve", "x", "", "\u200b", "co-op", "--flag", "ünï", "漢字", "a.b,c", "\u00a0", "1e9"]
    texts = [
        "".join(rng.choice(words) + rng.choice([" ", "\t", "\n", "", "  ", "\u3000"]) for _ in range(n))
        for n in (3, 50, 400, 2000, 5000)
    ] + ["word " * 10_000, "\u200b " * 3000 + "late words at the end", "x" * 5000]
    for count in (1, 5, 32, 128):
        cut = tokenizer.encode_batch(texts, max_pieces=count)
        for text, pieces in zip(texts, cut, strict=True):
            whole = tokenizer.encode(text[: count * CHARS_PER_PIECE_BUDGET])
            assert pieces[:count] == whole[:count] and len(pieces) >= min(count, len(whole))
    assert tokenizer.encode_batch([texts[3]], 128)[0][:128] == tokenizer.encode(texts[3])[:128]
    assert tokenizer.encode_batch(["\u200b " * 5000 + "late words"], 128) == [[]]  # past the budget
    long = "word " * 100_000
    assert len(tokenizer.encode_batch([long], max_pieces=128)[0]) < 1000  # far fewer than the 100,000 there are
