"""The ir stage for real: OpenVINO conversion with dynamic shapes, NNCF INT8, the accuracy gate and the choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import REPO, from_params, tiny_finetuned, write_lines
from vbert.evaluation.scores import classification_scores
from vbert.model.export import random_inputs
from vbert.model.ir_folder import FP32_CONFIG as COMPILE_CONFIG
from vbert.pipeline.freeze import freeze
from vbert.pipeline.ir import IRJob, build_ir, choose

pytestmark = pytest.mark.xdist_group("heavy")
LABELS = ["games", "science", "utils"]


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    root = tmp_path_factory.mktemp("ir")
    freeze(tiny_finetuned(root / "best", LABELS), root / "serving" / "vbert", 1)
    write_task(root / "task", LABELS)
    return root


def write_task(folder, labels: list[str], rows: int = 30):
    for split in ("train", "eval", "test"):
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines()
        kept = [line for line in lines[1:] if line.split("\t")[0] in labels][:rows]
        write_lines(folder / f"{split}.tsv", [lines[0], *kept])
    return folder


def ir_job(serving_dir, task_dir, out_dir, **changes) -> IRJob:
    return from_params(IRJob, "ir", serving_dir=serving_dir, task_dir=task_dir, out_dir=out_dir, **changes)


def test_variants_gated_timed_and_the_fastest_kept(frozen, tmp_path):
    import openvino as ov
    import tensorflow as tf

    job = ir_job(frozen / "serving" / "vbert", frozen / "task", tmp_path / "ir", calibration_size=20, timing_repeats=3)
    metrics = build_ir(job)
    variants = metrics["variants"]
    assert set(variants) == {"fp32", "fp16", "bf16", "int8", "int8-bf16"}
    assert variants["fp32"]["max_probability_delta"] < 1e-5 and variants["fp32"]["f1_drop"] == 0
    assert variants["fp16"]["size_mb"] < 0.6 * variants["fp32"]["size_mb"]  # weights stored in half precision
    fastest = min((v["ms_per_request"], p) for p, v in variants.items() if v["passes"])[1]
    assert metrics["chosen"] == fastest
    served = tmp_path / "ir" / "vbert" / "1"
    assert json.loads((served / "ir.json").read_text())["precision"] == fastest
    assert (served / "labels.txt").read_text().split() == LABELS

    # the kept FP32 model takes any batch and length, and agrees with TensorFlow
    compiled = ov.Core().compile_model(str(tmp_path / "ir" / "variants" / "fp32" / "model.xml"), "CPU", COMPILE_CONFIG)
    serve = tf.saved_model.load(str(frozen / "serving" / "vbert" / "1")).signatures["serving_default"]
    for batch, seq in ((1, 7), (5, 32)):
        x = random_inputs(batch, seq, 30522, seed=seq)
        np.testing.assert_allclose(compiled(x)["probabilities"], serve(**x)["probabilities"].numpy(), atol=1e-5)


def test_choice_and_gate():
    results = {
        "fp32": {"passes": True, "ms_per_request": 10.0},
        "int8": {"passes": True, "ms_per_request": 16.0},
        "fp16": {"passes": False, "ms_per_request": 5.0},
    }
    assert choose(results, "auto") == "fp32"  # fp16 is faster but fails the gate
    assert choose({"int8": results["int8"]}, "int8") == "int8"
    with pytest.raises(Exception, match="fp16 fails the accuracy gate"):
        choose({"fp16": results["fp16"], "fp32": results["fp32"]}, "fp16")


def test_a_binary_task_is_gated_on_the_f1_finetune_reports(tmp_path):
    """With positive_label set, the ir stage's test_f1 is the positive class's F1 (finetune's), not macro-F1."""
    import tensorflow as tf

    from vbert.pipeline.ir import encoded_split

    labels = ["games", "utils"]
    best = tiny_finetuned(tmp_path / "best", labels, positive_label="games", seed=3)
    freeze(best, tmp_path / "serving" / "vbert", 1)
    task = write_task(tmp_path / "task", labels, rows=40)
    metrics = build_ir(ir_job(tmp_path / "serving" / "vbert", task, tmp_path / "ir", precision="fp32"))

    version = tmp_path / "serving" / "vbert" / "1"
    features, gold, _ = encoded_split(version, task, "test")
    predicted = tf.saved_model.load(str(version)).signatures["serving_default"](**features)["probabilities"]
    predicted = predicted.numpy().argmax(-1)
    positive = classification_scores(gold, predicted, 2, positive=0)["f1"]
    macro = classification_scores(gold, predicted, 2, positive=None)["f1"]
    assert positive != pytest.approx(macro, abs=1e-3)  # the two readings differ on this model
    assert metrics["tensorflow_test_f1"] == pytest.approx(positive, abs=1e-6)
    assert metrics["variants"]["fp32"]["test_f1"] == pytest.approx(positive, abs=1e-6)
