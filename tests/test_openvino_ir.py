"""The ir stage for real: OpenVINO conversion with dynamic shapes, NNCF INT8, the accuracy gate and the choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vbert.export import freeze, random_inputs
from vbert.openvino_ir import COMPILE_CONFIG, IRJob, build_ir, choose

from .helpers import REPO, tiny_finetuned, write_lines

pytestmark = pytest.mark.xdist_group("heavy")
LABELS = ["games", "science", "utils"]


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    root = tmp_path_factory.mktemp("ir")
    freeze(tiny_finetuned(root / "best", LABELS), root / "serving", "vbert", 1)
    for split, rows in (("train", 30), ("eval", 30), ("test", 30)):
        lines = (REPO / f"data/sample/pkg_section/{split}.tsv").read_text().splitlines()
        kept = [line for line in lines[1:] if line.split("\t")[0] in LABELS][:rows]
        write_lines(root / "task" / f"{split}.tsv", [lines[0], *kept])
    return root


def test_variants_gated_timed_and_the_fastest_kept(frozen, tmp_path):
    import openvino as ov
    import tensorflow as tf

    job = IRJob(frozen / "serving" / "vbert", frozen / "task", tmp_path / "ir", calibration_size=20, timing_repeats=3)
    metrics = build_ir(job)
    variants = metrics["variants"]
    assert set(variants) == {"fp32", "fp16", "bf16", "int8"}
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
