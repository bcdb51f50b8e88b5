"""The freeze stage: TF-Serving's layout, one copy of each weight, the same outputs as the Keras model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import run_stage, tiny_finetuned
from vbert.model.classifier import load_finetuned
from vbert.model.export import random_inputs
from vbert.pipeline.freeze import freeze

pytestmark = pytest.mark.xdist_group("heavy")


def test_saved_model_layout_signature_and_outputs(tmp_path):
    import tensorflow as tf

    best = tiny_finetuned(tmp_path / "best", ["games", "science", "utils"])
    metrics = freeze(best, tmp_path / "serving" / "vbert", 3)
    version = tmp_path / "serving" / "vbert" / "3"
    assert (version / "saved_model.pb").exists() and (version / "variables").is_dir()
    assert (version / "assets" / "labels.txt").read_text().split() == ["games", "science", "utils"]
    assert json.loads((version / "assets" / "serving.json").read_text())["max_seq_length"] == 32
    assert (version / "assets" / "vocab.txt").read_text().splitlines()[101] == "[CLS]"
    assert json.loads((version / "assets" / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert (version / "assets" / "bert_config.json").read_text() == (best / "bert_config.json").read_text()

    # every weight stored once: the variables are about the weights' size (Keras 3's export doubles them)
    assert metrics["variables_mb"] < 1.1 * metrics["weights_mb"]

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    assert {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()} == {
        name: (tf.int32, [None, None]) for name in ("input_ids", "input_mask", "segment_ids")
    }
    model, _, _ = load_finetuned(best)
    for batch, seq in ((1, 5), (3, 32)):  # both dimensions dynamic
        x = random_inputs(batch, seq, 30522, seed=batch)
        expected = np.asarray(model(x, training=False))
        out = serve(**x)
        np.testing.assert_allclose(out["logits"].numpy(), expected, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
    assert metrics["max_logit_difference_to_keras"] < 1e-5


def test_freeze_stage_names_what_is_missing(tmp_path):
    nothing = str(tmp_path / "nothing")
    paths = ("--teacher", nothing, "--student", nothing, "--pretrain", nothing, "--out", str(tmp_path / "out"))
    paths += ("--hf", str(tmp_path / "hf"), "--teacher-out", str(tmp_path / "teacher"))
    paths += ("--metrics", str(tmp_path / "m.json"))
    result = run_stage("freeze", *paths)
    assert result.returncode == 2 and "selection.json: missing; run the distill stage first" in result.stderr
    assert not any((tmp_path / name).exists() for name in ("out", "hf", "teacher", "m.json"))
