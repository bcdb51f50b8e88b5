"""Clients for vbert's server and for TF-Serving: REST (row or columnar JSON) and gRPC (PredictionService).

client = RestClient("http://127.0.0.1:8501", "vbert")
outputs = client.predict({"input_ids": ids, "input_mask": mask, "segment_ids": segments})  # numpy in and out
client.classify_texts(["a package description"])  # vbert's server only: tokenised by the server

GrpcClient("127.0.0.1:8500", "vbert").predict(...)  # TF-Serving's gRPC API (tensorflow-serving-api)
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request

import numpy as np

from vbert.model.export import OUTPUT_NAMES as OUTPUTS


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
    def __init__(self, base_url: str, model_name: str, version: int | None = None, timeout: float = 120.0):
        self.base = base_url.rstrip("/")
        self.model = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "")
        self.timeout = timeout

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        request = urllib.request.Request(self.base + path, data, headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            with contextlib.suppress(json.JSONDecodeError):
                text = json.loads(text).get("error", text)
            raise ServerError(error.code, text, error.headers.get("Retry-After")) from error

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
