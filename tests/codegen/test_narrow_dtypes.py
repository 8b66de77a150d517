"""Narrow storage dtypes in te and the LLVM codegen: int8 / uint8 / int16 / uint16 / uint32 wrap like numpy (loads extend,
arithmetic and casts wrap, stores truncate); float16 loads extend to float32, computes there and rounds on store."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import te

INTS = ("int8", "uint8", "int16", "uint16", "uint32")
SIZES = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 67])
EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@functools.cache
def _int_kernel(dtype):
    n = te.var("n")
    a, b = te.placeholder((n,), dtype, name="a"), te.placeholder((n,), dtype, name="b")
    outs = [
        te.compute((n,), lambda i: a[i] + b[i], name="add"),
        te.compute((n,), lambda i: a[i] * b[i] - b[i], name="mul_sub"),
        te.compute((n,), lambda i: a[i] // te.select(te.eq(b[i], 0), te.const(1, dtype), b[i]), name="floordiv"),
        te.compute((n,), lambda i: te.cast("float32", a[i]), name="to_float"),
        te.compute((n,), lambda i: te.cast(dtype, te.cast("int32", a[i]) * 3 + 1000), name="wrap_cast"),
        te.compute((n,), lambda i: te.cast("int32", a[i] < b[i]), name="less"),
    ]
    return nimble.build(outs, [a, b] + outs, name=f"narrow_{dtype}")


@pytest.mark.parametrize("dtype", INTS)
@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_narrow_int_arithmetic_wraps_like_numpy(dtype, n, seed):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    a = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    b = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    got = _int_kernel(dtype)(a, b)
    with np.errstate(over="ignore"):
        safe = np.where(b == 0, np.array(1, dtype), b)
        want = [a + b, a * b - b, a // safe, a.astype(np.float32),
                (a.astype(np.int32) * 3 + 1000).astype(dtype), (a < b).astype(np.int32)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


@functools.cache
def _half_kernel():
    n = te.var("n")
    a, b = te.placeholder((n,), "float16", name="a"), te.placeholder((n,), "float16", name="b")
    outs = [
        te.compute((n,), lambda i: a[i] * b[i] + a[i], name="fma"),
        te.compute((n,), lambda i: te.cast("float16", te.cast("float32", a[i]) * 1e-3), name="round_cast"),
        te.compute((n,), lambda i: te.cast("float32", a[i]), name="widen"),
    ]
    return nimble.build(outs, [a, b] + outs, name="narrow_half")


@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_float16_computes_in_float32_and_rounds_on_store(n, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(n) * 10).astype(np.float16)
    b = (rng.standard_normal(n) * 10).astype(np.float16)
    fma, rounded, widened = _half_kernel()(a, b)
    exact = (a.astype(np.float32) * b.astype(np.float32) + a.astype(np.float32))
    assert fma.dtype == np.float16
    np.testing.assert_array_equal(fma, exact.astype(np.float16))  # one rounding, at the store
    np.testing.assert_array_equal(rounded, (a.astype(np.float32) * np.float32(1e-3)).astype(np.float16))
    np.testing.assert_array_equal(widened, a.astype(np.float32))


@functools.cache
def _uint64_kernel():
    n = te.var("n")
    a, b = te.placeholder((n,), "uint64", name="a"), te.placeholder((n,), "uint64", name="b")
    one = te.const(1, "uint64")
    outs = [
        te.compute((n,), lambda i: a[i] + b[i] * b[i] - a[i] // te.select(te.eq(b[i], 0), one, b[i]), name="arith"),
        te.compute((n,), lambda i: a[i] % te.select(te.eq(b[i], 0), one, b[i]), name="mod"),
        te.compute((n,), lambda i: te.cast("int32", a[i] < b[i]) * 4 + te.cast("int32", a[i] <= b[i]) * 2
                   + te.cast("int32", te.eq(a[i], b[i])), name="compare"),
        te.compute((n,), lambda i: te.min_(a[i], b[i]), name="min"),
        te.compute((n,), lambda i: te.max_(a[i], b[i]), name="max"),
        te.compute((n,), lambda i: te.cast("float64", a[i]), name="to_float"),
        te.compute((n,), lambda i: te.cast("int32", a[i]), name="to_int32"),
        te.compute((n,), lambda i: te.cast("uint64", te.cast("int64", b[i]) - 5), name="from_int64"),
    ]
    return nimble.build(outs, [a, b] + outs, name="wide_uint64")


@EXAMPLES
@given(n=SIZES, seed=st.integers(0, 2**16))
def test_uint64_compares_divides_and_casts_unsigned(n, seed):
    rng = np.random.default_rng(seed)
    pool = np.array([0, 1, 2, 7, 2**31, 2**32 + 3, 2**63 - 1, 2**63, 2**63 + 5, 2**64 - 1], np.uint64)
    a, b = rng.choice(pool, n), rng.choice(pool, n)
    got = _uint64_kernel()(a, b)
    with np.errstate(over="ignore"):
        safe = np.where(b == 0, np.uint64(1), b)
        want = [a + b * b - a // safe, a % safe,
                (a < b).astype(np.int32) * 4 + (a <= b).astype(np.int32) * 2 + (a == b).astype(np.int32),
                np.minimum(a, b), np.maximum(a, b), a.astype(np.float64), a.astype(np.int32),
                (b.astype(np.int64) - 5).astype(np.uint64)]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
