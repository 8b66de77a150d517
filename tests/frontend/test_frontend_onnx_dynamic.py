"""Symbolic dims and run-time shape inputs: each model is compiled once with the dims (and the shape-carrying
inputs: k, repeats, pads, starts / ends) left as run-time values, then compared with ONNX Runtime at several
shapes and values."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _model(nodes, inputs, outputs, opset=18):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


class _Both:
    """The model compiled by nimble once, and an ONNX Runtime session."""

    def __init__(self, model):
        mod = from_onnx(model)
        self.params = [p.name for p in mod["main"].params]
        self.vm = nimble.VirtualMachine(nimble.compile(mod))
        self.sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def check(self, **feeds):
        want = self.sess.run(None, feeds)
        got = self.vm.run(*[feeds[name] for name in self.params])
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-6)
            assert np.asarray(g).shape == w.shape


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_causal_mask_trilu_over_a_dynamic_sequence_with_runtime_k():
    both = _Both(_model([helper.make_node("Trilu", ["x", "k"], ["y"], upper=0)],
                        [("x", F, ["b", "s", "s"]), ("k", I64, [])], [("y", F, ["b", "s", "s"])]))
    for b, s, k in ((1, 5, 0), (2, 9, -2), (3, 4, 1)):
        both.check(x=_x(b, s, s, seed=s), k=np.array(k, np.int64))


def test_upper_trilu_on_non_square_run_time_dims():
    both = _Both(_model([helper.make_node("Trilu", ["x"], ["y"])], [("x", F, ["n", "m"])], [("y", F, ["n", "m"])]))
    for n, m in ((3, 7), (6, 2)):
        both.check(x=_x(n, m))


def test_range_driven_mask_over_a_dynamic_sequence():
    """mask[i, j] = j <= i from Range(0, seq) and Shape: the causal mask exporters write without Trilu."""
    nodes = [helper.make_node("Shape", ["x"], ["shp"], start=1, end=2),
             helper.make_node("Squeeze", ["shp", "zero"], ["n"]),
             helper.make_node("Range", ["zero_s", "n", "one_s"], ["r"]),
             helper.make_node("Unsqueeze", ["r", "one"], ["rows"]),
             helper.make_node("LessOrEqual", ["r", "rows"], ["mask"]),
             helper.make_node("Where", ["mask", "x", "neg"], ["y"])]
    consts = [helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, dims, vals))
              for name, dtype, dims, vals in (("zero", I64, [1], [0]), ("one", I64, [1], [1]),
                                              ("zero_s", I64, [], [0]), ("one_s", I64, [], [1]),
                                              ("neg", F, [], [-1e4]))]
    both = _Both(_model(consts + nodes, [("x", F, ["b", "s", "s"])], [("y", F, ["b", "s", "s"])]))
    for b, s in ((1, 3), (2, 8)):
        both.check(x=_x(b, s, s))


def test_tile_with_run_time_repeats_and_dims():
    both = _Both(_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", F, ["n", 3]), ("r", I64, [2])],
                        [("y", F, [None, None])]))
    for n, reps in ((2, (3, 1)), (4, (1, 2)), (1, (2, 3)), (3, (0, 2))):
        both.check(x=_x(n, 3), r=np.array(reps, np.int64))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_with_run_time_pads_and_dims(mode):
    inputs = [("x", F, ["n", "m"]), ("p", I64, [4])] + ([("v", F, [])] if mode == "constant" else [])
    both = _Both(_model([helper.make_node("Pad", [i[0] for i in inputs], ["y"], mode=mode)], inputs,
                        [("y", F, [None, None])]))
    for n, m, pads in ((3, 4, (1, 2, 0, 1)), (5, 3, (0, 0, 2, 2)), (4, 4, (-1, 1, 1, -2))):
        feeds = {"x": _x(n, m, seed=n), "p": np.array(pads, np.int64)}
        if mode == "constant":
            feeds["v"] = np.array(1.5, np.float32)
        both.check(**feeds)


def test_pad_with_static_pads_and_axes_input():
    nodes = [helper.make_node("Constant", [], ["p"], value=helper.make_tensor("p", I64, [2], [1, 2])),
             helper.make_node("Constant", [], ["a"], value=helper.make_tensor("a", I64, [1], [-1])),
             helper.make_node("Pad", ["x", "p", "", "a"], ["y"])]
    both = _Both(_model(nodes, [("x", F, ["n", 3])], [("y", F, ["n", 6])]))
    both.check(x=_x(2, 3))


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduction_over_run_time_axes_picks_the_copy_for_the_value(keepdims):
    both = _Both(_model([helper.make_node("ReduceSum", ["x", "a"], ["y"], keepdims=keepdims)],
                        [("x", F, [2, 3, 4]), ("a", I64, [1])], [("y", F, None)]))
    for axis in (0, 1, -1, 2):
        both.check(x=_x(2, 3, 4, seed=axis + 5), a=np.array([axis], np.int64))


def test_run_time_axes_out_of_range_or_repeated_are_an_error_not_a_default_copy():
    both = _Both(_model([helper.make_node("ReduceSum", ["x", "a"], ["y"], keepdims=1)],
                        [("x", F, [2, 3, 4]), ("a", I64, [2])], [("y", F, None)]))
    both.check(x=_x(2, 3, 4), a=np.array([0, -1], np.int64))
    for bad in ([0, 3], [-4, 0]):
        with pytest.raises(nimble.NimbleError):
            both.vm.run(_x(2, 3, 4), np.array(bad, np.int64))
        with pytest.raises(Exception):  # ONNX Runtime refuses them too
            both.sess.run(None, {"x": _x(2, 3, 4), "a": np.array(bad, np.int64)})
    for repeated in ([1, 1], [2, -1]):  # ONNX Runtime reduces a repeated axis once; nimble refuses, clearly
        with pytest.raises(nimble.NimbleError):
            both.vm.run(_x(2, 3, 4), np.array(repeated, np.int64))


def test_unsqueeze_and_slice_with_run_time_axes():
    nodes = [helper.make_node("Unsqueeze", ["x", "ua"], ["u"]),
             helper.make_node("Slice", ["u", "st", "en", "sa", "sp"], ["y"])]
    both = _Both(_model(nodes, [("x", F, ["n", 5]), ("ua", I64, [1]), ("st", I64, [2]), ("en", I64, [2]),
                                ("sa", I64, [2]), ("sp", I64, [2])], [("y", F, None)]))
    for ua, st, en, sa, sp in (([0], [0, 4], [1, 0], [0, 2], [1, -1]), ([2], [1, -1], [3, -9], [0, 1], [1, -2]),
                               ([-1], [0, 1], [9, 4], [1, 0], [2, 1])):
        both.check(x=_x(3, 5), ua=np.array(ua, np.int64), st=np.array(st, np.int64), en=np.array(en, np.int64),
                   sa=np.array(sa, np.int64), sp=np.array(sp, np.int64))


def test_split_with_run_time_sizes():
    both = _Both(_model([helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=1)],
                        [("x", F, [2, "n"]), ("s", I64, [3])], [("a", F, None), ("b", F, None), ("c", F, None)]))
    for n, sizes in ((6, (1, 2, 3)), (4, (0, 4, 0)), (7, (3, 3, 1))):
        both.check(x=_x(2, n), s=np.array(sizes, np.int64))


def test_loop_scan_output_with_run_time_dims():
    body = helper.make_graph(
        [helper.make_node("Add", ["y_in", "one"], ["y_out"]), helper.make_node("Mul", ["y_out", "y_out"], ["sq"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", I64, []), helper.make_tensor_value_info("cond_in",
                                                                                           TensorProto.BOOL, []),
                 helper.make_tensor_value_info("y_in", F, ["n", "m"])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", F, ["n", "m"]), helper.make_tensor_value_info("sq", F, ["n", "m"])],
        [onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["go"], value=helper.make_tensor("go", TensorProto.BOOL, [], [True])),
         helper.make_node("Loop", ["trips", "go", "x"], ["y", "scan"], body=body)],
        "loop", [helper.make_tensor_value_info("trips", I64, []), helper.make_tensor_value_info("x", F, ["n", "m"])],
        [helper.make_tensor_value_info("y", F, ["n", "m"]), helper.make_tensor_value_info("scan", F, None)])
    both = _Both(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8))
    for trips, n, m in ((3, 2, 5), (1, 4, 1), (5, 3, 3)):
        both.check(trips=np.array(trips, np.int64), x=_x(n, m))


def test_size_and_flatten_over_run_time_dims_on_both_sides():
    nodes = [helper.make_node("Flatten", ["x"], ["y"], axis=2), helper.make_node("Size", ["x"], ["n"])]
    both = _Both(_model(nodes, [("x", F, ["a", "b", "c", 2])], [("y", F, [None, None]), ("n", I64, [])]))
    for shape in ((2, 3, 4, 2), (1, 5, 1, 2)):
        both.check(x=_x(*shape))


def test_nonzero_of_a_run_time_mask_feeds_a_gather():
    """NonZero over dynamic dims (the count is data), its row coordinates gathering rows of the input."""
    nodes = [helper.make_node("Greater", ["x", "t"], ["m"]), helper.make_node("NonZero", ["m"], ["idx"]),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", I64, [], [0])),
             helper.make_node("Gather", ["idx", "zero"], ["rows"], axis=0),
             helper.make_node("Gather", ["x", "rows"], ["vals"], axis=0)]
    both = _Both(_model(nodes, [("x", F, ["n", "m"]), ("t", F, [])],
                        [("idx", I64, [2, "c"]), ("vals", F, ["c", "m"])]))
    for n, m, t in ((0, 3, 0.0), (1, 1, -9.0), (7, 13, 0.5), (64, 97, 5.0), (31, 2, 0.0)):
        both.check(x=_x(n, m, seed=n), t=np.array(t, np.float32))


@pytest.mark.parametrize("groups, channels, bias, strides, pads", [
    (2, (16, 32), True, (1, 1), (1, 1, 1, 1)),  # AlexNet's: one conv a group
    (4, (32, 64), False, (2, 2), (1, 0, 1, 0)),
    (3, (12, 24), True, (1, 1), (0, 0, 0, 0)),  # 8 output channels a group: still split
    (8, (8, 8), True, (1, 1), (1, 1, 1, 1)),  # one output channel a group: the grouped conv itself
])
def test_grouped_conv_with_a_dynamic_batch_and_size(groups, channels, bias, strides, pads):
    cin, cout = channels
    rng = np.random.default_rng(groups)
    w = helper.make_tensor("w", F, (cout, cin // groups, 3, 3), rng.standard_normal((cout, cin // groups, 3, 3))
                           .astype(np.float32).ravel())
    b = helper.make_tensor("b", F, (cout,), rng.standard_normal(cout).astype(np.float32))
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], group=groups, strides=strides,
                            pads=pads, kernel_shape=(3, 3))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, ["n", cin, "h", "w"])],
                              [helper.make_tensor_value_info("y", F, None)], initializer=[w, b] if bias else [w])
    both = _Both(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8))
    for n, h, wd in ((1, 9, 9), (2, 16, 7), (1, 3, 3)):
        x = _x(n, cin, h, wd, seed=h)
        want = both.sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(np.asarray(both.vm.run(x)), want, rtol=1e-4, atol=1e-4)  # (sums of 72-144 terms)
