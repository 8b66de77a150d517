"""Small ONNX models built with onnx.helper for the frontend tests."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _model(graph):
    return helper.make_model(graph, opset_imports=OPSET, ir_version=8)


def loop_model():
    """y = x; for i in range(n) while sum(y) < limit: y = y * 2 + i; also scan-collects sum(y) per iteration."""
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["y_in", "two"], ["y2"]),
            helper.make_node("Cast", ["i"], ["i_f"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["y2", "i_f"], ["y_out"]),
            helper.make_node("ReduceSum", ["y_out"], ["total"], keepdims=0),
            helper.make_node("Less", ["total", "limit"], ["cond_out"]),
            helper.make_node("Identity", ["total"], ["scan_total"]),
        ],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_in", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("scan_total", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y", "totals"], body=body)],
        "loop",
        [helper.make_tensor_value_info("trips", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("limit", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"]),
         helper.make_tensor_value_info("totals", TensorProto.FLOAT, [None])],
    )
    return _model(graph)


def if_model():
    """out = relu(x) @ w if sum(x) > 0 else tanh(x) @ w - 1 (w a constant of the outer graph)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    then_g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["t_out"])],
        "then", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, ["b", 3])])
    else_g = helper.make_graph(
        [helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("MatMul", ["t", "w"], ["m"]),
         helper.make_node("Sub", ["m", "one"], ["e_out"])],
        "else", [], [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, ["b", 3])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["c"]),
         helper.make_node("If", ["c"], ["out"], then_branch=then_g, else_branch=else_g)],
        "if", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", 3])],
        [w, numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    return _model(graph)


def lstm_model(direction="forward", hidden=5, inputs=3, gru=False, linear_before_reset=0, peepholes=False,
               batch="batch"):
    rng = np.random.default_rng(1)
    dirs = 2 if direction == "bidirectional" else 1
    gates = 3 if gru else 4
    w = rng.uniform(-0.5, 0.5, (dirs, gates * hidden, inputs)).astype(np.float32)
    r = rng.uniform(-0.5, 0.5, (dirs, gates * hidden, hidden)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, (dirs, 2 * gates * hidden)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))]
    op = "GRU" if gru else "LSTM"
    outs = ["Y", "Y_h"] if gru else ["Y", "Y_h", "Y_c"]
    names = ["X", "W", "R", "B"]
    extra = {"linear_before_reset": linear_before_reset} if gru and linear_before_reset else {}
    if peepholes:
        p = rng.uniform(-0.5, 0.5, (dirs, 3 * hidden)).astype(np.float32)
        inits.append(numpy_helper.from_array(p, "P"))
        names += ["", "", "", "P"]
    node = helper.make_node(op, names, outs, hidden_size=hidden, direction=direction, **extra)
    out_info = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["seq", dirs, batch, hidden])] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [dirs, batch, hidden]) for n in outs[1:]]
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                                                    ["seq", batch, inputs])],
                              out_info, inits)
    return _model(graph)


def dynamic_reshape_model():
    """(b, s, 8) -> Shape -> Gather(0), Gather(1) -> Concat(b, s, 2, 4) -> Reshape -> Transpose."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "i0"], ["b"], axis=0),
        helper.make_node("Gather", ["shape", "i1"], ["s"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Unsqueeze", ["s", "ax0"], ["s1"]),
        helper.make_node("Concat", ["b1", "s1", "heads"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 1, 3]),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "i0"), numpy_helper.from_array(np.array(1, np.int64), "i1"),
             numpy_helper.from_array(np.array([0], np.int64), "ax0"),
             numpy_helper.from_array(np.array([2, 4], np.int64), "heads")]
    graph = helper.make_graph(nodes, "reshape", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 2, "s", 4])], inits)
    return _model(graph)


def unsupported_model():
    nodes = [helper.make_node("RandomUniformLike", ["x"], ["a"], name="random1"),
             helper.make_node("RandomUniformLike", ["a"], ["b"], name="random2"),
             helper.make_node("Det", ["b"], ["v"], name="det"),
             helper.make_node("Relu", ["v"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    return _model(graph)
