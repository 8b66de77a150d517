"""OneHot, EyeLike, Hardmax, CumSum / CumProd, LpNormalization, ReduceProd, the trigonometric ops, Round and the bit
operators from ONNX graphs with symbolic dims and run-time depth / axis inputs: one compile each, compared with ONNX
Runtime (numpy for shifts past the bit width, which ONNX leaves undefined) at several shapes."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

F, I64, U8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8


def _model(nodes, inputs, outputs, opset=21):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _run(model, feeds_list, reference=None):
    mod = from_onnx(model)
    params = [p.name for p in mod["main"].params]
    vm = nimble.VirtualMachine(nimble.compile(mod))
    sess = None if reference else ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        want = reference(**feeds) if reference else sess.run(None, feeds)[0]
        got = np.asarray(vm.run(*[feeds[name] for name in params]))
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_one_hot_with_a_run_time_depth_and_negative_indices():
    node = helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=1)
    model = _model([node], [("i", I64, ["n", 2]), ("depth", I64, []), ("values", F, [2])], [("y", F, None)])
    rng = np.random.default_rng(0)
    _run(model, [{"i": rng.integers(-d, d, (n, 2)), "depth": np.array(d, np.int64),
                  "values": np.array([-1.0, 3.0], np.float32)} for n, d in ((1, 1), (4, 5), (7, 13))])


def test_eye_like_on_symbolic_dims_with_an_offset_diagonal():
    node = helper.make_node("EyeLike", ["x"], ["y"], k=-1, dtype=I64)
    model = _model([node], [("x", F, ["n", "m"])], [("y", I64, ["n", "m"])])
    _run(model, [{"x": _x(n, m)} for n, m in ((1, 1), (3, 5), (6, 2), (0, 3))])


def test_hardmax_and_lp_normalization_along_an_inner_axis():
    nodes = [helper.make_node("Hardmax", ["x"], ["h"], axis=1), helper.make_node("LpNormalization", ["h2"], ["y"], p=1)]
    nodes.insert(1, helper.make_node("Add", ["h", "x"], ["h2"]))
    model = _model(nodes, [("x", F, ["b", "n", 3])], [("y", F, ["b", "n", 3])])
    _run(model, [{"x": _x(b, n, 3, seed=n)} for b, n in ((1, 1), (2, 7))])


@pytest.mark.parametrize("op", ["CumSum", "CumProd"])
def test_cumulative_with_a_run_time_axis_exclusive_and_reversed(op):
    node = helper.make_node(op, ["x", "axis"], ["y"], exclusive=1, reverse=1)
    model = _model([node], [("x", F, ["n", "m"]), ("axis", I64, [])], [("y", F, ["n", "m"])], opset=26)
    _run(model, [{"x": _x(n, m, seed=n) * 0.5 + 1, "axis": np.array(a, np.int64)}
                 for n, m, a in ((1, 1, 0), (3, 5, 1), (7, 2, -2), (4, 0, 1))])


def test_reduce_prod_and_trigonometric_chain():
    nodes = [helper.make_node("Sin", ["x"], ["s"]), helper.make_node("Cos", ["s"], ["c"]),
             helper.make_node("Atan", ["c"], ["t"]), helper.make_node("Cosh", ["t"], ["h"]),
             helper.make_node("Asinh", ["h"], ["a"]), helper.make_node("Round", ["a"], ["r"]),
             helper.make_node("ReduceProd", ["a", "axes"], ["p"], keepdims=0),
             helper.make_node("Add", ["p", "r0"], ["y"])]
    nodes.insert(6, helper.make_node("ReduceMax", ["r", "axes"], ["r0"], keepdims=0))
    inits = [helper.make_tensor("axes", I64, [1], [1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, ["n", "m"])],
                              [helper.make_tensor_value_info("y", F, ["n"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    _run(model, [{"x": _x(n, m, seed=m) * 3} for n, m in ((1, 1), (4, 7), (2, 13))])


def test_round_takes_halfway_points_to_even():
    model = _model([helper.make_node("Round", ["x"], ["y"])], [("x", F, ["n"])], [("y", F, ["n"])])
    _run(model, [{"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999998, np.nan, -np.inf], np.float32)}])


def test_bit_shift_amounts_past_the_width_and_bitwise_ops():
    nodes = [helper.make_node("BitShift", ["x", "s"], ["l"], direction="LEFT"),
             helper.make_node("BitShift", ["x", "s"], ["r"], direction="RIGHT"),
             helper.make_node("BitwiseXor", ["l", "r"], ["y0"]), helper.make_node("BitwiseNot", ["y0"], ["y"])]
    model = _model(nodes, [("x", U8, ["n"]), ("s", U8, ["n"])], [("y", U8, ["n"])], opset=18)
    rng = np.random.default_rng(1)

    def numpy_ref(x, s):
        return np.invert(np.bitwise_xor(np.left_shift(x, s), np.right_shift(x, s)))

    feeds = [{"x": rng.integers(0, 256, n).astype(np.uint8), "s": rng.integers(0, 11, n).astype(np.uint8)}
             for n in (1, 7, 64)]
    _run(model, feeds, reference=numpy_ref)
    _run(model, [{"x": f["x"], "s": f["s"] % 8} for f in feeds])  # in range: ONNX Runtime agrees
