"""The serving model as ONNX: tf2onnx's conversion of the freeze stage's SavedModel gives TensorFlow's
probabilities in ONNX Runtime (dynamic batch and length), its int8 form stays close, and the server serves it."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import onnx
import pytest

from tests.helpers import tiny_pipeline_models
from vbert.model.export import random_inputs
from vbert.model.onnx import export_onnx
from vbert.serving.backends import OnnxRuntimeBackend, load_version
from vbert.serving.launcher import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    models = tiny_pipeline_models(root / "m", ["admin", "net"])
    version = models / "serving" / "vbert" / "1"
    files = export_onnx(version, root / "onnx" / "vbert" / "1")
    return version, files


def test_onnx_runtime_gives_tensorflow_s_probabilities_at_any_shape(exported):
    version, files = exported
    tensorflow = load_version("tensorflow", version).backend
    fp32 = OnnxRuntimeBackend(files["fp32"], "fp32")
    int8 = OnnxRuntimeBackend(files["int8"], "int8")
    for batch, seq in ((1, 8), (3, 32), (5, 17)):
        inputs = random_inputs(batch, seq, 30522, seed=batch)
        expected = tensorflow.predict(inputs)
        got = fp32.predict(inputs)
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
        np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-4)
        assert np.abs(int8.predict(inputs)["probabilities"] - expected["probabilities"]).max() < 0.05
    int8_graph = onnx.load(str(files["int8"])).graph
    constants = {initializer.name for initializer in int8_graph.initializer}
    float_products = [n.name for n in int8_graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in constants]
    assert not float_products  # every product with a constant weight runs in int8
    assert sum(n.op_type == "MatMulInteger" for n in int8_graph.node) >= 12  # 6 per layer, 2 layers


def test_an_exact_gelu_model_converts_too(tmp_path):
    """MiniLM and other Hugging Face models use the exact GELU, which TensorFlow computes with Erfc (no ONNX op)."""
    import keras

    from tests.helpers import TINY_BERT, uncased_tokenizer
    from vbert.model.bert import BertConfig, build_classifier
    from vbert.model.export import ServingConfig, export_saved_model

    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=30522, max_position_embeddings=64, gelu_approximate=False, **TINY_BERT)
    model = build_classifier(config, 2)
    version = export_saved_model(
        model, config, ServingConfig(["a", "b"], 32, None), uncased_tokenizer(tmp_path / "tok"), tmp_path / "sm" / "1"
    )
    files = export_onnx(version, tmp_path / "onnx")
    assert not any(n.op_type == "Erfc" for n in onnx.load(str(files["fp32"])).graph.node)
    inputs = random_inputs(2, 9, 30522, seed=1)
    expected = load_version("tensorflow", version).backend.predict(inputs)["probabilities"]
    np.testing.assert_allclose(
        OnnxRuntimeBackend(files["fp32"], "fp32").predict(inputs)["probabilities"], expected, atol=1e-5
    )
    assert np.abs(OnnxRuntimeBackend(files["int8"], "int8").predict(inputs)["probabilities"] - expected).max() < 0.05


def test_the_server_serves_the_onnx_folder(exported, tmp_path):
    version, files = exported
    folder = files["fp32"].parent
    texts = ["network proxy daemon", "system administration tool"]
    expected = load_version("tensorflow", version)
    features = expected.encoder(texts).features
    probabilities = expected.backend.predict(features)["probabilities"]
    arguments = ["--backend", "onnxruntime", "--model-dir", str(folder.parent), "--poll-seconds", "0"]
    with running_server(arguments, tmp_path / "server.log") as server:
        body = json.dumps({"texts": texts}).encode()
        request = urllib.request.Request(f"{server.url}/v1/models/vbert:classify_text", body, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answers = json.loads(response.read())["predictions"]
    labels = expected.config.labels
    for answer, row in zip(answers, probabilities, strict=True):
        assert [answer["probabilities"][label] for label in labels] == pytest.approx(row.tolist(), abs=1e-5)
