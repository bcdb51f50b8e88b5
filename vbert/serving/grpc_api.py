"""TF-Serving's gRPC API over the serving core, on tensorflow-serving-api's generated stubs (`--grpc-port`, 8500).

    tensorflow.serving.PredictionService/Predict            int32 input_ids, input_mask, segment_ids in
    tensorflow.serving.PredictionService/GetModelMetadata   the signature_def
    tensorflow.serving.ModelService/GetModelStatus           the versions

The paper's clients (a PredictRequest with model_spec.name, signature_name, and the three tensors) work unchanged.
Errors are the same `ServingError`s as REST's, as gRPC status codes; a client's own deadline bounds its wait.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2

from vbert.serving.errors import Code, ServingError, invalid
from vbert.serving.metrics import Metrics
from vbert.serving.model_server import SIGNATURE, ModelServer, check_signature
from vbert.serving.protos import serving_api, to_array, to_tensor

log = logging.getLogger(__name__)


def _version(model_spec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


async def _abort(context, error: ServingError):
    metadata = (("retry-after", str(int(error.retry_after))),) if error.retry_after is not None else None
    if metadata:
        context.set_trailing_metadata(metadata)
    await context.abort(getattr(grpc.StatusCode, error.code.grpc_status), error.message)


def _calls(metrics: Metrics, endpoint: str):
    """Run a handler with the one error path and the request counter."""

    def wrap(handler):
        async def call(self, request, context):
            model = request.model_spec.name
            try:
                response = await handler(self, request, context)
            except ServingError as error:
                metrics.requests.labels(model, f"grpc_{endpoint}", str(error.code.http_status)).inc()
                await _abort(context, error)
            except Exception as error:
                log.exception("gRPC %s failed", endpoint)
                metrics.requests.labels(model, f"grpc_{endpoint}", "500").inc()
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}")
            metrics.requests.labels(model, f"grpc_{endpoint}", "200").inc()
            return response

        return call

    return wrap


def servicers(server: ModelServer, metrics: Metrics) -> tuple:
    """The PredictionService and ModelService servicers over `server`."""
    api = serving_api()

    class PredictionService(api.prediction_service_pb2_grpc.PredictionServiceServicer):
        @_calls(metrics, "predict")
        async def Predict(self, request, context):
            check_signature(request.model_spec.signature_name)
            try:
                inputs = {name: to_array(tensor) for name, tensor in request.inputs.items()}
            except ValueError as error:
                raise invalid(str(error)) from error
            remaining = context.time_remaining()
            prediction = await server.predict(request.model_spec.name, _version(request.model_spec), inputs, remaining)
            response = api.predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = prediction.version
            response.model_spec.signature_name = SIGNATURE
            wanted = set(request.output_filter) or set(prediction.outputs)
            unknown = wanted - set(prediction.outputs)
            if unknown:
                raise invalid(f"output_filter: no output named {', '.join(sorted(unknown))}")
            for name in wanted:
                response.outputs[name].CopyFrom(to_tensor(prediction.outputs[name]))
            return response

        @_calls(metrics, "metadata")
        async def GetModelMetadata(self, request, context):
            fields = list(request.metadata_field) or ["signature_def"]
            if fields != ["signature_def"]:
                raise invalid(f"metadata_field: only signature_def is available, not {', '.join(fields)}")
            version, signatures = server.metadata(request.model_spec.name, _version(request.model_spec))
            response = api.get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version
            packed = any_pb2.Any()
            packed.Pack(signatures)
            response.metadata["signature_def"].CopyFrom(packed)
            return response

    class ModelService(api.model_service_pb2_grpc.ModelServiceServicer):
        @_calls(metrics, "status")
        async def GetModelStatus(self, request, context):
            entries = server.model(request.model_spec.name).status(_version(request.model_spec))
            status_pb2 = api.get_model_status_pb2
            response = status_pb2.GetModelStatusResponse()
            for entry in entries:
                item = response.model_version_status.add()
                item.version = int(entry["version"])
                item.state = status_pb2.ModelVersionStatus.State.Value(entry["state"])
                code = entry["status"]["error_code"]
                item.status.error_code = 0 if code == "OK" else getattr(grpc.StatusCode, code).value[0]
                item.status.error_message = entry["status"]["error_message"]
            return response

    return PredictionService(), ModelService()


async def start_grpc(server: ModelServer, metrics: Metrics, host: str, port: int, max_message_bytes: int):
    """A started grpc.aio server with both services on `host:port` (port 0: a free one; see `.port`)."""
    api = serving_api()
    options = [("grpc.max_receive_message_length", max_message_bytes)]
    grpc_server = grpc.aio.server(options=options)
    prediction, models = servicers(server, metrics)
    api.prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, grpc_server)
    api.model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, grpc_server)
    grpc_server.port = grpc_server.add_insecure_port(f"{host}:{port}")
    await grpc_server.start()
    return grpc_server


__all__ = ["Code", "servicers", "start_grpc"]
