"""The OpenVINO image's gRPC API runs on the copied generated modules alone, with no TensorFlow installed."""

import subprocess
import sys
from pathlib import Path

import google.protobuf
import grpc
import numpy
import typing_extensions

from tests.helpers import REPO
from vbert.tools.protos import copy_generated_modules

CHECK = """
import sys
sys.path[:0] = {paths!r}
from vbert.serving import protos
api = protos.serving_api()
import tensorflow
assert getattr(tensorflow, "__file__", None) is None, tensorflow.__file__  # a namespace package: no TensorFlow
request = api.predict_pb2.PredictRequest()
request.inputs["input_ids"].CopyFrom(protos.to_tensor(__import__("numpy").array([[101, 7, 102]], "int32")))
print(protos.to_array(request.inputs["input_ids"]).tolist(), "tensorflow.python" in sys.modules)
"""


def _site_without_tensorflow(root: Path) -> Path:
    """A folder holding only the server's gRPC dependencies (links to the installed ones)."""
    site = root / "site"
    site.mkdir()
    for module in (numpy, grpc, google.protobuf):
        package = Path(module.__file__).parent
        top = package.parent if module is google.protobuf else package
        (site / top.name).symlink_to(top)
    for extra in (Path(numpy.__file__).parent.parent / "numpy.libs", Path(typing_extensions.__file__)):
        if extra.exists():
            (site / extra.name).symlink_to(extra)
    return site


def test_the_grpc_api_needs_only_the_copied_modules(tmp_path):
    protos = tmp_path / "protos"
    assert copy_generated_modules(protos) > 20
    assert not (protos / "tensorflow" / "__init__.py").exists()
    site = _site_without_tensorflow(tmp_path)
    # -I -S: no site-packages (where TensorFlow is installed), only the folders named here
    code = CHECK.format(paths=[str(REPO), str(protos), str(site)])
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["[[101,", "7,", "102]]", "False"]
