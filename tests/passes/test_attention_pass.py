"""fuse_attention: which chains become one attention call (builder BERT, the ONNX frontend's 3-D form, masks,
scale forms) and which stay; compiled results against numpy at sequence lengths 0, 1 and primes."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ops as nb
from nimble.ir import Any
from nimble.ir.builder import Builder, const, var
from nimble.ir.expr import Function
from nimble.ir.module import IRModule
from nimble.ir.types import TensorType
from nimble.models import bert
from nimble.passes.anf import to_anf
from nimble.passes.attention import fuse_attention
from nimble.passes.let_chain import LetChain
from nimble.schedules.attention import attention_reference

HEADS, D = 2, 8
W = HEADS * D


def op_names(func) -> list:
    return [v.op.name for _, v in LetChain.of(func.body).bindings if hasattr(getattr(v, "op", None), "name")]


def attention_module(mask: str = "none", scale_op: str = "multiply", onnx_form: bool = False, probs_out=False):
    """@main(q, k, v (n, W) [, mask]) -> the heads-first chain of nimble.models.bert (or the 3-D form the ONNX
    pattern pass writes)."""
    q, k, v = (var(n, shape=(Any, W)) for n in "qkv")
    params = [q, k, v]
    b = Builder()

    def heads(x, name):
        if onnx_form:
            r = nb.squeeze(nb.reshape(x, (1, -1, HEADS, D)), axis=(0,))
        else:
            r = nb.reshape(x, (-1, HEADS, D))
        return b.let(name, nb.transpose(r, axes=(1, 0, 2)))

    qh, kh, vh = heads(q, "qh"), heads(k, "kh"), heads(v, "vh")
    scores = nb.batch_matmul(qh, kh)
    scores = nb.multiply(scores, const(1 / math.sqrt(D), "float32")) if scale_op == "multiply" else nb.divide(
        scores, const(math.sqrt(D), "float32"))
    if mask == "key":
        m = var("mask", shape=(1, 1, Any))
        params.append(m)
        scores = nb.add(scores, m)
    elif mask == "full":
        m = var("mask", shape=(Any, Any))
        params.append(m)
        scores = nb.add(m, scores)
    elif mask == "per_head":
        m = var("mask", shape=(HEADS, Any, Any))
        params.append(m)
        scores = nb.add(scores, m)
    probs = b.let("probs", nb.softmax(scores, axis=-1))
    ctx = b.let("ctx", nb.batch_matmul(probs, vh, transpose_b=False))
    if onnx_form:
        merged = nb.reshape(nb.transpose(nb.expand_dims(ctx, axis=0), axes=(0, 2, 1, 3)), (-1, W))
    else:
        merged = nb.reshape(nb.transpose(ctx, axes=(1, 0, 2)), (-1, W))
    out = b.let("merged", merged)
    if probs_out:
        out = b.let("both", nb.add(out, nb.sum(probs)))
    mod = IRModule()
    mod.define("main", Function(params, b.ret(out), TensorType((Any, W))))
    return mod


def numpy_attention(q, k, v, mask=None):
    if mask is not None and mask.ndim == 3 and mask.shape[0] == HEADS:
        return np.concatenate([attention_reference(q[:, h * D:(h + 1) * D], k[:, h * D:(h + 1) * D],
                                                   v[:, h * D:(h + 1) * D], mask[h], 1, D, {"q": 0, "k": 0, "v": 0},
                                                   1 / math.sqrt(D), False) for h in range(HEADS)], axis=1)
    m = None if mask is None else mask.reshape(mask.shape[-2:])
    return attention_reference(q, k, v, m, HEADS, D, {"q": 0, "k": 0, "v": 0}, 1 / math.sqrt(D), False)


@pytest.mark.parametrize("onnx_form", [False, True])
@pytest.mark.parametrize("scale_op", ["multiply", "divide"])
@pytest.mark.parametrize("mask", ["none", "key", "full"])
def test_attention_chain_becomes_one_call(onnx_form, scale_op, mask):
    out = fuse_attention(to_anf(attention_module(mask, scale_op, onnx_form)))
    names = op_names(out["main"])
    assert names.count("attention") == 1
    assert not {"batch_matmul", "softmax", "transpose", "reshape"} & set(names), names
    (call,) = [v for _, v in LetChain.of(out["main"].body).bindings if getattr(v.op, "name", "") == "attention"]
    assert call.attrs["heads"] == HEADS and call.attrs["head_size"] == D
    assert call.attrs["scale"] == pytest.approx(1 / math.sqrt(D), rel=1e-6)


@pytest.mark.parametrize("kind", ["per_head", "probs_out"])
def test_attention_lookalikes_stay(kind):
    mod = attention_module(mask="per_head") if kind == "per_head" else attention_module(probs_out=True)
    names = op_names(fuse_attention(to_anf(mod))["main"])
    assert "attention" not in names and "softmax" in names and "batch_matmul" in names


@pytest.fixture(scope="module")
def compiled():
    return {m: nimble.VirtualMachine(nimble.compile(attention_module(m, onnx_form=m == "key"), ), backend="python")
            for m in ("none", "key", "full", "per_head")}


@settings(max_examples=8, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 64]))
def test_compiled_attention_matches_numpy_at_any_length(compiled, n):
    rng = np.random.default_rng(n)
    q, k, v = (rng.standard_normal((n, W)).astype(np.float32) for _ in range(3))
    masks = {"none": None, "key": rng.standard_normal((1, 1, n)).astype(np.float32),
             "full": rng.standard_normal((n, n)).astype(np.float32),
             "per_head": rng.standard_normal((HEADS, n, n)).astype(np.float32)}
    for name, vm in compiled.items():
        mask = masks[name]
        got = np.asarray(vm.run(q, k, v) if mask is None else vm.run(q, k, v, mask))
        np.testing.assert_allclose(got, numpy_attention(q, k, v, mask), rtol=1e-5, atol=1e-5, err_msg=name)


def test_builder_bert_gets_one_attention_per_layer():
    config = bert.BertConfig(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64)
    mod = fuse_attention(to_anf(bert.build_module(bert.random_weights(config, 1), config)))
    for layer in ("layer0", "layer1"):
        names = op_names(mod[layer])
        assert names.count("attention") == 1 and "softmax" not in names and "transpose" not in names, names


def test_onnx_bert_gets_one_attention_per_layer(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "scripts"))
    import peers

    from nimble.frontend import from_onnx

    config = bert.BertConfig(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64)
    path = peers.export_onnx("bert", bert.random_weights(config, 1), config, str(tmp_path))
    names = op_names(fuse_attention(to_anf(from_onnx(path)))["main"])
    assert names.count("attention") == 2 and "softmax" not in names and "batch_matmul" not in names, names


def test_a_merge_that_is_the_function_result_is_rewritten():
    mod = attention_module()
    func = mod["main"]
    chain = LetChain.of(func.body)
    *rest, (_, merged) = chain.bindings  # return the merge itself instead of a variable bound to it
    out = IRModule()
    out.define("main", Function(func.params, LetChain(rest, merged).body(), func.ret_type))
    names = op_names(fuse_attention(to_anf(out))["main"])
    assert names == ["attention"]
