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
