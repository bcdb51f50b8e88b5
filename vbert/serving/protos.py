"""TF-Serving's API messages and gRPC stubs (tensorflow-serving-api's generated modules), without TensorFlow itself.

Those modules import TensorFlow's own generated protobuf modules (`tensorflow.core.framework.tensor_pb2`, ...), and
importing any of them runs `tensorflow/__init__.py`: all of TensorFlow and Keras (5.6 s and 630 MB of memory here),
in a server that computes with OpenVINO. Where TensorFlow is not loaded yet, `tensorflow` is registered as a bare
package (its real folder, its `__init__` not run) before they are imported: 0.2 s and 34 MB. A process that uses
TensorFlow itself imports it before (the TensorFlow backend loads its model first), and then nothing changes. In a
slim image that carries only the generated modules, `tensorflow` is a namespace package and this does nothing either.

    api = serving_api()
    request = api.predict_pb2.PredictRequest(); request.inputs["input_ids"].CopyFrom(tensor(ids))
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import types
from types import SimpleNamespace

import numpy as np

_MODULES = {
    "predict_pb2": "tensorflow_serving.apis.predict_pb2",
    "get_model_metadata_pb2": "tensorflow_serving.apis.get_model_metadata_pb2",
    "get_model_status_pb2": "tensorflow_serving.apis.get_model_status_pb2",
    "model_management_pb2": "tensorflow_serving.apis.model_management_pb2",
    "prediction_service_pb2_grpc": "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "model_service_pb2_grpc": "tensorflow_serving.apis.model_service_pb2_grpc",
    "model_server_config_pb2": "tensorflow_serving.config.model_server_config_pb2",
    "meta_graph_pb2": "tensorflow.core.protobuf.meta_graph_pb2",
    "tensor_pb2": "tensorflow.core.framework.tensor_pb2",
    "types_pb2": "tensorflow.core.framework.types_pb2",
}


def _bare_tensorflow_package() -> None:
    """Register `tensorflow` without running its __init__, so its generated protobuf modules import alone."""
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations or spec.origin is None:
        return  # not installed, or a namespace package (a slim image with the generated modules only)
    package = types.ModuleType("tensorflow", "TensorFlow's generated protobuf modules only (vbert.serving.protos)")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["tensorflow"] = package


@functools.cache
def serving_api() -> SimpleNamespace:
    """The modules, by short name (`predict_pb2`, `prediction_service_pb2_grpc`, ...)."""
    _bare_tensorflow_package()
    return SimpleNamespace(**{name: importlib.import_module(module) for name, module in _MODULES.items()})


_DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64}
_VALUE_FIELDS = {"DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val", "DT_INT64": "int64_val"}


def to_array(proto) -> np.ndarray:
    """A TensorProto's values as a numpy array of its shape (DT_INT32, DT_INT64, DT_FLOAT, DT_DOUBLE)."""
    types_pb2 = serving_api().types_pb2
    name = types_pb2.DataType.Name(proto.dtype)
    if name not in _DTYPES:
        raise ValueError(f"tensors of {name} are not supported: send DT_INT32")
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    dtype = np.dtype(_DTYPES[name]).newbyteorder("<")
    if proto.tensor_content:
        values = np.frombuffer(proto.tensor_content, dtype=dtype)
    else:
        values = np.asarray(getattr(proto, _VALUE_FIELDS[name]), dtype=dtype)
        if values.size == 1 and int(np.prod(shape)) > 1:  # TF's shorthand: one value fills the tensor
            values = np.full(shape, values[0], dtype)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{values.size} values for a tensor of shape {list(shape)}")
    return values.reshape(shape)


def to_tensor(array: np.ndarray):
    """A numpy array (float32, int32, int64) as a TensorProto, its bytes in `tensor_content` as TensorFlow writes."""
    api = serving_api()
    array = np.asarray(array)
    name = next(n for n, t in _DTYPES.items() if np.dtype(t) == array.dtype)
    proto = api.tensor_pb2.TensorProto(dtype=api.types_pb2.DataType.Value(name))
    proto.tensor_shape.dim.extend(proto.tensor_shape.Dim(size=size) for size in array.shape)
    proto.tensor_content = array.astype(array.dtype.newbyteorder("<")).tobytes()
    return proto
