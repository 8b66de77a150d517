import numpy as np

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.ir.expr import Call, Constant, Let
from nimble.passes.fold import eliminate_dead_code, fold_constants


def module():
    x = ir.var("x", shape=(Any, 4))
    b = ir.Builder()
    two = b.let("two", nb.add(ir.const(np.ones(4, "float32")), ir.const(np.ones(4, "float32"))))
    b.let("unused", nb.tanh(x))
    y = b.let("y", nb.multiply(x, two))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(y)))
    return mod


def lets(e):
    out = []
    while isinstance(e, Let):
        out.append(e)
        e = e.body
    return out


def test_folding_evaluates_constant_calls():
    folded = fold_constants(module())
    first = lets(folded.functions["main"].body)[0]
    assert isinstance(first.value, Constant)
    np.testing.assert_array_equal(first.value.value, np.full(4, 2.0, "float32"))


def test_dead_lets_are_dropped_and_results_unchanged():
    mod = module()
    clean = eliminate_dead_code(fold_constants(mod))
    names = [l.var.name for l in lets(clean.functions["main"].body)]
    assert "unused" not in names and "y" in names
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    np.testing.assert_allclose(ir.evaluate(clean, x), ir.evaluate(mod, x))
    vm = nimble.VirtualMachine(nimble.compile(mod))
    np.testing.assert_allclose(vm.run(x), ir.evaluate(mod, x))
    assert not any(isinstance(l.value, Call) and l.value.op.name == "tanh" for l in lets(clean.functions["main"].body))
