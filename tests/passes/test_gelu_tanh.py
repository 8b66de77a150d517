"""tanh GELU (GPT-2's NewGELU, ONNX Gelu approximate="tanh"): the pattern pass writes gelu_tanh, a dense group
ending in it runs as the dense template's epilogue, results against numpy and ONNX Runtime."""
import math

import numpy as np
import pytest

pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.passes.let_chain import LetChain  # noqa: E402
from nimble.passes.patterns import rewrite_patterns  # noqa: E402
from nimble.schedules.dense import dense_signature  # noqa: E402
from nimble.schedules.registry import get_template  # noqa: E402

K, M = 16, 40
C = math.sqrt(2 / math.pi)


def numpy_gelu_tanh(x):
    x = x.astype(np.float64)
    return 0.5 * x * (1 + np.tanh(C * (x + 0.044715 * x ** 3)))


def gpt2_gelu_model(cube="pow", coeff=0.044715, dense=False, onnx_gelu=False):
    """y = 0.5 * h * (1 + tanh(sqrt(2/pi) * (h + coeff * h^3))) as transformers' GPT-2 export writes it, with h = x
    (or h = x @ w + b and y @ w2 returned, GPT-2's MLP); `onnx_gelu`: one Gelu node with approximate="tanh"
    (opset 20) instead."""
    rng = np.random.default_rng(0)
    nodes, inits, h = [], {}, "x"
    if dense:
        nodes += [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["h"])]
        inits |= {"w": rng.standard_normal((K, M)).astype(np.float32) / 3, "b": rng.standard_normal(M).astype(np.float32),
                  "w2": rng.standard_normal((M, K)).astype(np.float32) / 6}
        h = "h"
    if onnx_gelu:
        nodes.append(helper.make_node("Gelu", [h], ["y"], approximate="tanh"))
    else:
        if cube == "pow":
            nodes.append(helper.make_node("Pow", [h, "three"], ["c"]))
            inits["three"] = np.float32(3.0)
        else:
            nodes += [helper.make_node("Mul", [h, h], ["sq"]), helper.make_node("Mul", ["sq", h], ["c"])]
        nodes += [helper.make_node("Mul", [h, "half"], ["hh"]), helper.make_node("Mul", ["c", "coeff"], ["cc"]),
                  helper.make_node("Add", [h, "cc"], ["s"]), helper.make_node("Mul", ["s", "root"], ["r"]),
                  helper.make_node("Tanh", ["r"], ["t"]), helper.make_node("Add", ["t", "one"], ["tp"]),
                  helper.make_node("Mul", ["hh", "tp"], ["y"])]
        inits |= {"half": np.float32(0.5), "coeff": np.float32(coeff), "root": np.float32(C), "one": np.float32(1.0)}
    if dense:
        for node in nodes:
            node.output[:] = ["g" if o == "y" else o for o in node.output]
        nodes.append(helper.make_node("MatMul", ["g", "w2"], ["y"]))
    width = K
    graph = helper.make_graph(
        nodes, "gelu_tanh", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq", width])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)


def op_names(mod) -> list:
    return [v.op.name for _, v in LetChain.of(mod["main"].body).bindings if hasattr(getattr(v, "op", None), "name")]


@pytest.mark.parametrize("form", [{"cube": "pow"}, {"cube": "mul"}, {"onnx_gelu": True}])
def test_tanh_gelu_forms_become_gelu_tanh(form):
    names = op_names(rewrite_patterns(from_onnx(gpt2_gelu_model(**form), patterns=False)))
    assert "gelu_tanh" in names and "tanh" not in names and "power" not in names, names


def test_tanh_gelu_lookalike_stays():
    names = op_names(rewrite_patterns(from_onnx(gpt2_gelu_model(coeff=0.05), patterns=False)))
    assert "gelu_tanh" not in names and "tanh" in names


@pytest.mark.parametrize("seq", [0, 1, 7, 31])
def test_dense_with_tanh_gelu_is_one_dense_template_kernel_matching_ort(seq):
    ort = pytest.importorskip("onnxruntime")
    model = gpt2_gelu_model(dense=True)
    exe = nimble.compile(from_onnx(model))
    kernels = [k for k in exe.packed if "gelu" in k.name]
    assert len(kernels) == 1 and "dense_add_gelu_tanh" in kernels[0].name, [k.name for k in exe.packed]
    assert type(kernels[0]).__name__ == "DispatchEntry"  # the dense template's dispatch table, not a generic kernel
    x = np.random.default_rng(seq).standard_normal((1, seq, K)).astype(np.float32)
    got = np.asarray(nimble.VirtualMachine(exe).run(x))
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_template_gelu_tanh_epilogue_matches_numpy():
    t = get_template("dense")
    sig = dense_signature("n", K, M, bias=True, epilogue=["gelu_tanh"])
    kernel = t.build(sig, t.fallback(sig, t.space(sig), {"n": 16}))
    rng = np.random.default_rng(3)
    for n in (1, 5, 13):
        x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, K), (M, K), (M,)))
        np.testing.assert_allclose(kernel(x, w, b), numpy_gelu_tanh(x @ w.T + b), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(t.reference(sig, [x, w, b])[0], numpy_gelu_tanh(x @ w.T + b), rtol=1e-6, atol=1e-6)
