"""Backends: the warm-up covers every shape a bucketing server meets, on a real OpenVINO model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import tiny_pipeline_models
from vbert.serving.backends import load_version, warm_up, warm_up_shapes

pytestmark = pytest.mark.xdist_group("heavy")


def test_warm_up_shapes_by_hand():
    # widths: multiples of 16 up to max_seq_length 40, the last bucket cut to 40
    assert warm_up_shapes(40, 16, (1, 4)) == [(1, 16), (1, 32), (1, 40), (4, 16), (4, 32), (4, 40)]
    assert warm_up_shapes(32, 16, (2,)) == [(2, 16), (2, 32)]
    assert warm_up_shapes(32, 16, ()) == []


class Recording:
    """An OpenVINO backend that records the shapes it computes."""

    def __init__(self, backend):
        self.backend, self.shapes = backend, []

    def predict(self, inputs):
        self.shapes.append(inputs["input_ids"].shape)
        return self.backend.predict(inputs)


def test_an_openvino_model_is_warmed_up_on_every_bucket(tmp_path):
    version = tiny_pipeline_models(tmp_path, ["admin", "net"]) / "ir" / "vbert" / "1"
    model = load_version("openvino", version, warm_up_rows=(1, 3), bucket=16)  # max_seq_length 32
    recording = Recording(model.backend)
    assert warm_up(recording, warm_up_shapes(32, 16, (1, 3))) > 0
    assert recording.shapes == [(1, 16), (1, 32), (3, 16), (3, 32)]
    ids = model.encoder(["a short text"]).features
    assert np.isclose(model.backend.predict(ids)["probabilities"].sum(), 1.0, atol=1e-5)


def test_reused_infer_requests_give_a_fresh_requests_answers_whatever_the_shapes_and_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from vbert.model.export import random_inputs

    version = tiny_pipeline_models(tmp_path, ["admin", "net"]) / "ir" / "vbert" / "1"
    backend = load_version("openvino", version).backend
    shapes = [(1, 16), (4, 32), (1, 16), (2, 8), (4, 32), (3, 24)] * 3
    inputs = [random_inputs(rows, width, 30522, seed=i) for i, (rows, width) in enumerate(shapes)]

    def fresh(features):
        results = backend.compiled.create_infer_request().infer(features)
        return {o.get_any_name(): np.array(results[o]) for o in backend.compiled.outputs}["probabilities"]

    expected = [fresh(x) for x in inputs]
    answers = [backend.predict(x)["probabilities"] for x in inputs]  # one request, reused, shapes changing
    kept = [a.copy() for a in answers]
    for got, want in zip(answers, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    with ThreadPoolExecutor(4) as pool:  # concurrent callers: a request each
        concurrent = list(pool.map(lambda x: backend.predict(x)["probabilities"], inputs))
    for got, want in zip(concurrent, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, was in zip(answers, kept, strict=True):  # earlier answers untouched by later inferences
        np.testing.assert_array_equal(got, was)


def test_a_version_folder_that_is_not_a_model_ends_in_one_line_not_a_traceback(tmp_path):
    import subprocess
    import sys

    (tmp_path / "vbert/1").mkdir(parents=True)  # a version folder without serving.json
    command = [sys.executable, "-m", "vbert.serving", "--model-dir", str(tmp_path / "vbert"), "--grpc-port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"Error: {tmp_path / 'vbert/1'}: no serving.json; not a model exported by the freeze or ir stage"
    )
