"""mod (numpy's np.mod) and fmod (np.fmod) at their edges: infinities, signed zeros, NaN, huge quotients, and an
integer divisor 0 (0 where numpy warns), through compiled kernels against numpy, signs of zeros included."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any

X = [0.0, -0.0, 0.0, -0.0, -3.0, 3.0, -1.0, 1.0, 5.5, -5.5, 7.0, np.nan, np.inf, 1e30, 2.0, -7.25, 1e-30, -1e30]
Y = [-2.0, 2.0, 2.0, -2.0, np.inf, np.inf, -np.inf, -np.inf, 2.0, 2.0, 0.0, 1.0, 3.0, 7.0, np.nan, 2.5, 3.0, 1e-3]
REF = {"mod": np.mod, "fmod": np.fmod}


def _vm(op, dtype):
    a = ir.var("a", shape=(Any,), dtype=dtype)
    b = ir.var("b", shape=(Any,), dtype=dtype)
    mod = ir.IRModule()
    mod.define("main", ir.Function([a, b], getattr(nb, op)(a, b)))
    return nimble.VirtualMachine(nimble.compile(mod))


@pytest.mark.parametrize("op", sorted(REF))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_edges_match_numpy_bit_for_bit(op, dtype):
    x, y = np.array(X, dtype), np.array(Y, dtype)
    with np.errstate(all="ignore"):
        want = REF[op](x, y)
    got = _vm(op, dtype).run(x, y)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))


@pytest.mark.parametrize("op", sorted(REF))
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_integers_and_a_zero_divisor(op, dtype):
    info = np.iinfo(dtype)
    x = np.array([7, info.max, 0, 5, 3, info.min, 9], dtype)
    y = np.array([3, 2, 5, 0, 1, 3 if info.min == 0 else -1, 4], dtype)
    if info.min < 0:
        x[[0, 4]] *= -1
    with np.errstate(all="ignore"):
        want = np.where(y == 0, 0, REF[op](x, y)).astype(dtype)
    np.testing.assert_array_equal(_vm(op, dtype).run(x, y), want)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64"])
def test_the_lowest_value_over_minus_one_does_not_trap(dtype):
    low = np.iinfo(dtype).min
    x, y = np.array([low, low, 7], dtype), np.array([-1, 0, -1], dtype)
    with np.errstate(all="ignore"):
        for op, want in (("divide", np.array([low, 0, -7], dtype)), ("mod", np.zeros(3, dtype)),
                         ("fmod", np.zeros(3, dtype))):
            np.testing.assert_array_equal(_vm(op, dtype).run(x, y), want)
