"""The server for real: uvicorn on 127.0.0.1 with a tiny model, TF-Serving's REST formats, batching, bad requests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.helpers import REPO, free_ports, tiny_pipeline_models
from vbert.model.export import random_inputs

pytestmark = pytest.mark.xdist_group("heavy")
LABELS = ["games", "science", "utils"]


def call(url: str, body: bytes | dict | None = None, timeout: float = 60) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def start_server(backend: str, model_dir, *extra: str) -> tuple[subprocess.Popen, str]:
    (port,) = free_ports(1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ["--backend", backend, "--model-dir", str(model_dir), "--port", str(port), *extra]
    process = subprocess.Popen(
        [sys.executable, "-m", "vbert.serving", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            if call(f"{url}/readyz", timeout=2)[0] == 200:
                return process, url
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError("server did not become ready")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_pipeline_models(tmp_path_factory.mktemp("serving"), LABELS)


@pytest.fixture(scope="module")
def servers(models):
    started = [
        start_server("openvino", models / "ir" / "vbert", "--batch-timeout-micros", "50000"),
        start_server("tensorflow", models / "serving" / "vbert"),
    ]
    yield {"openvino": started[0][1], "tensorflow": started[1][1]}
    for process, _ in started:
        process.terminate()
        process.wait(timeout=30)


def reference(models, inputs) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(str(models / "serving" / "vbert" / "1")).signatures["serving_default"]
    return serve(**inputs)["probabilities"].numpy()


def test_row_and_columnar_formats_give_the_models_predictions(models, servers):
    inputs = random_inputs(3, 16, 30522, seed=7)
    expected = reference(models, inputs)
    for backend, url in servers.items():
        status, rows = call(
            f"{url}/v1/models/vbert:predict",
            {"instances": [{k: v[i].tolist() for k, v in inputs.items()} for i in range(3)]},
        )
        assert status == 200, rows
        np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]], expected, atol=1e-4)
        status, columns = call(
            f"{url}/v1/models/vbert/versions/1:predict", {"inputs": {k: v.tolist() for k, v in inputs.items()}}
        )
        assert status == 200, columns
        np.testing.assert_allclose(columns["outputs"]["probabilities"], expected, atol=1e-4, err_msg=backend)
        assert np.asarray(columns["outputs"]["logits"]).shape == (3, 3)


def test_status_health_and_text_endpoint(servers):
    url = servers["openvino"]
    assert call(f"{url}/v1/models/vbert") == (
        200,
        {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        },
    )
    assert call(f"{url}/healthz")[0] == 200 and call(f"{url}/readyz")[1]["precision"] == "fp32"
    status, body = call(f"{url}/v1/models/vbert:classify_text", {"texts": ["A puzzle game.", "word " * 100]})
    assert status == 200, body
    assert [p["label"] in LABELS for p in body["predictions"]] == [True, True]
    assert abs(sum(body["predictions"][0]["probabilities"].values()) - 1) < 1e-5
    assert body["truncated_rows"] == [1]  # 100 words do not fit max_seq_length 32
    texts = ["Ünïcödé Café", "unicode cafe"]  # one tokenizer for training and serving: accents stripped
    status, body = call(f"{url}/v1/models/vbert:classify_text", {"texts": texts})
    assert body["predictions"][0] == body["predictions"][1]


def test_concurrent_requests_are_batched(servers):
    url = servers["openvino"]
    inputs = random_inputs(1, 12, 30522, seed=3)
    body = {"inputs": {k: v.tolist() for k, v in inputs.items()}}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(f"{url}/v1/models/vbert:predict", body), range(16)))
    assert all(status == 200 for status, _ in results)
    first = results[0][1]["outputs"]["probabilities"]
    assert all(np.allclose(r["outputs"]["probabilities"], first, atol=1e-6) for _, r in results)
    text = call(f"{url}/metrics")[1]
    rows = float(re.search(r"^vbert_batch_size_sum (\S+)", text, re.M).group(1))
    batches = float(re.search(r"^vbert_batch_size_count (\S+)", text, re.M).group(1))
    assert rows / batches > 1, text  # at least one inference merged several requests


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b'{"texts": ["\xff"]}', 400, "not UTF-8"),
        ({"instances": [{"input_ids": [1, 2]}]}, 400, "missing ['input_mask', 'segment_ids']"),
        ({"inputs": {"input_ids": [1, 2], "input_mask": [1, 1], "segment_ids": [0, 0]}}, 400, "expected shape"),
        ({"inputs": {"input_ids": [[1.5]], "input_mask": [[1]], "segment_ids": [[0]]}}, 400, "expected integers"),
        ({"inputs": {"input_ids": [[99999]], "input_mask": [[1]], "segment_ids": [[0]]}}, 400, "[0, 30522)"),
        (
            {"inputs": {"input_ids": [[1, 2], [3]], "input_mask": [[1, 1], [1]], "segment_ids": [[0, 0], [0]]}},
            400,
            "rectangular",
        ),
        ({"instances": [], "inputs": {}}, 400, "exactly one of"),
        ({"texts": ["x"] * 1000}, 413, "the limit is 256"),
        (b"[" + b"1," * 3_000_000 + b"1]", 413, "exceeds the limit"),
    ],
)
def test_bad_requests_get_their_4xx_and_the_server_stays_up(servers, body, status, message):
    url = servers["openvino"]
    texts = (b'{"texts"' in body) if isinstance(body, bytes) else "texts" in body
    endpoint = "classify_text" if texts else "predict"
    got, answer = call(f"{url}/v1/models/vbert:{endpoint}", body)
    assert got == status and message in answer["error"], answer
    assert call(f"{url}/v1/models/nope:predict", {"instances": [1]})[0] == 404
    good = random_inputs(1, 8, 30522)
    assert call(f"{url}/v1/models/vbert:predict", {"inputs": {k: v.tolist() for k, v in good.items()}})[0] == 200


def test_new_versions_are_picked_up_and_broken_ones_refused(models, tmp_path):
    import shutil

    model_dir = tmp_path / "vbert"
    shutil.copytree(models / "ir" / "vbert" / "1", model_dir / "1")
    process, url = start_server("openvino", model_dir, "--poll-seconds", "0.2")
    try:

        def wait_for(check, seconds=60):
            deadline = time.monotonic() + seconds
            while not check():
                assert time.monotonic() < deadline
                time.sleep(0.1)

        broken = tmp_path / "staging-2"
        shutil.copytree(model_dir / "1", broken)
        (broken / "model.xml").write_text("<net>not a model</net>")
        broken.rename(model_dir / "2")
        wait_for(lambda: len(call(f"{url}/v1/models/vbert")[1]["model_version_status"]) == 2)
        versions = call(f"{url}/v1/models/vbert")[1]["model_version_status"]
        assert [(v["version"], v["state"]) for v in versions] == [("1", "AVAILABLE"), ("2", "END")]
        assert versions[1]["status"]["error_message"]
        status, body = call(f"{url}/v1/models/vbert:classify_text", {"texts": ["still serving"]})
        assert status == 200 and body["model_version"] == "1"

        good = tmp_path / "staging-3"
        shutil.copytree(model_dir / "1", good)
        good.rename(model_dir / "3")  # dropped in whole, as the freeze and ir stages write
        wait_for(lambda: call(f"{url}/readyz")[1]["version"] == 3)
        status, body = call(f"{url}/v1/models/vbert:classify_text", {"texts": ["new version"]})
        assert status == 200 and body["model_version"] == "3"
        assert call(f"{url}/v1/models/vbert/versions/1:predict", {"instances": []})[0] == 404
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_rest_client_in_both_formats_and_its_errors(models, servers):
    from vbert.serving.client import RestClient, ServerError

    inputs = random_inputs(2, 10, 30522, seed=11)
    expected = reference(models, inputs)
    client = RestClient(servers["openvino"], "vbert")
    for columnar in (True, False):
        np.testing.assert_allclose(client.predict(inputs, columnar)["probabilities"], expected, atol=1e-4)
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.classify_texts(["a game"])["predictions"][0]["label"] in LABELS
    with pytest.raises(ServerError, match="HTTP 404"):
        RestClient(servers["openvino"], "vbert", version=9).predict(inputs)


def test_grpc_client_against_a_prediction_service_on_localhost(models):
    """TF-Serving's gRPC API, served here by a PredictionService over the SavedModel (no TF-Serving binary exists
    on this machine); the client builds real PredictRequests through tensorflow-serving-api's stubs."""
    from concurrent import futures

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from vbert.serving.client import GrpcClient

    serve = tf.saved_model.load(str(models / "serving" / "vbert" / "1")).signatures["serving_default"]

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            assert request.model_spec.name == "vbert" and request.model_spec.signature_name == "serving_default"
            outputs = serve(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        inputs = random_inputs(3, 9, 30522, seed=5)
        client = GrpcClient(f"127.0.0.1:{port}", "vbert")
        np.testing.assert_allclose(client.predict(inputs)["probabilities"], reference(models, inputs), atol=1e-6)
        client.close()
    finally:
        server.stop(0)


def test_tfserving_backend_forwards_to_a_rest_endpoint(models, servers):
    """`--backend tfserving` forwards to TF-Serving's REST API; here our TensorFlow server plays TF-Serving."""
    process, url = start_server(
        "tfserving",
        models / "serving" / "vbert",
        "--tfserving-url",
        f"{servers['tensorflow']}/v1/models/vbert",
    )
    try:
        inputs = random_inputs(2, 12, 30522, seed=21)
        status, body = call(f"{url}/v1/models/vbert:predict", {"inputs": {k: v.tolist() for k, v in inputs.items()}})
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"]["probabilities"], reference(models, inputs), atol=1e-5)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_queue_limit_and_batching_off(models):
    inputs = {k: v.tolist() for k, v in random_inputs(8, 12, 30522, seed=2).items()}
    small = {k: v[:1] for k, v in inputs.items()}
    limited, url = start_server(
        "openvino", models / "ir" / "vbert", "--max-batch-size", "4", "--max-enqueued-batches", "1"
    )
    try:
        status, body = call(f"{url}/v1/models/vbert:predict", {"inputs": inputs})  # 8 rows; the queue holds 4
        assert status == 503 and "server busy" in body["error"], body
        assert call(f"{url}/v1/models/vbert:predict", {"inputs": small})[0] == 200
    finally:
        limited.terminate()
        limited.wait(timeout=30)
    unbatched, url = start_server("openvino", models / "ir" / "vbert", "--disable-batching")
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: call(f"{url}/v1/models/vbert:predict", {"inputs": small})[0], range(16)))
        assert codes == [200] * 16
        text = call(f"{url}/metrics")[1]
        rows = float(re.search(r"^vbert_batch_size_sum (\S+)", text, re.M).group(1))
        batches = float(re.search(r"^vbert_batch_size_count (\S+)", text, re.M).group(1))
        assert rows == batches == 16  # one inference per one-row request: nothing merged
    finally:
        unbatched.terminate()
        unbatched.wait(timeout=30)
