"""Inference backends behind the server: OpenVINO IR, ONNX Runtime or a TF SavedModel in process, or a TF-Serving
REST URL.

Each takes int32 `input_ids`, `input_mask`, `segment_ids` of shape [batch, seq] and returns float32
`probabilities` and `logits` of shape [batch, labels]. A model folder is one version of TF-Serving's layout: the
ir stage's `<name>/<version>/` (model.xml + the tokenizer, labels.txt, serving.json, ir.json), a folder of
`vbert.model.onnx` (model.onnx, model.int8.onnx, the same files) or the freeze stage's SavedModel (assets/ holds the
same files).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vbert.core.errors import InputError
from vbert.model.export import OUTPUT_NAMES as OUTPUTS
from vbert.model.export import SERVING_CONFIG, ServingConfig
from vbert.text.encoding import Encoder
from vbert.text.tokenization import load_tokenizer

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What runs a model: int32 `input_ids`, `input_mask`, `segment_ids` [batch, seq] in, float32 `probabilities`
    and `logits` [batch, labels] out."""

    precision: str

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass
class LoadedModel:
    """A model version ready to serve: its backend, the encoder of its texts and its serving config."""

    version: int
    backend: Backend
    encoder: Encoder
    config: ServingConfig

    @property
    def vocab_size(self) -> int:
        return len(self.encoder.tokenizer.vocab)


def _assets(version_dir: Path) -> Path:
    return version_dir / "assets" if (version_dir / "assets" / SERVING_CONFIG).exists() else version_dir


BACKENDS = ("openvino", "onnxruntime", "tensorflow", "tfserving")


def warm_up_shapes(max_seq_length: int, bucket: int, rows: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (rows, width) inputs a server padding to multiples of `bucket` meets for these row counts: every width
    bucket up to max_seq_length for each count in `rows`, and for one row every width (a lone row is not padded,
    vbert.serving.batching.inference_width)."""
    buckets = sorted({min(width, max_seq_length) for width in range(bucket, max_seq_length + bucket, bucket)})
    return [(n, width) for n in rows for width in (range(1, max_seq_length + 1) if n == 1 else buckets)]


def warm_up(backend: Backend, shapes: list[tuple[int, int]]) -> float:
    """One inference of each (rows, width): OpenVINO plans every new input shape on first sight (tens of ms), so
    requests then meet shapes it has seen. Returns the seconds it took."""
    started = time.perf_counter()
    for rows, width in shapes:
        ids = np.zeros((rows, width), np.int32)
        backend.predict({"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": ids})
    return time.perf_counter() - started


def load_version(
    kind: str,
    version_dir: Path,
    threads: int = 0,
    tfserving_url: str = "",
    warm_up_rows: tuple[int, ...] = (),
    bucket: int = 16,
) -> LoadedModel:
    """Load one version folder with the named backend (`openvino`, `tensorflow`, or `tfserving`: forward to the
    TF-Serving at `tfserving_url`, e.g. http://host:8501, under the model folder's name, using the folder for its
    tokenizer and labels), check it with one request, and warm it up on the shapes of `warm_up_rows` rows at every
    width bucket (`warm_up_shapes`)."""
    assets = _assets(version_dir)
    if not (assets / SERVING_CONFIG).exists():
        raise InputError(f"{version_dir}: no {SERVING_CONFIG}; not a model exported by the freeze or ir stage")
    config = ServingConfig.from_json(assets / SERVING_CONFIG)
    if kind == "openvino":
        backend = OpenVINOBackend.from_version(version_dir, threads)
    elif kind == "onnxruntime":
        backend = OnnxRuntimeBackend.from_version(version_dir, threads)
    elif kind == "tensorflow":
        backend = TensorFlowBackend(version_dir)
    elif kind == "tfserving" and tfserving_url:
        backend = TFServingBackend(f"{tfserving_url.rstrip('/')}/v1/models/{version_dir.parent.name}")
    else:
        raise InputError(f"backend {kind!r}: choose openvino, onnxruntime, tensorflow, or tfserving with a URL")
    encoder = Encoder(load_tokenizer(assets), config.max_seq_length)
    model = LoadedModel(int(version_dir.name), backend, encoder, config)
    warm = np.zeros((1, 8), np.int32)
    outputs = backend.predict({"input_ids": warm, "input_mask": np.ones_like(warm), "segment_ids": warm})
    if outputs["probabilities"].shape != (1, len(config.labels)):
        raise InputError(f"{version_dir}: outputs {outputs['probabilities'].shape}, expected (1, {len(config.labels)})")
    if warm_up_rows:
        shapes = warm_up_shapes(config.max_seq_length, bucket, warm_up_rows)
        log.info("%s: warmed up on %d shapes in %.1f s", version_dir, len(shapes), warm_up(backend, shapes))
    return model


class OpenVINOBackend:
    """An IR compiled for this CPU with the LATENCY hint and its precision's compile hints. Each thread keeps one
    infer request (creating one per call cost ~0.05 ms of a 0.45 ms tiny-model call) and hands it its inputs
    without a copy; outputs are copied out of the request, so a result stays valid after the next call."""

    def __init__(self, xml: Path, compile_config: dict[str, str], precision: str, threads: int = 0):
        import openvino as ov

        config = {**compile_config, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(xml), "CPU", config)
        self.precision = precision
        self._requests = threading.local()

    @classmethod
    def from_version(cls, version_dir: Path, threads: int = 0) -> OpenVINOBackend:
        """The ir stage's version folder (`vbert.model.ir_folder`), compiled with the hints it was written with."""
        from vbert.model.ir_folder import model_xml, read_settings

        settings = read_settings(version_dir)
        return cls(model_xml(version_dir), settings.compile_config, settings.precision, threads)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = getattr(self._requests, "request", None)
        if request is None:
            request = self._requests.request = self.compiled.create_infer_request()
        contiguous = {name: np.ascontiguousarray(array) for name, array in inputs.items()}
        results = request.infer(contiguous, share_inputs=True, share_outputs=False)
        by_name = {output.get_any_name(): results[output] for output in self.compiled.outputs}
        return {name: np.asarray(by_name[name], np.float32) for name in OUTPUTS}


class OnnxRuntimeBackend:
    """An ONNX model in ONNX Runtime's CPU execution provider, all graph optimisations on."""

    def __init__(self, model_file: Path, precision: str, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.precision = precision

    @classmethod
    def from_version(cls, version_dir: Path, threads: int = 0, precision: str = "") -> OnnxRuntimeBackend:
        """A `vbert.model.onnx` folder: its int8 model when `precision` is int8, else its fp32 one."""
        from vbert.model.onnx import FILES

        chosen = precision or "fp32"
        model_file = version_dir / FILES.get(chosen, FILES["fp32"])
        if not model_file.exists():
            raise InputError(f"{version_dir}: no {model_file.name} (vbert.model.onnx.export_onnx writes it)")
        return cls(model_file, chosen, threads)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(OUTPUTS), {k: np.asarray(v, np.int32) for k, v in inputs.items()})
        return {name: np.asarray(value, np.float32) for name, value in zip(OUTPUTS, outputs, strict=True)}


class TensorFlowBackend:
    """The SavedModel's `serving_default` signature in process."""

    def __init__(self, version_dir: Path):
        import tensorflow as tf

        if not (version_dir / "saved_model.pb").exists():
            raise InputError(f"{version_dir}: no saved_model.pb (the freeze stage's output)")
        self.signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        self.precision = "fp32"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        outputs = self.signature(**{k: tf.constant(v) for k, v in inputs.items()})
        return {name: outputs[name].numpy() for name in OUTPUTS}


class TFServingBackend:
    """Forwards columnar predict requests to a TF-Serving REST endpoint (`http://host:8501/v1/models/name`)."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.precision = "fp32"

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        body = json.dumps({"inputs": {k: v.tolist() for k, v in inputs.items()}}).encode()
        request = urllib.request.Request(f"{self.url}:predict", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            outputs = json.loads(response.read())["outputs"]
        return {name: np.asarray(outputs[name], np.float32) for name in OUTPUTS}
