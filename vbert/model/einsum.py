"""Keras' EinsumDense projections as MatMuls in an OpenVINO model, so that NNCF quantises them.

keras-hub's attention layers compute query, key, value and output with `EinsumDense` (equations such as
`abc,cde->abde` and `abcd,cde->abe`): converted to OpenVINO they are `Einsum` nodes, which NNCF does not quantise,
so in an int8 model those four projections of every layer (about a third of BERT's FLOPs) stay in floating point.
Each such Einsum (activation x constant kernel, the contracted letters last in the activation and first in the
kernel) is the same product as

    Reshape(activation, [batch..., K]) x Reshape(kernel, [K, N]) -> Reshape([batch..., kernel's free dims])

which is what `einsum_as_matmul` writes in its place. Any other Einsum is left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Projection:
    """An equation `batch+contracted, contracted+free -> batch+free`, as the lengths of its letter groups."""

    batch: int
    contracted: int
    free: int


def projection(equation: str) -> Projection | None:
    """The Projection an Einsum equation is, or None if it is another product (e.g. 'abc,cde->abde' is
    Projection(2, 1, 2))."""
    try:
        inputs, output = equation.replace(" ", "").split("->")
        activation, kernel = inputs.split(",")
    except ValueError:
        return None
    contracted = "".join(letter for letter in activation if letter in kernel and letter not in output)
    batch, free = activation[: len(activation) - len(contracted)], kernel[len(contracted) :]
    if not contracted or "." in equation or len(set(activation + kernel)) != len(activation + kernel) - len(contracted):
        return None
    if activation != batch + contracted or kernel != contracted + free or output != batch + free:
        return None
    return Projection(len(batch), len(contracted), len(free))


def _constant_kernel(node) -> np.ndarray | None:
    source = node.input_value(1).get_node()
    return source.get_data() if source.get_type_name() == "Constant" else None


def einsum_as_matmul(model) -> int:
    """Rewrite, in place, every Einsum of `model` that is a projection by a constant kernel as Reshape, MatMul,
    Reshape; returns how many were rewritten."""
    import openvino.opset13 as ops

    rewritten = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Einsum":
            continue
        shape = projection(node.get_attributes()["equation"])
        kernel = _constant_kernel(node)
        if shape is None or kernel is None or kernel.ndim != shape.contracted + shape.free:
            continue
        free_dims = list(kernel.shape[shape.contracted :])
        depth = int(np.prod(kernel.shape[: shape.contracted]))
        matrix = ops.constant(np.ascontiguousarray(kernel.reshape(depth, -1)))
        flat = ops.reshape(node.input_value(0), ops.constant(np.array([0] * shape.batch + [depth])), True)
        product = ops.matmul(flat, matrix, False, False)
        result = ops.reshape(product, ops.constant(np.array([0] * shape.batch + free_dims)), True)
        result.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(result.output(0))
        rewritten += 1
    model.validate_nodes_and_infer_types()
    log.info("Einsum projections rewritten as MatMul: %d", rewritten)
    return rewritten
