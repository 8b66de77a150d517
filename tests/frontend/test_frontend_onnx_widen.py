"""float16 / bfloat16 models computed in float32 (`from_onnx(float16="float32")`, the default): the interface keeps
its types, explicit casts keep their rounding, subgraphs and constants widen, and the results are the float32
graph's rounded once (checked against numpy), where `float16="exact"` rounds after every operator."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ml_dtypes = pytest.importorskip("ml_dtypes")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_widen import has_narrow_floats, widen_float16  # noqa: E402

H, BF, F = TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.FLOAT
NP = {H: np.float16, BF: ml_dtypes.bfloat16}


def _mlp(elem):
    """y = softmax(relu(x @ w1 + b1) @ w2) over (n, 8), weights and activations of type `elem`."""
    rng = np.random.default_rng(0)
    w1, b1, w2 = (rng.standard_normal(s).astype(NP[elem]) for s in ((8, 16), (16,), (16, 4)))
    inits = [numpy_helper.from_array(v, n) for v, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["z"]),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, ["n", 8])],
                              [helper.make_tensor_value_info("y", elem, ["n", 4])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model, (w1, b1, w2)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("elem", [H, BF])
def test_a_narrow_mlp_computes_in_float32_and_rounds_once(elem):
    model, (w1, b1, w2) = _mlp(elem)
    assert has_narrow_floats(model)
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    exact = nimble.VirtualMachine(nimble.compile(from_onnx(model, float16="exact")))
    for n in (0, 1, 7):
        x = np.random.default_rng(n).standard_normal((n, 8)).astype(NP[elem])
        f = [v.astype(np.float64) for v in (x, w1, b1, w2)]
        want = _softmax(np.maximum(f[0] @ f[1] + f[2], 0) @ f[3])
        got = np.asarray(vm.run(x))
        assert got.dtype == NP[elem] and got.shape == (n, 4)
        ulp = 2.0 ** -10 if elem == H else 2.0 ** -7
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=ulp, atol=1e-6)  # within one rounding
        np.testing.assert_allclose(np.asarray(exact.run(x)).astype(np.float64), want, rtol=8 * ulp, atol=1e-3)


def test_the_rewrite_keeps_the_interface_casts_and_subgraphs():
    """x (float16) -> Cast to float16 of x * 1.0001 in float32 (a rounding the graph asks for) -> If with a float16
    constant in each branch -> y (float16)."""
    one = helper.make_tensor("c", H, [], [np.float16(1.5)])
    two = helper.make_tensor("c", H, [], [np.float16(-2.0)])
    branch = [helper.make_graph([helper.make_node("Constant", [], ["k"], value=t),
                                 helper.make_node("Mul", ["r", "k"], ["o"])], f"b{i}", [],
                                [helper.make_tensor_value_info("o", H, None)]) for i, t in enumerate((one, two))]
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=F),
             helper.make_node("Mul", ["xf", "s"], ["xs"]),
             helper.make_node("Cast", ["xs"], ["r"], to=H),
             helper.make_node("If", ["flag"], ["y"], then_branch=branch[0], else_branch=branch[1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", H, ["n"]),
                                           helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", H, ["n"])],
                              initializer=[numpy_helper.from_array(np.array(1.0001, np.float32), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    wide = widen_float16(model)
    assert [v.type.tensor_type.elem_type for v in wide.graph.input] == [H, TensorProto.BOOL]
    assert wide.graph.output[0].type.tensor_type.elem_type == H
    assert model.graph.node[3].attribute[0].g.node[0].attribute[0].t.data_type == H  # the original is untouched
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    x = np.array([1.0, 3.0, -0.25, 2049.0], np.float16)
    rounded = (x.astype(np.float32) * np.float32(1.0001)).astype(np.float16)  # the graph's own cast
    for flag, k in ((True, 1.5), (False, -2.0)):
        got = np.asarray(vm.run(x, np.array(flag)))
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, (rounded.astype(np.float32) * np.float32(k)).astype(np.float16))


def test_float32_models_are_left_alone_and_the_option_is_checked():
    model, _ = _mlp(H)
    f32 = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", F, ["n"])],
        [helper.make_tensor_value_info("y", F, ["n"])]), opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert not has_narrow_floats(f32)
    with pytest.raises(ValueError, match="float16 must be"):
        from_onnx(model, float16="half")


def test_a_widened_float16_weight_streams_as_float16():
    """The dense kernels of a float16 model read their (float16-exact) weights packed as float16."""
    from nimble.passes.pipeline import Pipeline
    from nimble.vm.pipeline import compile_pipeline

    model, _ = _mlp(H)
    passes = compile_pipeline("llvm", None, False).passes
    lowered = Pipeline(passes[:[p.name for p in passes].index("lower_kernels") + 1]).run(
        from_onnx(model), print_after=(), debug=0)
    dense = [gk for gk in lowered.kernels if gk.template == "dense"]
    assert len(dense) == 2 and all(gk.signature.attr("weight_dtype") == "float16" for gk in dense)
    assert all(a.dtype == np.float16 for gk in dense for a in gk.inputs if isinstance(a, np.ndarray) and a.ndim == 3)
