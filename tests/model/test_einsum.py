import numpy as np
import pytest

from vbert.model.einsum import Projection, einsum_as_matmul, projection


@pytest.mark.parametrize(
    "equation, expected",
    [
        ("abc,cde->abde", Projection(2, 1, 2)),  # keras-hub's query/key/value: [B,S,H] x [H,heads,d]
        ("abcd,cde->abe", Projection(2, 2, 1)),  # its attention output: [B,S,heads,d] x [heads,d,H]
        ("ab,bc->ac", Projection(1, 1, 1)),
        ("abc,dce->abde", None),  # contracted letter not first in the kernel
        ("acb,cd->abd", None),  # contracted letter not last in the activation
        ("abc,abd->acd", None),  # batched product, no constant kernel shape
        ("a...c,cd->a...d", None),
        ("abc->acb", None),
    ],
)
def test_which_equations_are_projections(equation, expected):
    assert projection(equation) == expected


def test_projections_become_matmuls_with_the_same_results_and_others_stay():
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([-1, -1, 8], np.float32, name="x")
    qkv = rng.standard_normal((8, 2, 4), dtype=np.float32)
    out = rng.standard_normal((2, 4, 8), dtype=np.float32)
    heads = ops.einsum([x, ops.constant(qkv)], "abc,cde->abde")
    projected = ops.einsum([heads, ops.constant(out)], "abcd,cde->abe")
    scores = ops.einsum([heads, heads], "abcd,aecd->acbe")  # two activations: not a projection
    model = ov.Model([projected, scores], [x])
    data = rng.standard_normal((3, 5, 8), dtype=np.float32)
    core, f32 = ov.Core(), {"INFERENCE_PRECISION_HINT": "f32"}  # the CPU may default to bf16
    before = core.compile_model(model, "CPU", f32)(data)
    before = [before[i] for i in range(2)]

    assert einsum_as_matmul(model) == 2
    kinds = [node.get_type_name() for node in model.get_ordered_ops()]
    assert kinds.count("Einsum") == 1 and kinds.count("MatMul") == 2
    after = core.compile_model(model, "CPU", f32)(data)
    expected = np.einsum("abcd,cde->abe", np.einsum("abc,cde->abde", data, qkv), out)
    np.testing.assert_allclose(after[0], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(after[1], before[1], rtol=1e-4, atol=1e-4)
