"""Kernels built from te against numpy: elementwise, broadcast, reductions, matmul, softmax."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import te

SIZES = [0, 1, 7, 64, 1000]
dims = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 64, 97, 128, 257])
rng = np.random.default_rng(0)


def rand(*shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


@pytest.fixture(scope="module")
def broadcast_add():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    b = te.placeholder((m,), name="b")
    C = te.compute((n, m), lambda i, j: A[i, j] * 2.0 + b[j], name="C")
    s = te.create_schedule(C)
    i, j = s[C].axis
    jo, ji = s[C].split(j, 16)
    s[C].vectorize(ji)
    s[C].parallel(i)
    return nimble.build(s, [A, b, C], name="bcast")


@pytest.mark.parametrize("n", SIZES)
def test_elementwise_with_broadcasting(broadcast_add, n):
    a, b = rand(n, 33), rand(33)
    np.testing.assert_allclose(broadcast_add(a, b), a * 2.0 + b, rtol=1e-6, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(dims, dims)
def test_elementwise_any_shape(broadcast_add, n, m):
    a, b = rand(n, m), rand(m)
    np.testing.assert_allclose(broadcast_add(a, b), a * 2.0 + b, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def row_max_and_sum():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis(m, "k")
    S = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="S")
    k2 = te.reduce_axis(m, "k2")
    M = te.compute((n,), lambda i: te.max(A[i, k2], axis=k2), name="M")
    return nimble.build([S, M], [A, S, M], name="rows")


@pytest.mark.parametrize("n", SIZES)
def test_reductions_over_an_axis(row_max_and_sum, n):
    a = rand(n, 45)
    s, mx = row_max_and_sum(a)
    np.testing.assert_allclose(s, a.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(mx, a.max(axis=1))


def test_max_over_an_empty_axis_is_minus_infinity(row_max_and_sum):
    s, mx = row_max_and_sum(rand(3, 0))
    np.testing.assert_array_equal(s, np.zeros(3, "float32"))
    assert np.all(np.isneginf(mx))


def matmul_kernel(symbolic_k: bool):
    n = te.var("n")
    K = te.var("k") if symbolic_k else 96
    A = te.placeholder((n, K), name="A")
    B = te.placeholder((K, 48), name="B")
    r = te.reduce_axis(K, "r")
    C = te.compute((n, 48), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    return nimble.build(C, [A, B, C], name="mm_k" if symbolic_k else "mm_n")


@pytest.mark.parametrize("symbolic_k", [False, True])
@pytest.mark.parametrize("n", SIZES)
def test_matmul_symbolic_n_or_k(symbolic_k, n):
    kern = matmul_kernel(symbolic_k)
    kk = 37 if symbolic_k else 96
    a, b = rand(n, kk), rand(kk, 48)
    np.testing.assert_allclose(kern(a, b), a @ b, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def tiled_matmul():
    n = te.var("n")
    A = te.placeholder((n, 64), name="A")
    B = te.placeholder((64, 80), name="B")
    r = te.reduce_axis(64, "r")
    C = te.compute((n, 80), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    s = te.create_schedule(C)
    CL = s.cache_write(C)
    i, j = s[C].axis
    io, jo, ii, ji = s[C].tile(i, j, 4, 16)
    s[C].vectorize(ji)
    s[C].parallel(io)
    s[CL].compute_at(s[C], jo)
    ci, cj = s[CL].axis
    (ck,) = s[CL].reduce_axis
    s[CL].reorder(ck, ci, cj)
    s[CL].vectorize(cj)
    s[CL].unroll(ci)
    return nimble.build(s, [A, B, C], name="mm_tiled")


@settings(max_examples=30, deadline=None)
@given(dims)
def test_tiled_matmul_any_n(tiled_matmul, n):
    a, b = rand(n, 64), rand(64, 80)
    np.testing.assert_allclose(tiled_matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def softmax():
    n, m = te.var("n"), te.var("m")
    X = te.placeholder((n, m), name="X")
    k = te.reduce_axis(m, "k")
    mx = te.compute((n,), lambda i: te.max(X[i, k], axis=k), name="mx")
    E = te.compute((n, m), lambda i, j: te.exp(X[i, j] - mx[i]), name="E")
    k2 = te.reduce_axis(m, "k2")
    S = te.compute((n,), lambda i: te.sum(E[i, k2], axis=k2), name="S")
    Y = te.compute((n, m), lambda i, j: E[i, j] / S[i], name="Y")
    return nimble.build(Y, [X, Y], name="softmax")


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@settings(max_examples=30, deadline=None)
@given(dims, st.sampled_from([1, 2, 7, 64, 129]))
def test_softmax_written_in_te(softmax, n, m):
    x = rand(n, m) * 5
    np.testing.assert_allclose(softmax(x), np_softmax(x), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def doubled():
    n = te.var("n")
    A = te.placeholder((n, 3), name="A")
    B = te.compute((n * 2, 3), lambda i, j: A[i // 2, j] + (i % 2).astype("float32"), name="B")
    return nimble.build(B, [A, B], name="doubled")


@pytest.mark.parametrize("n", SIZES)
def test_output_shape_is_an_expression_of_the_input(doubled, n):
    a = rand(n, 3)
    out = doubled(a)
    assert out.shape == (2 * n, 3)
    np.testing.assert_array_equal(out, np.repeat(a, 2, axis=0) + np.tile([[0.0], [1.0]], (n, 1)).astype("float32"))


def test_int_and_float64_kernels():
    n = te.var("n")
    A = te.placeholder((n,), "int32", name="A")
    B = te.compute((n,), lambda i: A[i] * 3 + A[i] // 2 - A[i] % 5, name="B")
    k = nimble.build(B, [A, B], name="ints")
    a = np.arange(-20, 21, dtype="int32")
    np.testing.assert_array_equal(k(a), a * 3 + a // 2 - a % 5)
    X = te.placeholder((n,), "float64", name="X")
    Y = te.compute((n,), lambda i: te.exp(X[i]) + te.tanh(X[i]) + te.erf(X[i]), name="Y")
    k = nimble.build(Y, [X, Y], name="f64")
    from math import erf

    x = np.linspace(-3, 3, 11)
    np.testing.assert_allclose(k(x), np.exp(x) + np.tanh(x) + np.array([erf(v) for v in x]), rtol=1e-12)


def test_casts_selects_and_comparisons():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.select(A[i] > 0.0, A[i], 0.0).astype("int64") + te.cast("int64", i), name="B")
    k = nimble.build(B, [A, B], name="relu_idx")
    a = rand(50) * 10
    np.testing.assert_array_equal(k(a), np.where(a > 0, a, 0).astype("int64") + np.arange(50))


def test_bool_tensors_in_memory_are_bytes_like_numpy():
    n = te.var("n")
    A = te.placeholder((n,), "bool", name="A")
    B = te.compute((n,), lambda i: te.not_(A[i]), name="B")
    s = te.create_schedule(B)
    io, ii = s[B].split(s[B].axis[0], 16)
    s[B].vectorize(ii)
    k = nimble.build(s, [A, B], name="bool_not")
    a = rng.integers(0, 2, size=37).astype(bool)
    np.testing.assert_array_equal(k(a), ~a)


def test_nan_is_not_equal_to_itself():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.ne(A[i], A[i]), name="B")
    k = nimble.build(B, [A, B], name="isnan_ne")
    a = np.array([1.0, np.nan, -np.inf, np.nan], "float32")
    np.testing.assert_array_equal(k(a), a != a)
