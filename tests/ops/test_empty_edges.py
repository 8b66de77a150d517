"""Empty axes at run time: bool reductions give their identities (max False, min True, sum False, prod True), and take
from an empty axis is an error only when something is taken."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.errors import OutOfRangeError
from nimble.ir import Any

IDENTITY = {"max": np.logical_or.reduce, "min": np.logical_and.reduce, "sum": np.logical_or.reduce,
            "prod": np.logical_and.reduce}


@pytest.mark.parametrize("op", sorted(IDENTITY))
@pytest.mark.parametrize("n", [0, 1, 5])
def test_bool_reductions_over_a_run_time_axis(op, n):
    x = ir.var("x", shape=(2, Any, 3), dtype="bool")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], getattr(nb, op)(x, axis=1, keepdims=True)))
    vm = nimble.VirtualMachine(nimble.compile(mod))
    a = np.random.default_rng(n).random((2, n, 3)) > 0.5
    np.testing.assert_array_equal(vm.run(a), IDENTITY[op](a, axis=1, keepdims=True))


def test_take_from_an_empty_axis():
    x = ir.var("x", shape=(Any,))
    i = ir.var("i", shape=(Any,), dtype="int64")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x, i], nb.take(x, i, axis=0)))
    vm = nimble.VirtualMachine(nimble.compile(mod))
    assert vm.run(np.zeros(0, np.float32), np.zeros(0, np.int64)).shape == (0,)  # nothing taken: fine
    with pytest.raises(OutOfRangeError):
        vm.run(np.zeros(0, np.float32), np.array([0], np.int64))
