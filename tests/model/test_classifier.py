"""The fine-tuned classifier's folder and its logits (vbert.model.classifier)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import TINY_BERT, tiny_finetuned
from vbert.core.errors import InputError
from vbert.model.classifier import load_finetuned, logits, mean_pooled, padded, predict
from vbert.text.encoding import Row, pad_rows

LABELS = ["admin", "net"]


def test_padded_pads_the_chosen_rows_to_their_longest():
    rows = [Row([101, 7, 102], 3), Row([101, 7, 8, 9, 102], 5), Row([101, 102], 2)]
    batch = padded(rows, np.array([2, 0]))
    assert batch["input_ids"].tolist() == [[101, 102, 0], [101, 7, 102]]
    assert batch["input_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]


def test_logits_come_back_in_the_rows_order(tmp_path):
    model, _, _ = load_finetuned(tiny_finetuned(tmp_path / "best", LABELS))
    rows = [Row([101, *range(1000, 1000 + n), 102], n + 2) for n in (7, 1, 12, 3, 5)]
    expected = np.stack([np.asarray(model(pad_rows([row], len(row.ids)), training=False))[0] for row in rows])
    np.testing.assert_allclose(logits(model, rows, batch_size=2), expected, atol=1e-5)
    np.testing.assert_array_equal(predict(model, rows, batch_size=2), np.argmax(expected, axis=-1))


def test_mean_pooled_averages_the_real_tokens_unit_length_in_the_rows_order(tmp_path):
    from vbert.model.bert import BertConfig, build_backbone, encode

    backbone = build_backbone(BertConfig(vocab_size=30522, max_position_embeddings=64, **TINY_BERT))
    rows = [Row([101, *range(1000, 1000 + n), 102], n + 2) for n in (7, 1, 12, 3)]
    expected = []
    for row in rows:  # each row alone, unpadded: the mean of its token outputs, normalised
        sequence = np.asarray(encode(backbone, pad_rows([row], len(row.ids)))["sequence_output"])[0]
        mean = sequence.mean(0)
        expected.append(mean / np.linalg.norm(mean))
    np.testing.assert_allclose(mean_pooled(backbone, rows, batch_size=3), np.stack(expected), atol=1e-5)


def test_a_folder_without_its_weights_says_what_is_missing(tmp_path):
    best = tiny_finetuned(tmp_path / "best", LABELS)
    (best / "variables.npz").unlink()
    with pytest.raises(InputError, match=r"variables\.npz: missing"):
        load_finetuned(best)
