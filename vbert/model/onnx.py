"""The serving model as ONNX, for ONNX Runtime: converted from the freeze stage's SavedModel by tf2onnx, and its
int8 form by ONNX Runtime's dynamic quantisation (int8 weights of every MatMul, activations quantised per batch).

    <folder>/model.onnx          fp32: inputs int32 input_ids, input_mask, segment_ids [batch, seq] (both dynamic),
                                 outputs float32 probabilities, logits [batch, labels], as the SavedModel's signature
    <folder>/model.int8.onnx     the same graph with int8 MatMuls
    <folder>/<assets>            the tokenizer, labels and serving config, copied from the SavedModel

This module imports neither TensorFlow nor ONNX Runtime at the top.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from vbert.core.atomic import atomic_dir
from vbert.core.errors import InputError
from vbert.model.export import ASSET_FILES

log = logging.getLogger(__name__)

OPSET = 17
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def convert_saved_model(version_dir: Path, onnx_file: Path) -> Path:
    """`onnx_file` from the SavedModel at `version_dir` (its `serving_default` signature), by tf2onnx's converter
    in a subprocess (it builds TensorFlow graphs of its own)."""
    command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(version_dir)]
    command += ["--output", str(onnx_file), "--opset", str(OPSET)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode or not onnx_file.exists():
        raise InputError(f"{version_dir}: tf2onnx could not convert the SavedModel:\n{done.stderr[-2000:]}")
    import onnx

    model = onnx.load(str(onnx_file))
    if erfc_as_erf(model):
        onnx.save(model, str(onnx_file))
    return onnx_file


def erfc_as_erf(model) -> int:
    """Every Erfc node (TensorFlow's exact GELU, which Hugging Face models such as MiniLM use, computes
    0.5 x erfc(-x / sqrt 2); ONNX has no Erfc) as 1 - Erf(x). Returns how many were rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    rewritten = 0
    for index, node in reversed(list(enumerate(model.graph.node))):
        if node.op_type != "Erfc":
            continue
        one, erf = f"{node.name}__one", f"{node.name}__erf"
        model.graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        model.graph.node.remove(node)
        model.graph.node.insert(index, helper.make_node("Sub", [one, erf], list(node.output), f"{node.name}__sub"))
        model.graph.node.insert(index, helper.make_node("Erf", [node.input[0]], [erf], f"{node.name}__erf"))
        rewritten += 1
    return rewritten


def gemms_as_matmuls(model):
    """Every Gemm of `model` that is a plain product with a constant weight (alpha 1, no bias, A not transposed;
    tf2onnx writes the attention projections so) as a MatMul with the weight stored transposed where Gemm had
    transB: ONNX Runtime's dynamic quantisation handles MatMul, not Gemm. Returns how many were rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    weights = {initializer.name: initializer for initializer in model.graph.initializer}
    rewritten = 0
    for index, node in enumerate(model.graph.node):
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attributes.get("alpha", 1.0) == 1.0 and not attributes.get("transA", 0)
        no_bias = len(node.input) < 3 or attributes.get("beta", 1.0) == 0.0
        if node.op_type != "Gemm" or not (plain and no_bias) or node.input[1] not in weights:
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        if attributes.get("transB", 0):
            name = f"{node.input[1]}__transposed"
            model.graph.initializer.append(numpy_helper.from_array(weight.T.copy(), name))
        else:
            name = node.input[1]
        model.graph.node.remove(node)
        model.graph.node.insert(index, helper.make_node("MatMul", [node.input[0], name], list(node.output), node.name))
        rewritten += 1
    onnx.checker.check_model(model)
    return rewritten


def quantize_int8(onnx_file: Path, int8_file: Path) -> Path:
    """ONNX Runtime's dynamic quantisation: int8 weights for every matrix product with a constant weight (Gemms
    rewritten as MatMuls first), activations quantised at run time; the embeddings stay float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(onnx_file))
    log.info("ONNX int8: %d Gemm(s) rewritten as MatMul", gemms_as_matmuls(model))
    products = int8_file.with_suffix(".matmul.onnx")
    onnx.save(model, str(products))
    try:
        quantize_dynamic(str(products), str(int8_file), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        products.unlink(missing_ok=True)
    return int8_file


def export_onnx(version_dir: Path, folder: Path) -> dict[str, Path]:
    """`folder` with model.onnx, model.int8.onnx and the SavedModel's assets, written atomically; returns the
    model file of each precision."""
    assets = version_dir / "assets"
    with atomic_dir(folder) as tmp:
        convert_saved_model(version_dir, tmp / FILES["fp32"])
        quantize_int8(tmp / FILES["fp32"], tmp / FILES["int8"])
        for name in ASSET_FILES:
            if (assets / name).exists():
                shutil.copy(assets / name, tmp / name)
    log.info("ONNX: %s (fp32, int8)", folder)
    return {precision: folder / name for precision, name in FILES.items()}
