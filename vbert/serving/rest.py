"""TF-Serving's REST API (and a text endpoint) over the serving core: thin handlers, one error path.

    POST /v1/models/{name}[/versions/{v}]:predict   {"instances": [...]} (row) or {"inputs": {...}} (columnar)
    POST /v1/models/{name}:classify_text            {"texts": ["...", ["text a", "text b"], ...]}
    GET  /v1/models/{name}[/versions/{v}]           the versions' status
    GET  /v1/models/{name}[/versions/{v}]/metadata  the signature, as TF-Serving's GetModelMetadata
    GET|HEAD /healthz, /readyz                      liveness, readiness
    GET  /metrics, /docs, /openapi.json             Prometheus; a try-it page and the schema (no CDN)

Every error is `{"error": "..."}` with its status (routing's 404, 405 and 422 included), 503 and 504 with
`Retry-After`. Bodies are read with a size limit (after gzip decoding too) and a time limit; parsing, tokenising and
serialising run in worker threads, so a large request never holds up the event loop (nor `/healthz`); work of a few
kilobytes runs on the loop itself, where a hand-off would cost more than the work (`off_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import zlib
from dataclasses import dataclass

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from vbert.model.export import OUTPUT_NAMES
from vbert.serving.errors import Code, ServingError, invalid
from vbert.serving.metrics import Metrics
from vbert.serving.model_server import ModelServer, Prediction, check_signature, off_loop
from vbert.serving.timing import begin, span

log = logging.getLogger(__name__)
access_log = logging.getLogger("vbert.access")


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int  # after gzip decoding too
    body_timeout: float  # seconds to send the whole body


# ---- the schema (documentation and the /docs page; bodies are read and checked by hand, off the event loop) ----


class PredictRequest(BaseModel):
    """TF-Serving's predict request: exactly one of `instances` (rows) or `inputs` (columns)."""

    signature_name: str | None = Field(None, description='"serving_default", the only signature')
    instances: list[dict[str, list[int]]] | None = Field(None, description="rows: input_ids, input_mask, segment_ids")
    inputs: dict[str, list[list[int]]] | None = Field(None, description="columns: [batch, seq] int32 tensors")
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"inputs": {"input_ids": [[101, 2023, 102]], "input_mask": [[1, 1, 1]], "segment_ids": [[0, 0, 0]]}}
            ]
        }
    )


class PredictResponse(BaseModel):
    predictions: list[dict[str, list[float]]] | None = Field(None, description="rows, for an `instances` request")
    outputs: dict[str, list[list[float]]] | None = Field(None, description="columns, for an `inputs` request")
    truncated_rows: list[int] | None = Field(None, description="rows cut to the model's max_seq_length")


class ClassifyRequest(BaseModel):
    texts: list[str | list[str]] = Field(description="texts, or [text_a, text_b] pairs, all of one kind")
    model_config = ConfigDict(json_schema_extra={"examples": [{"texts": ["simple puzzle game with falling blocks"]}]})


class LabelScores(BaseModel):
    label: str
    probabilities: dict[str, float]


class ClassifyResponse(BaseModel):
    model_version: str
    predictions: list[LabelScores]
    truncated_rows: list[int] | None = None


class VersionStatus(BaseModel):
    version: str
    state: str
    status: dict[str, str]


class StatusResponse(BaseModel):
    model_version_status: list[VersionStatus]


class MetadataResponse(BaseModel):
    model_spec: dict[str, str]
    metadata: dict[str, dict]


class ErrorResponse(BaseModel):
    error: str


ERRORS = {code: {"model": ErrorResponse} for code in (400, 404, 408, 413, 415, 503, 504)}


class PlainRoute(APIRoute):
    """A route whose handler is called as `handler(request=..., **path parameters)` and returns its own Response:
    no dependency solving, validation or serialisation per request (FastAPI's cost these, ~0.2 ms of a batch-1
    request here, of no use to handlers that read their bodies themselves). Documented as declared."""

    def get_route_handler(self):
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            return await endpoint(request=request, **request.path_params)

        return handle


class ModelNameConvertor(StringConvertor):
    """A model name as TF-Serving's REST paths allow it: no `/` and no `:` (which starts a verb), so that
    `GET /v1/models/m:classify_text` is the verb's route with the wrong method (405), not the status of a model
    called "m:classify_text" (404)."""

    regex = "[^/:]+"


register_url_convertor("model_name", ModelNameConvertor())
MODEL = "/v1/models/{name:model_name}"

router = APIRouter()
inference_router = APIRouter(route_class=PlainRoute)  # the endpoints on a request's critical path


def _body(model: type[BaseModel]) -> dict:
    """OpenAPI's requestBody for a handler that reads its body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


# ---- reading and answering -------------------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The body, within the size limit (after gzip decoding too) and the time limit."""
    limits: HttpLimits = request.app.state.http_limits
    encoding = request.headers.get("content-encoding", "identity").lower()
    deadline = time.monotonic() + limits.body_timeout
    stream = request.stream().__aiter__()
    if encoding not in ("identity", "gzip"):
        await _discard_rest(stream, 2 * limits.max_body_bytes, deadline)
        raise ServingError(Code.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding!r}: send gzip or identity")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    body = bytearray()
    while True:
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):  # no task per chunk, as wait_for would make
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ServingError(
                Code.REQUEST_TIMEOUT, f"the body took over {limits.body_timeout:g} s to arrive"
            ) from None
        except ClientDisconnect:
            raise ServingError(Code.CLIENT_DISCONNECTED, "the client left while sending its body") from None
        if decoder is not None:
            try:
                chunk = decoder.decompress(chunk, limits.max_body_bytes + 1 - len(body))
            except zlib.error as error:
                raise invalid(f"the gzip body is corrupt: {error}") from error
        body.extend(chunk)
        if len(body) > limits.max_body_bytes:
            await _discard_rest(stream, limits.max_body_bytes, deadline)
            raise ServingError(
                Code.TOO_LARGE, f"request body exceeds the limit of {limits.max_body_bytes} bytes (after decoding)"
            )
    return bytes(body)


async def _discard_rest(stream, budget: int, deadline: float) -> None:
    """Read and drop what is left of a refused body, at most `budget` bytes and until `deadline`.

    A client still sending when the server closes gets a connection reset instead of the 413 (the unread bytes make
    the kernel send RST); refused bodies up to twice the limit are drained so that their senders read the answer.
    """
    with contextlib.suppress(StopAsyncIteration, TimeoutError, ClientDisconnect):
        async with asyncio.timeout_at(_loop_time(deadline)):
            while budget > 0:
                budget -= len(await stream.__anext__())


def _loop_time(monotonic_deadline: float) -> float:
    """A time.monotonic() deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + monotonic_deadline - time.monotonic()


def parse_json(body: bytes) -> dict:
    """The JSON object of a request body; anything malformed, too deep or absurd is a 400."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise invalid(f"request body is not UTF-8: byte {error.start}") from error
    except json.JSONDecodeError as error:
        raise invalid(f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from error
    except RecursionError as error:
        raise invalid("malformed JSON: nested too deeply") from error
    except ValueError as error:  # an integer with thousands of digits
        raise invalid(f"malformed JSON: {error}") from error
    if not isinstance(data, dict):
        raise invalid("the JSON body must be an object")
    return data


async def read_json(request: Request) -> dict:
    with span("read"):
        body = await read_body(request)
    with span("parse"):
        return await off_loop(len(body), parse_json, body)


async def unless_disconnected(request: Request, work):
    """Await `work` unless the client leaves first: then the work is cancelled (queued rows are not computed).

    `work` runs in this task (a task of its own and a wait on both cost two more trips through the event loop per
    request); a watcher task cancels it if the connection goes."""
    handler = asyncio.current_task()
    left = asyncio.Event()
    watcher = asyncio.ensure_future(_cancel_on_disconnect(request, handler, left))
    try:
        return await work
    except asyncio.CancelledError:
        if not left.is_set():
            raise
        handler.uncancel()
        raise ServingError(Code.CLIENT_DISCONNECTED, "the client left before its answer") from None
    finally:
        watcher.cancel()


async def _cancel_on_disconnect(request: Request, handler: asyncio.Task, left: asyncio.Event) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    left.set()
    handler.cancel()


async def json_response(content: dict, status: int = 200, numbers: int = 0) -> Response:
    """`content` as JSON; serialised off the event loop unless it holds few `numbers` (each ~20 bytes of JSON)."""
    with span("respond"):
        body = await off_loop(numbers * 20, lambda: json.dumps(content).encode())
    return Response(body, status_code=status, media_type="application/json")


def server(request: Request) -> ModelServer:
    return request.app.state.server


def _label(request: Request, endpoint: str, model: str, rows: int | None = None) -> None:
    request.state.endpoint, request.state.model = endpoint, model
    if rows is not None:
        request.state.rows = rows


def _version(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise invalid(f"version {value!r} is not a number")
    return int(value)


# ---- the handlers ----------------------------------------------------------------------------------------------


def predict_body(prediction: Prediction, columnar: bool) -> dict:
    outputs = prediction.outputs
    if columnar:
        result: dict = {"outputs": {k: outputs[k].tolist() for k in OUTPUT_NAMES}}
    else:
        rows = len(outputs["probabilities"])
        result = {"predictions": [{k: outputs[k][i].tolist() for k in OUTPUT_NAMES} for i in range(rows)]}
    if prediction.truncated:
        result["truncated_rows"] = prediction.truncated
    return result


def _columns(data: dict) -> tuple[dict, bool]:
    """The inputs of a predict body and whether it is columnar; rows become columns."""
    check_signature(data.get("signature_name"))
    if ("inputs" in data) == ("instances" in data):
        raise invalid('the body needs exactly one of "instances" (row format) or "inputs" (columnar)')
    if "inputs" in data:
        if not isinstance(data["inputs"], dict):
            raise invalid('"inputs" must be an object of named tensors (input_ids, input_mask, segment_ids)')
        return data["inputs"], True
    instances = data["instances"]
    if not isinstance(instances, list) or not instances:
        raise invalid('"instances" must be a non-empty list')
    for index, row in enumerate(instances):
        if not isinstance(row, dict):
            raise invalid(f"instances[{index}] must be an object with input_ids, input_mask, segment_ids")
    names = {name for row in instances for name in row}
    return {name: [row.get(name) for row in instances] for name in names}, False


async def _predict(request: Request, name: str, version: str | None) -> Response:
    _label(request, "predict", name)
    server(request).version(name, _version(version))  # an unknown model or version is a 404 whatever the body
    data = await read_json(request)
    inputs, columnar = _columns(data)
    request.state.rows = len(next(iter(inputs.values()), []) or [])
    prediction = await unless_disconnected(request, server(request).predict(name, _version(version), inputs))
    request.app.state.metrics.truncated.labels(name).inc(len(prediction.truncated))
    numbers = sum(v.size for v in prediction.outputs.values())
    return await json_response(predict_body(prediction, columnar), numbers=numbers)


@inference_router.post(
    MODEL + ":predict",
    openapi_extra=_body(PredictRequest),
    responses={200: {"model": PredictResponse}, **ERRORS},
)
async def predict(name: str, request: Request) -> Response:
    """TF-Serving's predict: token ids in, probabilities and logits out."""
    return await _predict(request, name, None)


@inference_router.post(
    MODEL + "/versions/{version}:predict",
    openapi_extra=_body(PredictRequest),
    responses={200: {"model": PredictResponse}, **ERRORS},
)
async def predict_version(name: str, version: str, request: Request) -> Response:
    """TF-Serving's predict, for the served version only."""
    return await _predict(request, name, version)


@inference_router.post(
    MODEL + ":classify_text",
    openapi_extra=_body(ClassifyRequest),
    responses={200: {"model": ClassifyResponse}, **ERRORS},
)
async def classify_text(name: str, request: Request) -> Response:
    """Texts (or pairs) in, labels and probabilities out: tokenised exactly as in fine-tuning."""
    _label(request, "classify_text", name)
    server(request).version(name, None)
    data = await read_json(request)
    texts = data.get("texts")
    if not isinstance(texts, list) or not texts:
        raise invalid('"texts" must be a non-empty list of strings or of [text_a, text_b] pairs')
    request.state.rows = len(texts)
    prediction = await unless_disconnected(request, server(request).classify(name, texts))
    labels = server(request).version(name, None).model.config.labels
    request.app.state.metrics.truncated.labels(name).inc(len(prediction.truncated))
    return await json_response(classify_body(prediction, labels), numbers=prediction.outputs["probabilities"].size)


def classify_body(prediction: Prediction, labels: list[str]) -> dict:
    probabilities = prediction.outputs["probabilities"]
    return {
        "model_version": str(prediction.version),
        "predictions": [
            {"label": labels[int(np.argmax(p))], "probabilities": dict(zip(labels, map(float, p), strict=True))}
            for p in probabilities
        ],
        **({"truncated_rows": prediction.truncated} if prediction.truncated else {}),
    }


@router.get(MODEL, response_model=StatusResponse, responses=ERRORS)
async def status(name: str, request: Request) -> dict:
    """The model's versions, as TF-Serving's GetModelStatus."""
    _label(request, "status", name)
    return {"model_version_status": server(request).model(name).status()}


@router.get(MODEL + "/versions/{version}", response_model=StatusResponse, responses=ERRORS)
async def status_version(name: str, version: str, request: Request) -> dict:
    _label(request, "status", name)
    return {"model_version_status": server(request).model(name).status(_version(version))}


def metadata_body(name: str, version: int, signatures) -> dict:
    from google.protobuf import json_format

    signature_def = json_format.MessageToDict(signatures, preserving_proto_field_name=True)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": signature_def},
    }


@router.get(MODEL + "/metadata", response_model=MetadataResponse, responses=ERRORS)
async def metadata(name: str, request: Request) -> dict:
    """The signature, as TF-Serving's GetModelMetadata."""
    _label(request, "metadata", name)
    return metadata_body(name, *server(request).metadata(name, None))


@router.get(MODEL + "/versions/{version}/metadata", response_model=MetadataResponse, responses=ERRORS)
async def metadata_version(name: str, version: str, request: Request) -> dict:
    _label(request, "metadata", name)
    return metadata_body(name, *server(request).metadata(name, _version(version)))


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request) -> Response:
    """Readiness: every model serves a version."""
    models = server(request).models
    if not server(request).ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    versions = {name: m.current.model.version for name, m in models.items()}
    precisions = {name: m.current.model.backend.precision for name, m in models.items()}
    return JSONResponse({"status": "ready", "versions": versions, "precisions": precisions})


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    for name, model in server(request).models.items():
        if model.current is not None and model.current.batcher is not None:
            metrics.queue_depth.labels(name).set(model.current.batcher.queued_rows)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


# ---- the one error path, the access log, the app ------------------------------------------------------------


def error_response(code: Code, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=code.http_status, headers=headers)


async def on_serving_error(request: Request, error: ServingError) -> JSONResponse:
    return error_response(error.code, error.message, error.retry_after)


async def on_http_error(request: Request, error: HTTPException) -> JSONResponse:
    detail = error.detail if isinstance(error.detail, str) else json.dumps(error.detail)
    message = f"{detail}: {request.method} {request.url.path}" if error.status_code in (404, 405) else detail
    return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)


async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
    return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)


async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("request failed")
    return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)


class AccessLog:
    """Pure ASGI: takes `X-Request-Id` from the request (or makes one) and echoes it, sends where the time went as
    `Server-Timing` (vbert.serving.timing), and writes one JSON line per request (method, route, status, latency,
    rows, request id, timings); counts requests by model, endpoint and status, and client disconnects apart from
    server errors."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:200] or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started, status, timings = time.perf_counter(), 500, begin()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                    (b"server-timing", timings.header().encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            state["timings"] = timings.milliseconds()
            self._record(scope, state, status, time.perf_counter() - started, request_id)

    def _record(self, scope, state: dict, status: int, seconds: float, request_id: str) -> None:
        endpoint, model = state.get("endpoint", "other"), state.get("model", "")
        route = getattr(scope.get("route"), "path_format", scope.get("path", ""))  # the template, convertors left out
        if status == Code.CLIENT_DISCONNECTED.http_status:
            self.metrics.disconnects.labels(endpoint).inc()
        else:
            self.metrics.requests.labels(model, endpoint, str(status)).inc()
            self.metrics.latency.labels(model, endpoint).observe(seconds)
        line = {
            "method": scope.get("method"),
            "route": route,
            "status": status,
            "ms": round(seconds * 1000, 2),
            "rows": state.get("rows"),
            "model": model or None,
            "request_id": request_id,
            "timings_ms": state.get("timings"),
        }
        access_log.info(json.dumps(line))


def create_app(server: ModelServer, http_limits: HttpLimits, metrics: Metrics | None = None, lifespan=None):
    """The REST app over `server`; `lifespan` starts and stops what runs beside it (the gRPC server)."""
    app = FastAPIOffline(
        title="vbert",
        summary="TF-Serving's REST API, and text classification tokenised as in training",
        lifespan=lifespan,
    )
    app.state.server, app.state.http_limits, app.state.metrics = server, http_limits, metrics or Metrics()
    app.include_router(inference_router)
    app.include_router(router)
    app.add_exception_handler(ServingError, on_serving_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_middleware(AccessLog, metrics=app.state.metrics)
    return app
