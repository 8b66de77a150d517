"""Small ONNX graphs (onnx.helper) in the shapes PyTorch / transformers exports take: decomposed LayerNorm, GELU
(erf form), attention scores, an N-D MatMul with a constant weight. Input `x` is (1, seq, H) unless said."""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper, numpy_helper

H = 16
SQRT2 = math.sqrt(2.0)


def _model(nodes, inputs, outputs, inits, opset=13):
    graph = helper.make_graph(nodes, "pattern", inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _x(name="x", dims=(1, "seq", H)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def _f(v):
    return np.asarray(v, np.float32)


def layer_norm_model(eps=1e-12, axis=-1, exponent=2.0, opset=13, gamma_first=False):
    """PyTorch's LayerNorm export before opset 17: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add."""
    rng = np.random.default_rng(0)
    mul = ["gamma", "normed"] if gamma_first else ["normed", "gamma"]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[axis]),
        helper.make_node("Sub", ["x", "mean"], ["diff"]),
        helper.make_node("Pow", ["diff", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["var"], axes=[axis]),
        helper.make_node("Add", ["var", "eps"], ["shifted"]),
        helper.make_node("Sqrt", ["shifted"], ["std"]),
        helper.make_node("Div", ["diff", "std"], ["normed"]),
        helper.make_node("Mul", mul, ["scaled"]),
        helper.make_node("Add", ["scaled", "beta"], ["y"]),
    ]
    inits = {"two": _f(exponent), "eps": _f(eps), "gamma": _f(1 + 0.1 * rng.standard_normal(H)),
             "beta": _f(0.1 * rng.standard_normal(H))}
    return _model(nodes, [_x()], [_x("y")], inits, opset)


def gelu_model(half=0.5, root=SQRT2, half_first=False):
    """transformers' erf GELU: x * 0.5 * (1 + erf(x / sqrt 2)) (or 0.5 * x first)."""
    nodes = [
        helper.make_node("Div", ["x", "root"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["one_plus"]),
    ]
    if half_first:
        nodes += [helper.make_node("Mul", ["x", "half"], ["xh"]), helper.make_node("Mul", ["xh", "one_plus"], ["y"])]
    else:
        nodes += [helper.make_node("Mul", ["x", "one_plus"], ["xe"]), helper.make_node("Mul", ["xe", "half"], ["y"])]
    inits = {"root": _f(root), "one": _f(1.0), "half": _f(half)}
    return _model(nodes, [_x()], [_x("y")], inits)


def attention_model(heads=4, head=8, scale_op="Div", mask=True, mask_first=False):
    """Scores of PyTorch's BERT self-attention: q @ k^T / sqrt(d) + mask -> Softmax -> @ v on (1, heads, seq, d)
    inputs, k arriving as (1, seq, heads, d) and transposed like the export does."""
    dims = (1, heads, "seq", head)
    nodes = [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["scores"]),
        helper.make_node(scale_op, ["scores", "scale"], ["scaled"]),
    ]
    last = "scaled"
    inputs = [_x("q", dims), _x("k", (1, "seq", heads, head)), _x("v", dims)]
    if mask:
        nodes.append(helper.make_node("Add", ["mask", "scaled"] if mask_first else ["scaled", "mask"], ["masked"]))
        inputs.append(_x("mask", (1, 1, 1, "seq")))
        last = "masked"
    nodes += [helper.make_node("Softmax", [last], ["probs"], axis=-1),
              helper.make_node("MatMul", ["probs", "v"], ["y"])]
    value = math.sqrt(head) if scale_op == "Div" else 1 / math.sqrt(head)
    return _model(nodes, inputs, [_x("y", dims)], {"scale": _f(value)})


def dense_block_model(k=H, m=24):
    """An N-D MatMul with a constant (k, m) weight, bias, Gelu node, a second MatMul back to k, residual add."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["b1", "h"], ["hb"]),
        helper.make_node("Gelu", ["hb"], ["g"]),
        helper.make_node("MatMul", ["g", "w2"], ["o"]), helper.make_node("Add", ["o", "b2"], ["ob"]),
        helper.make_node("Add", ["ob", "x"], ["y"]),
    ]
    inits = {"w1": _f(rng.standard_normal((k, m)) / 4), "b1": _f(rng.standard_normal(m)),
             "w2": _f(rng.standard_normal((m, k)) / 4), "b2": _f(rng.standard_normal(k))}
    return _model(nodes, [_x("x", ("batch", "seq", k))], [_x("y", ("batch", "seq", k))], inits, opset=20)


def two_path_model(k=H, m=24):
    """A MatMul with a dynamic batch and sequence whose result takes two elementwise paths that meet again:
    y = 0.5 * h + 0.1 * h^3 with h = x @ w + b (the shape of the tanh GELU's inner polynomial)."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h0"]), helper.make_node("Add", ["h0", "b"], ["h"]),
        helper.make_node("Mul", ["h", "half"], ["a"]), helper.make_node("Pow", ["h", "three"], ["c"]),
        helper.make_node("Mul", ["c", "tenth"], ["d"]), helper.make_node("Add", ["a", "d"], ["y"]),
    ]
    inits = {"w": _f(rng.standard_normal((k, m)) / 4), "b": _f(rng.standard_normal(m)), "half": _f(0.5),
             "three": _f(3.0), "tenth": _f(0.1)}
    return _model(nodes, [_x("x", ("batch", "seq", k))], [_x("y", ("batch", "seq", m))], inits, opset=17)
