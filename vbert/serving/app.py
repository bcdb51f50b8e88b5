"""The server: TF-Serving's REST API over an OpenVINO or TensorFlow backend, with dynamic batching.

    POST /v1/models/{name}[/versions/{v}]:predict   {"instances": [...]} (row) or {"inputs": {...}} (columnar)
    GET  /v1/models/{name}[/versions/{v}]           model version status, as TF-Serving
    POST /v1/models/{name}:classify_text            {"texts": ["...", ...]} -> labels and probabilities
    GET  /healthz, /readyz, /metrics                liveness, readiness, Prometheus

Errors come back as TF-Serving's `{"error": "..."}` with a 4xx/5xx status; the server stays up.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vbert.model.export import OUTPUT_NAMES as OUTPUTS
from vbert.serving.backends import LoadedModel
from vbert.serving.batching import QueueFull
from vbert.serving.versions import ModelVersions, Served
from vbert.text.encoding import INPUT_NAMES, Encoded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 << 20
    max_texts: int = 256
    max_rows: int = 1024


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Metrics:
    """Prometheus series of one server (own registry, so several servers can live in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vbert_requests", "Requests by endpoint and status", ["endpoint", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "vbert_request_seconds",
            "Request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "vbert_batch_size",
            "Rows per model inference",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )
        self.batch_length = Histogram(
            "vbert_batch_sequence_length",
            "Padded length per inference",
            registry=self.registry,
            buckets=(16, 32, 64, 128, 256, 512),
        )
        self.inference = Histogram("vbert_inference_seconds", "Model time per inference", registry=self.registry)
        self.queue_depth = Gauge("vbert_queue_rows", "Rows waiting for a batch", registry=self.registry)
        self.truncated = Counter("vbert_truncated_rows", "Rows cut to max_seq_length", registry=self.registry)


def create_app(versions: ModelVersions, model: LoadedModel, name: str, limits: Limits = Limits()) -> FastAPI:
    """A FastAPI app serving the versions in `versions.model_dir` as `name`, starting with `model` (loaded)."""
    metrics = Metrics()

    def on_batch(rows: int, length: int, seconds: float) -> None:
        metrics.batch_size.observe(rows)
        metrics.batch_length.observe(length)
        metrics.inference.observe(seconds)

    versions.on_batch = on_batch

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await versions.start(model)
        yield
        await versions.stop()

    app = FastAPI(title="vbert", lifespan=lifespan)
    app.state.versions, app.state.metrics = versions, metrics

    async def read_json(request: Request) -> dict:
        # Read at most the limit; drain (without keeping) the rest, so that the client gets to read the 413.
        body, size = bytearray(), 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limits.max_body_bytes:
                body.extend(chunk)
        if size > limits.max_body_bytes:
            raise RequestError(413, f"request body of {size} bytes exceeds the limit of {limits.max_body_bytes}")
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise RequestError(400, f"request body is not UTF-8: byte {error.start}") from error
        except json.JSONDecodeError as error:
            raise RequestError(
                400, f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
            ) from error
        if not isinstance(data, dict):
            raise RequestError(400, "the JSON body must be an object")
        return data

    def check_model(model_name: str, version: str | None) -> Served:
        """The version serving this request (the one current when it arrived)."""
        served = versions.current
        if model_name != name:
            raise RequestError(404, f"Servable not found for request: Latest({model_name})")
        if version is not None and version != str(served.model.version):
            raise RequestError(404, f"Servable not found for request: Specific({model_name}, {version})")
        return served

    async def run(served: Served, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        metrics.queue_depth.set(served.batcher.queued_rows)
        try:
            return await served.batcher.submit(inputs)
        except QueueFull as error:
            raise RequestError(503, f"server busy: {error}; retry later") from error

    async def predict(request: Request, model_name: str, version: str | None) -> dict:
        served = check_model(model_name, version)
        model, max_len = served.model, served.model.config.max_seq_length
        data = await read_json(request)
        columnar = "inputs" in data
        if columnar == ("instances" in data):
            raise RequestError(400, 'the body needs exactly one of "instances" (row format) or "inputs" (columnar)')
        inputs = columns_from(data["inputs"]) if columnar else columns_from_rows(data["instances"])
        sep = model.encoder.tokenizer.vocab.ids["[SEP]"]
        inputs, truncated = validate(inputs, model.vocab_size, max_len, limits.max_rows, sep)
        metrics.truncated.inc(len(truncated))
        outputs = await run(served, inputs)
        result: dict = (
            {"outputs": {k: outputs[k].tolist() for k in OUTPUTS}}
            if columnar
            else {
                "predictions": [{k: outputs[k][i].tolist() for k in OUTPUTS} for i in range(len(inputs["input_ids"]))]
            }
        )
        if truncated:
            result["truncated_rows"] = truncated
        return result

    async def classify_text(request: Request, model_name: str) -> dict:
        served = check_model(model_name, None)
        model = served.model
        data = await read_json(request)
        texts = data.get("texts")
        if not isinstance(texts, list) or not texts:
            raise RequestError(400, '"texts" must be a non-empty list of strings or of [text_a, text_b] pairs')
        if len(texts) > limits.max_texts:
            raise RequestError(413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}")
        encoded, truncated = encode_texts(model.encoder, texts)
        metrics.truncated.inc(len(truncated))
        outputs = await run(served, encoded)
        labels = model.config.labels
        return {
            "model_version": str(model.version),
            "predictions": [
                {"label": labels[int(np.argmax(p))], "probabilities": dict(zip(labels, map(float, p), strict=True))}
                for p in outputs["probabilities"]
            ],
            **({"truncated_rows": truncated} if truncated else {}),
        }

    async def respond(endpoint: str, work) -> JSONResponse:
        started = time.perf_counter()
        try:
            status, content = 200, await work
        except RequestError as error:
            status, content = error.status, {"error": str(error)}
        except Exception as error:  # a bug or a failing model: say so, stay up
            log.exception("request failed")
            status, content = 500, {"error": f"internal error: {error}"}
        metrics.requests.labels(endpoint, str(status)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return JSONResponse(content, status_code=status)

    @app.post("/v1/models/{model_name}:predict")
    async def predict_latest(model_name: str, request: Request):
        return await respond("predict", predict(request, model_name, None))

    @app.post("/v1/models/{model_name}/versions/{version}:predict")
    async def predict_version(model_name: str, version: str, request: Request):
        return await respond("predict", predict(request, model_name, version))

    @app.post("/v1/models/{model_name}:classify_text")
    async def classify(model_name: str, request: Request):
        return await respond("classify_text", classify_text(request, model_name))

    async def status(model_name: str, version: str | None) -> dict:
        if model_name != name:
            raise RequestError(404, f"Could not find any versions of model {model_name}")
        entries = versions.status()
        if version is not None:
            entries = [e for e in entries if e["version"] == version]
            if not entries:
                raise RequestError(404, f"Could not find version {version} of model {model_name}")
        return {"model_version_status": entries}

    @app.get("/v1/models/{model_name}")
    async def status_latest(model_name: str):
        return await respond("status", status(model_name, None))

    @app.get("/v1/models/{model_name}/versions/{version}")
    async def status_version(model_name: str, version: str):
        return await respond("status", status(model_name, version))

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        served = versions.current
        if served is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        backend = served.model.backend
        return {"status": "ready", "model": name, "version": served.model.version, "precision": backend.precision}

    @app.get("/metrics")
    async def prometheus():
        if versions.current is not None:
            metrics.queue_depth.set(versions.current.batcher.queued_rows)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def columns_from(inputs) -> dict[str, list]:
    if not isinstance(inputs, dict):
        raise RequestError(400, '"inputs" must be an object of named tensors (input_ids, input_mask, segment_ids)')
    return inputs


def columns_from_rows(instances) -> dict[str, list]:
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list')
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise RequestError(400, f"instances[{index}] must be an object with {', '.join(INPUT_NAMES)}")
        missing = [n for n in INPUT_NAMES if n not in row]
        if missing or len(row) != len(INPUT_NAMES):
            unknown = sorted(set(row) - set(INPUT_NAMES))
            raise RequestError(400, f"instances[{index}]: missing {missing}, unknown {unknown}")
    return {name: [row[name] for row in instances] for name in INPUT_NAMES}


def validate(
    inputs: dict, vocab_size: int, max_len: int, max_rows: int, sep_id: int
) -> tuple[dict[str, np.ndarray], list[int]]:
    """int32 [rows, seq] arrays, checked; rows longer than `max_len` cut to it (last kept token set to [SEP])."""
    missing = [n for n in INPUT_NAMES if n not in inputs or inputs[n] is None]
    extra = sorted(set(inputs) - set(INPUT_NAMES))
    if missing or extra:
        raise RequestError(400, f"inputs must be exactly {', '.join(INPUT_NAMES)}; missing {missing}, unknown {extra}")
    arrays = {}
    for name in INPUT_NAMES:
        try:
            array = np.asarray(inputs[name])
        except ValueError as error:
            raise RequestError(400, f"{name}: not a rectangular tensor ({error})") from error
        if array.ndim != 2 or array.shape[1] == 0:
            raise RequestError(400, f"{name}: expected shape [batch, seq], got {list(array.shape)}")
        if array.dtype.kind not in "iu":
            raise RequestError(400, f"{name}: expected integers (DT_INT32), got {array.dtype.name} values")
        arrays[name] = array
    shapes = {name: arrays[name].shape for name in INPUT_NAMES}
    if len(set(shapes.values())) != 1:
        raise RequestError(400, f"inputs must have one shape; got {shapes}")
    rows, seq = shapes["input_ids"]
    if rows > max_rows:
        raise RequestError(413, f"{rows} rows in one request; the limit is {max_rows}")
    ids = arrays["input_ids"]
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise RequestError(400, f"input_ids: values must lie in [0, {vocab_size}); got {ids.min()}..{ids.max()}")
    for name in ("input_mask", "segment_ids"):
        if not np.isin(arrays[name], (0, 1)).all():
            raise RequestError(400, f"{name}: values must be 0 or 1")
    arrays = {k: v.astype(np.int32) for k, v in arrays.items()}
    truncated = []
    if seq > max_len:
        truncated = [i for i in range(rows) if arrays["input_mask"][i, max_len:].any()]
        arrays = {k: np.ascontiguousarray(v[:, :max_len]) for k, v in arrays.items()}
        for i in truncated:
            arrays["input_ids"][i, max_len - 1] = sep_id
    return arrays, truncated


def encode_texts(encoder, texts: list) -> Encoded:
    """`texts`: all strings, or all [text_a, text_b] pairs; encoded as the finetune stage encoded its task."""
    try:
        return encoder.encode_items(texts)
    except ValueError as error:
        raise RequestError(
            400, f'"texts" must be a non-empty list of strings or of [text_a, text_b] pairs ({error})'
        ) from error
