"""The one encoder, on hand-checkable ids: google-research/bert's test vocabulary (conftest)."""

from __future__ import annotations

import pytest

from tests.adversarial import KINDS, adversarial, time_ratio
from vbert.core.resources import packaged_model_dir
from vbert.text.encoding import Encoder
from vbert.text.tokenization import FullTokenizer, load_tokenizer, load_vocab

# [UNK]=0 [CLS]=1 [SEP]=2 want=3 ##want=4 ##ed=5 wa=6 un=7 runn=8 ##ing=9 ,=10 [PAD]=11 [MASK]=12


@pytest.fixture
def encoder(google_test_vocab):
    return Encoder(FullTokenizer(load_vocab(google_test_vocab), do_lower_case=True), 6)


def test_single_texts_cut_and_padded_to_the_longest(encoder):
    encoded = encoder(["unwanted running", "want"])
    assert encoded.features["input_ids"].tolist() == [[1, 7, 4, 5, 8, 2], [1, 3, 2, 0, 0, 0]]
    assert encoded.features["input_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert encoded.features["segment_ids"].tolist() == [[0] * 6, [0] * 6]
    assert encoded.truncated == [0]  # un ##want ##ed runn ##ing: 5 pieces, room for 4


def test_pairs_drop_from_the_longer_side(google_test_vocab):
    encoder = Encoder(FullTokenizer(load_vocab(google_test_vocab), do_lower_case=True), 10)
    encoded = encoder(["unwanted"], ["running"], pad_to=10)
    assert encoded.features["input_ids"].tolist() == [[1, 7, 4, 5, 2, 8, 9, 2, 0, 0]]
    assert encoded.features["segment_ids"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0]]
    assert encoded.features["input_mask"].tolist() == [[1] * 8 + [0, 0]]
    assert encoded.truncated == []
    short = Encoder(encoder.tokenizer, 7)([" unwanted"], ["running"])  # 3 + 2 pieces, room for 4: a loses ##ed
    assert short.features["input_ids"].tolist() == [[1, 7, 4, 2, 8, 9, 2]]
    assert short.truncated == [0]


def test_pad_to_only_widens(encoder):
    assert encoder(["want"], pad_to=5).features["input_ids"].shape == (1, 5)
    assert encoder(["unwanted running"], pad_to=2).features["input_ids"].shape == (1, 6)


def test_items_are_texts_or_pairs_of_one_kind(encoder):
    texts = encoder.encode_items(["want", "unwanted"])
    assert texts.features["input_ids"].tolist() == encoder(["want", "unwanted"]).features["input_ids"].tolist()
    pairs = encoder.encode_items([("want", "want"), ["un", "wa"]])
    assert pairs.features["input_ids"].tolist() == [[1, 3, 2, 3, 2], [1, 7, 2, 6, 2]]
    for bad in (["want", ("a", "b")], [1, 2], [("a", "b", "c")], [["a", 3]]):
        with pytest.raises(ValueError, match="texts, or \\[text_a, text_b\\] pairs"):
            encoder.encode_items(bad)


def test_length_grouped_batches_cover_every_row_once_with_little_padding():
    import numpy as np

    from vbert.text.encoding import length_grouped_batches, sorted_batches

    lengths = np.random.default_rng(0).integers(3, 128, 1000)
    batches = length_grouped_batches(lengths, 32, np.random.default_rng(1), group=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert lengths.sum() / padded > 0.9  # against ~0.5 for random batches padded to their longest
    again = length_grouped_batches(lengths, 32, np.random.default_rng(1), group=10)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    evaluation = sorted_batches(lengths, 100)
    assert np.concatenate(evaluation).tolist() == np.argsort(lengths, kind="stable").tolist()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_megabyte_of_any_kind_encodes_in_about_the_time_of_a_kilobyte(kind):
    """Linear time, bounded work: a text is cut to a character budget derived from max_seq_length before any
    tokenising, so a megabyte costs a small multiple of a kilobyte (a quadratic scan took hours on spaces)."""
    encoder = Encoder(load_tokenizer(packaged_model_dir("minilm")), 128)
    encoded = encoder([adversarial(kind, 1 << 20)])
    assert encoded.features["input_ids"].shape[1] <= 128
    assert time_ratio(lambda text: encoder([text], [text]), kind) < 50  # a pair: both sides
