"""Accuracy of the inline float32 math functions (bounds documented in nimble/codegen/llvm_math.py)."""
from math import erf

import numpy as np
import pytest

import nimble
from nimble import te


def unary(fn, name):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: fn(A[i]), name="B")
    s = te.create_schedule(B)
    (i,) = s[B].axis
    io, ii = s[B].split(i, 16)
    s[B].vectorize(ii)
    return nimble.build(s, [A, B], name=name)


def test_exp_relative_error_on_minus_80_to_80():
    k = unary(te.exp, "exp_acc")
    x = np.linspace(-80, 80, 200_001).astype("float32")
    ref = np.exp(x.astype("float64"))
    assert np.max(np.abs(k(x) - ref) / ref) <= 1e-6


def test_exp_edges():
    k = unary(te.exp, "exp_edges")
    x = np.array([0.0, 100.0, -100.0, np.inf, -np.inf, np.nan], "float32")
    y = k(x)
    assert y[0] == 1.0 and np.isposinf(y[1]) and y[2] == 0.0 and np.isposinf(y[3]) and y[4] == 0.0
    assert np.isnan(y[5])


@pytest.mark.parametrize("fn,ref,name", [
    (te.tanh, np.tanh, "tanh_acc"),
    (te.sigmoid, lambda x: 1 / (1 + np.exp(-x)), "sigmoid_acc"),
    (te.erf, np.vectorize(erf), "erf_acc"),
])
def test_absolute_error_below_1e6(fn, ref, name):
    k = unary(fn, name)
    x = np.linspace(-12, 12, 24_001).astype("float32")
    assert np.max(np.abs(k(x) - ref(x.astype("float64")))) <= 1e-6


def test_other_math_goes_through_libm_or_hardware():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.log(A[i]) + te.sqrt(A[i]) + te.power(A[i], 1.5) + te.abs_(-A[i]), name="B")
    k = nimble.build(B, [A, B], name="libm")
    x = np.linspace(0.1, 10, 101).astype("float32")
    np.testing.assert_allclose(k(x), np.log(x) + np.sqrt(x) + x ** 1.5 + x, rtol=1e-6)


# float32 bit patterns spread over the whole range (both signs, subnormals, up to the largest finite, inf, NaN)
_ALL_FLOAT32 = np.concatenate([np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32).view(np.float32),
                               np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 89.41, -89.41, 89.42,
                                         2.0**21, 2.0**21 + 2, 8192.0, 1e38, -3.4e38], np.float32)])
_VECTOR_MATH = {"atan": (np.arctan, 3.0), "tan": (np.tan, 3.0), "sinh": (np.sinh, 2.0), "cosh": (np.cosh, 2.0)}


def _max_ulp(got: np.ndarray, x: np.ndarray, ref) -> float:
    """The largest error in units of float32's last place of the exact (float64) result; NaN, inf and signed
    zeros must match the float64 result rounded to float32 exactly."""
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64))
        want32 = want.astype(np.float32)
    nan = np.isnan(want32)
    np.testing.assert_array_equal(np.isnan(got), nan)
    special = (np.isinf(want32) | (want32 == 0)) & ~nan  # (a NaN's sign is not checked)
    np.testing.assert_array_equal(got[special], want32[special])
    np.testing.assert_array_equal(np.signbit(got[special]), np.signbit(want32[special]))
    fin = ~special & ~nan
    return float(np.max(np.abs(got[fin].astype(np.float64) - want[fin]) / np.spacing(np.abs(want32[fin]))))


@pytest.mark.parametrize("name", sorted(_VECTOR_MATH))
def test_vector_trig_max_ulp_over_the_whole_float32_range(name):
    ref, bound = _VECTOR_MATH[name]
    k = unary(lambda a: te.math_call(name, a), f"{name}_ulp")
    if name != "tan":  # vector code, not libm's lane by lane (tan keeps it for lanes past 2**21, on a branch)
        assert f'@"{name}f"' not in k.llvm_ir()
    assert _max_ulp(k(_ALL_FLOAT32), _ALL_FLOAT32, ref) <= bound


@pytest.mark.parametrize("name", sorted(_VECTOR_MATH))
def test_vector_trig_scalar_loops_agree(name):
    """The same functions on scalar (not vectorized) loops: the tail lanes and the python VM's kernels use them."""
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.math_call(name, A[i]), name="B")
    k = nimble.build(B, [A, B], name=f"{name}_scalar")
    x = np.ascontiguousarray(_ALL_FLOAT32[::7])
    ref, bound = _VECTOR_MATH[name]
    assert _max_ulp(k(x), x, ref) <= bound


def test_vector_tan_costs_about_what_exp_does():
    """libm's tanf lane by lane cost ~28x the inline exp (1 thread); the vector tan ~2.5x."""
    import time

    kernels = [unary(te.exp, "exp_cost"), unary(lambda a: te.math_call("tan", a), "tan_cost")]
    x = np.random.default_rng(0).uniform(-10, 10, 1 << 18).astype("float32")
    out = np.empty_like(x)
    times = [[], []]
    for _ in range(9):
        for k, t in zip(kernels, times):
            start = time.perf_counter()
            k(x, out)
            t.append(time.perf_counter() - start)
    assert min(times[1]) < 12 * min(times[0]), times
