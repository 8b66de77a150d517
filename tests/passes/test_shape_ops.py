"""The shape_ops pass: run-time shapes read from other tensors' dims become data-independent operators
(dim_arange, reshape_like), so the VM sizes them without a host callback; shapes read from values stay."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.passes.let_chain import LetChain  # noqa: E402
from nimble.passes.pipeline import Pipeline, default_ir_passes  # noqa: E402


def _model():
    """x (m, 4) reshaped to (y's first two dims, 4) (y's shape); a Range over y's second dim; x reshaped to a shape
    given as a value."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, TensorProto.INT64, [len(v)] if isinstance(v, list) else [], v if isinstance(v, list) else [v]))
    nodes = [
        c("i0", 0), c("i1", 1), c("one", 1), c("zero", 0), c("four", [4]), c("ax0", [0]),
        helper.make_node("Shape", ["y"], ["sy"]),
        helper.make_node("Gather", ["sy", "i0"], ["a"], axis=0),
        helper.make_node("Gather", ["sy", "i1"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["a", "ax0"], ["a1"]),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Concat", ["a1", "b1", "four"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["viewed"]),
        helper.make_node("Range", ["zero", "b", "one"], ["positions"]),
        helper.make_node("Reshape", ["x", "s"], ["by_value"]),
    ]
    graph = helper.make_graph(nodes, "g", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", 4]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["p", "q", 4]),
        helper.make_tensor_value_info("s", TensorProto.INT64, [3])], [
        helper.make_tensor_value_info("viewed", TensorProto.FLOAT, None),
        helper.make_tensor_value_info("positions", TensorProto.INT64, None),
        helper.make_tensor_value_info("by_value", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shapes_read_from_dims_become_data_independent_and_shapes_from_values_stay():
    mod = Pipeline(default_ir_passes()).run(from_onnx(_model()))
    names = [v.op.name for _, v in LetChain.of(mod["main"].body).bindings if hasattr(getattr(v, "op", None), "name")]
    assert "reshape_like" in names and "dim_arange" in names and "arange" not in names
    assert names.count("dyn.reshape") == 1  # the shape given as a value


@pytest.mark.parametrize("p,q", [(3, 0), (1, 1), (2, 7), (5, 13)])  # (ONNX Reshape copies a 0 from x)
def test_rewritten_shapes_match_numpy_without_host_callbacks_for_them(p, q):
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(_model())))
    rng = np.random.default_rng(p * 10 + q)
    x = rng.standard_normal((p * q, 4)).astype(np.float32)
    y = np.zeros((p, q, 4), np.float32)
    s = np.array([q, p, 4], np.int64)
    viewed, positions, by_value = vm.run(x, y, s)
    np.testing.assert_array_equal(np.asarray(viewed), x.reshape(p, q, 4))
    np.testing.assert_array_equal(np.asarray(positions), np.arange(q))
    np.testing.assert_array_equal(np.asarray(by_value), x.reshape(q, p, 4))
    calls = {n: k["calls"] for n, k in vm.profile(x, y, s).kernels.items()}
    assert sum(c for n, c in calls.items() if n.startswith("op_shape")) == 1, calls  # by_value's only
