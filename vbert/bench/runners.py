"""One request of raw texts through one backend, timed two ways (the paper's Table 3 columns):

- feed-forward: the model call alone, on token ids already made;
- end-to-end: texts in, labels out: tokenisation, padding, (JSON and HTTP), the model, argmax.

The naive baseline plays the role of the paper's `estimator.predict()`: every request loads the SavedModel again
before predicting, so its feed-forward time includes the load. Over HTTP the client sees only end-to-end time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vbert.text.encoding import Encoder, Item

Features = dict[str, np.ndarray]
Encode = Callable[[list[Item]], Features]


def encoding(encoder: Encoder, pad_to: int = 0) -> Encode:
    """Texts (or pairs) -> model inputs, padded to the longest row (or to `pad_to`): the encoding the server does."""
    return lambda texts: encoder.encode_items(texts, pad_to=pad_to).features


# ONNX Runtime's intra-op threads spin for ~40 ms after a run (measured: about a core's worth of CPU time in each
# 10 ms window, then none), and a request timed right after one, above all the server's in another process, loses
# that core: BERT-base's HTTP batch-1 call took 20 ms longer (model span 179 vs 158 ms). The bench waits that long.
ONNXRUNTIME_SPIN_SECONDS = 0.06


@dataclass
class Runner:
    """A named way to run a request. `run(texts)` returns (feed-forward seconds or None, end-to-end seconds);
    `settle_seconds`: how long its thread pool stays busy after a request (the next request waits that long);
    `spans`: the server's Server-Timing spans (ms) of its last request, where it has a server."""

    backend: str  # naive | tensorflow | openvino | http | tfserving-rest | tfserving-grpc
    precision: str
    run: Callable[[list[str]], tuple[float | None, float]]
    settle_seconds: float = 0.0
    spans: Callable[[], dict[str, float]] | None = None

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"


def in_process(predict: Callable[[Features], dict], encode: Encode) -> Callable[[list[str]], tuple[float, float]]:
    """Tokenise here, call `predict`, take the argmax: the model call is timed alone as feed-forward."""

    def run(texts: list[str]) -> tuple[float, float]:
        started = time.perf_counter()
        features = encode(texts)
        model_started = time.perf_counter()
        outputs = predict(features)
        model_seconds = time.perf_counter() - model_started
        np.argmax(outputs["probabilities"], axis=-1)
        return model_seconds, time.perf_counter() - started

    return run


def tensorflow_predict(saved_model: Path) -> Callable[[Features], dict]:
    from vbert.serving.backends import TensorFlowBackend

    return TensorFlowBackend(saved_model).predict


def naive_predict(saved_model: Path) -> Callable[[Features], dict]:
    """Load the SavedModel, then predict, on every call (the paper's estimator.predict role)."""

    def predict(features: Features) -> dict:
        from vbert.serving.backends import TensorFlowBackend

        return TensorFlowBackend(saved_model).predict(features)

    return predict


def openvino_predict(xml: Path, precision: str) -> Callable[[Features], dict]:
    """An IR variant compiled as the server compiles it (the same backend class)."""
    from vbert.model.ir_folder import compile_config
    from vbert.serving.backends import OpenVINOBackend

    return OpenVINOBackend(xml, compile_config(precision), precision).predict


def onnxruntime_predict(model_file: Path, precision: str) -> Callable[[Features], dict]:
    """An ONNX model (vbert.model.onnx) in ONNX Runtime, as the server runs it (the same backend class)."""
    from vbert.serving.backends import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_file, precision).predict


def over_http_texts(client) -> Callable[[list[str]], tuple[None, float]]:
    """vbert's server: raw texts to `:classify_text` (tokenised by the server); end-to-end only."""

    def run(texts: list[str]) -> tuple[None, float]:
        started = time.perf_counter()
        client.classify_texts(texts)
        return None, time.perf_counter() - started

    return run


def over_predict_api(client, encode: Encode) -> Callable[[list[str]], tuple[None, float]]:
    """TF-Serving (REST or gRPC): tokenised by the client, `:predict`, argmax here; end-to-end only."""

    def run(texts: list[str]) -> tuple[None, float]:
        started = time.perf_counter()
        outputs = client.predict(encode(texts))
        np.argmax(outputs["probabilities"], axis=-1)
        return None, time.perf_counter() - started

    return run
