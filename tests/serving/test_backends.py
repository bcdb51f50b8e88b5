"""Backends: the warm-up covers every shape a bucketing server meets, on a real OpenVINO model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import tiny_pipeline_models
from vbert.serving.backends import load_version, warm_up, warm_up_shapes

pytestmark = pytest.mark.xdist_group("heavy")


def test_warm_up_shapes_by_hand():
    # widths: multiples of 16 up to max_seq_length 40, the last bucket cut to 40; one row (never padded): every width
    assert warm_up_shapes(40, 16, (4,)) == [(4, 16), (4, 32), (4, 40)]
    assert warm_up_shapes(32, 16, (2,)) == [(2, 16), (2, 32)]
    assert warm_up_shapes(5, 16, (1, 2)) == [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 5)]
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
    assert recording.shapes == [*((1, width) for width in range(1, 33)), (3, 16), (3, 32)]
    ids = model.encoder(["a short text"]).features
    assert np.isclose(model.backend.predict(ids)["probabilities"].sum(), 1.0, atol=1e-5)


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


def test_openvino_results_stay_valid_after_the_next_call_on_the_thread_s_kept_request(tmp_path):
    """The backend reuses one infer request per thread: an earlier call's outputs are copies, not views of the
    request's buffers that the next call overwrites; other threads get their own requests."""
    import threading

    version = tiny_pipeline_models(tmp_path, ["admin", "net"]) / "ir" / "vbert" / "1"
    model = load_version("openvino", version)
    texts = ["a short text", "the network daemon for the admin of many machines"]
    alone = [model.backend.predict(model.encoder([text]).features)["probabilities"].copy() for text in texts]
    assert not np.array_equal(alone[0], alone[1])  # a random tiny model: they differ in the 6th digit
    first = model.backend.predict(model.encoder([texts[0]]).features)["probabilities"]
    model.backend.predict(model.encoder([texts[1]]).features)
    np.testing.assert_array_equal(first, alone[0])
    elsewhere = {}
    thread = threading.Thread(
        target=lambda: elsewhere.update(model.backend.predict(model.encoder([texts[1]]).features))
    )
    thread.start()
    thread.join()
    np.testing.assert_array_equal(elsewhere["probabilities"], alone[1])
