"""ONNX attributes checked as the spec says: out of range is a FormatError naming the node, never
wrapped modulo the rank; malformed nodes and initializers name themselves."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

import nimble
from nimble.frontend import from_onnx


def model(op, attrs, in_shape=(2, 3), n_out=1, extra=(), inputs=None):
    names = inputs if inputs is not None else ["x", *[e[0] for e in extra]]
    node = helper.make_node(op, names, [f"y{i}" for i in range(n_out)], name=f"my_{op}", **attrs)
    inits = [helper.make_tensor(n, TP.INT64, [len(v)], v) for n, v in extra]
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TP.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info(f"y{i}", TP.FLOAT, None) for i in range(n_out)],
                          initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


BAD = [
    ("Softmax", {"axis": 2}, (2, 3), 1, ()), ("Softmax", {"axis": -3}, (2, 3), 1, ()),
    ("LogSoftmax", {"axis": 2}, (2, 3), 1, ()), ("Concat", {"axis": 2}, (2, 3), 1, ()),
    ("Split", {"axis": 5}, (4, 2), 2, ()), ("ArgMax", {"axis": 2}, (2, 3), 1, ()),
    ("ArgMin", {"axis": -3}, (2, 3), 1, ()), ("Transpose", {"perm": [0, 0]}, (2, 3), 1, ()),
    ("Transpose", {"perm": [0, 2]}, (2, 3), 1, ()), ("Transpose", {"perm": [0]}, (2, 3), 1, ()),
    ("Flatten", {"axis": 3}, (2, 3), 1, ()), ("Flatten", {"axis": -3}, (2, 3), 1, ()),
    ("Gather", {"axis": 2}, (2, 3), 1, [("i", [0])]), ("Unsqueeze", {}, (2, 3), 1, [("a", [5])]),
    ("Unsqueeze", {}, (2, 3), 1, [("a", [1, 1])]), ("Squeeze", {}, (2, 1), 1, [("a", [2])]),
    ("ReduceSum", {}, (2, 3), 1, [("a", [3])]), ("ReduceSum", {}, (2, 3), 1, [("a", [0, -2])]),
    ("ReduceMean", {"axes": [-5]}, (2, 3), 1, ()), ("GatherElements", {"axis": 2}, (2, 3), 1, [("i", [0])]),
    ("Slice", {}, (2, 3), 1, [("s", [0]), ("e", [1]), ("a", [7])]),
]


@pytest.mark.parametrize("op,attrs,shape,n_out,extra", BAD, ids=[f"{b[0]}-{k}" for k, b in enumerate(BAD)])
def test_an_out_of_range_attribute_is_a_format_error_naming_the_node(op, attrs, shape, n_out, extra):
    with pytest.raises(nimble.FormatError, match=f"{op} node 'my_{op}'"):
        from_onnx(model(op, attrs, shape, n_out, extra))


@pytest.mark.parametrize("axis", [-2, -1, 0, 1])
def test_softmax_axes_in_range_still_convert_and_match_numpy(axis):
    mod = from_onnx(model("Softmax", {"axis": axis}, (2, 3)))
    x = np.random.default_rng(0).standard_normal((2, 3)).astype("float32")
    got = nimble.VirtualMachine(nimble.compile(mod)).run(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    np.testing.assert_allclose(got, e / e.sum(axis=axis, keepdims=True), rtol=1e-5, atol=1e-6)


def test_a_node_missing_inputs_is_a_format_error_naming_it():
    with pytest.raises(nimble.FormatError, match="LayerNormalization node 'my_LayerNormalization'.*malformed"):
        from_onnx(model("LayerNormalization", {"axis": -1}))


def test_a_wrong_size_initializer_is_a_format_error_naming_it():
    m = model("Add", {}, (3,), inputs=["x", "w"])
    bad = helper.make_tensor("w", TP.FLOAT, [3], np.zeros(3, "float32").tobytes(), raw=True)
    bad.raw_data = bad.raw_data[:8]
    m.graph.initializer.append(bad)
    with pytest.raises(nimble.FormatError, match="initializer 'w'"):
        from_onnx(m)
