"""Clients for vbert's server and for TF-Serving: REST (row or columnar JSON) and gRPC (PredictionService).

client = RestClient("http://127.0.0.1:8501", "vbert")
outputs = client.predict({"input_ids": ids, "input_mask": mask, "segment_ids": segments})  # numpy in and out
client.classify_texts(["a package description"])  # vbert's server only: tokenised by the server

GrpcClient("127.0.0.1:8500", "vbert").predict(...)  # TF-Serving's gRPC API (tensorflow-serving-api)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import urllib.parse

import numpy as np

from vbert.model.export import OUTPUT_NAMES as OUTPUTS
from vbert.serving.timing import parse_header

# a kept-alive connection the server closed while it sat idle: the request is sent again on a new one, once
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class ServerError(Exception):
    """The server answered with an error status; `status`, the server's message and `Retry-After` are kept."""

    def __init__(self, status: int, message: str, retry_after: str | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after

    @property
    def is_well_formed_busy(self) -> bool:
        """A 503 that tells the client when to retry (transient overload, not a failure of the server)."""
        return self.status == 503 and bool(self.retry_after)


class RestClient:
    """JSON over HTTP/1.1, one kept-alive connection per thread (so one client may serve many threads), as
    `requests.Session` would; `keep_alive=False` opens a new connection for every request. The server's
    `Server-Timing` spans of this thread's last answer are in `last_timings` (milliseconds by span)."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 120.0,
        keep_alive: bool = True,
    ):
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"{base_url!r}: expected http://host:port or https://host:port")
        self.scheme, self.host, self.port = url.scheme, url.hostname, url.port
        self.model = f"{url.path}/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "")
        self.timeout, self.keep_alive = timeout, keep_alive
        self._local = threading.local()

    @property
    def last_timings(self) -> dict[str, float]:
        return getattr(self._local, "timings", {})

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            connection = self._local.connection = kind(self.host, self.port, timeout=self.timeout)
        return connection

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def _send(self, path: str, data: bytes | None) -> tuple[bytes, http.client.HTTPResponse]:
        """One request on this thread's connection; the connection is closed after a failure (or always, without
        keep-alive)."""
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection = self._connection()
        try:
            connection.request("POST" if data is not None else "GET", path, data, headers)
            response = connection.getresponse()
            payload = response.read()
        except BaseException:
            self.close()
            raise
        if not self.keep_alive or response.will_close:
            self.close()
        return payload, response

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        try:
            payload, response = self._send(path, data)
        except _STALE_CONNECTION:  # inference has no side effects: sending it again is safe
            payload, response = self._send(path, data)
        self._local.timings = parse_header(response.getheader("Server-Timing") or "")
        if response.status >= 400:
            text = payload.decode("utf-8", "replace")
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                text = json.loads(text).get("error", text)
            raise ServerError(response.status, text, response.getheader("Retry-After"))
        return json.loads(payload)

    def predict(self, inputs: dict[str, np.ndarray], columnar: bool = True) -> dict[str, np.ndarray]:
        """`probabilities` and `logits` for int32 [batch, seq] inputs, in TF-Serving's columnar or row format."""
        if columnar:
            answer = self._call(f"{self.model}:predict", {"inputs": {k: v.tolist() for k, v in inputs.items()}})
            return {k: np.asarray(answer["outputs"][k], np.float32) for k in OUTPUTS}
        rows = len(next(iter(inputs.values())))
        instances = [{k: v[i].tolist() for k, v in inputs.items()} for i in range(rows)]
        predictions = self._call(f"{self.model}:predict", {"instances": instances})["predictions"]
        return {k: np.asarray([p[k] for p in predictions], np.float32) for k in OUTPUTS}

    def classify_texts(self, texts: list) -> dict:
        """Labels and probabilities for raw texts or [text_a, text_b] pairs (the server tokenises them as in
        training)."""
        return self._call(f"{self.model}:classify_text", {"texts": texts})

    def status(self) -> dict:
        return self._call(self.model)


class GrpcClient:
    """TF-Serving's gRPC API (port 8500), through tensorflow-serving-api's generated stubs (no TensorFlow needed)."""

    def __init__(self, target: str, model_name: str, version: int | None = None, timeout: float = 120.0):
        import grpc

        from vbert.serving.protos import serving_api

        self.api = serving_api()
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", 1 << 28), ("grpc.max_receive_message_length", 1 << 28)]
        )
        self.stub = self.api.prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = self.api.model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.model_name, self.version, self.timeout = model_name, version, timeout

    def _spec(self, spec) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from vbert.serving.protos import to_array, to_tensor

        request = self.api.predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        request.model_spec.signature_name = "serving_default"
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(to_tensor(np.asarray(value, np.int32)))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {k: to_array(response.outputs[k]) for k in OUTPUTS}

    def metadata(self):
        """The served version's SignatureDefMap (a protobuf message)."""
        request = self.api.get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self.stub.GetModelMetadata(request, timeout=self.timeout)
        signatures = self.api.get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return signatures

    def status(self):
        request = self.api.get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        return self.models.GetModelStatus(request, timeout=self.timeout)

    def close(self) -> None:
        self.channel.close()
