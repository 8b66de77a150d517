"""The fuse pass: which calls share a kernel."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.passes.fuse import fuse_ops


W = np.random.default_rng(0).standard_normal((16, 8)).astype("float32")


def _module(tail):
    x = ir.var("x", shape=(Any, 8))
    w = ir.const(W)
    b = ir.Builder()
    y = b.let("y", tail(nb.dense(x, w)))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(y)))
    return mod, x


@pytest.mark.parametrize("tail, names, want", [
    (lambda d: nb.add(nb.cast(d, dtype="float16"), ir.const(np.ones(16, "float16"))), [["dense"], ["cast", "add"]],
     lambda v: v.astype("float16") + np.float16(1)),
    (lambda d: nb.cast(nb.relu(d), dtype="float16"), [["dense"], ["relu", "cast"]],
     lambda v: np.maximum(v, 0).astype("float16")),
    (lambda d: nb.cast(d, dtype="float16"), [["dense"], ["cast"]], lambda v: v.astype("float16")),
])
def test_a_dense_anchor_never_shares_a_group_with_a_cast_wherever_the_cast_sits(tail, names, want):
    mod, _ = _module(tail)
    fused = fuse_ops(mod)
    groups, _ = fused.groups_of(mod.functions["main"])
    got = sorted([c.op.name for c in g.calls] for g in groups.values())
    assert got == sorted(names)
    x = np.random.default_rng(1).standard_normal((5, 8)).astype("float32")
    out = nimble.VirtualMachine(nimble.compile(mod)).run(x)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype("float32"), want(x @ W.T).astype("float32"), rtol=2e-3, atol=2e-3)


def test_a_reduction_to_a_scalar_keeps_its_own_kernel():
    """max(x) then maximum(., 0) (DynamicQuantizeLinear's range): the max runs alone (the reduce template's pass
    over the data), the scalar step in another kernel."""
    x = ir.var("x", shape=(Any, 8))
    b = ir.Builder()
    top = b.let("top", nb.maximum(nb.max(x, axis=None), ir.const(np.float32(0))))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(nb.multiply(nb.relu(x), top))))
    groups, _ = fuse_ops(mod).groups_of(mod.functions["main"])
    got = sorted([c.op.name for c in g.calls] for g in groups.values())
    assert ["max"] in got and all("max" not in g for g in got if g != ["max"]), got
    v = np.random.default_rng(2).standard_normal((6, 8)).astype("float32")
    np.testing.assert_allclose(nimble.VirtualMachine(nimble.compile(mod)).run(v),
                               np.maximum(v, 0) * max(v.max(), 0), rtol=1e-6)


def test_dense_layers_of_one_shape_share_a_kernel_only_with_the_same_weight_storage():
    """A float16-exact weight is stored as float16: a same-shaped layer whose weight is not must get its own kernel
    (sharing it would round that weight to float16)."""
    rng = np.random.default_rng(3)
    exact = rng.standard_normal((16, 16)).astype("float16").astype("float32")
    full = rng.standard_normal((16, 16)).astype("float32")
    x = ir.var("x", shape=(Any, 16))
    b = ir.Builder()
    h = b.let("h", nb.relu(nb.dense(x, ir.const(exact))))
    y = b.let("y", nb.relu(nb.dense(h, ir.const(full))))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(y)))
    v = rng.standard_normal((5, 16)).astype("float32")
    want = np.maximum(np.maximum(v @ exact.T, 0) @ full.T, 0)
    np.testing.assert_allclose(nimble.VirtualMachine(nimble.compile(mod)).run(v), want, rtol=1e-5, atol=1e-5)
