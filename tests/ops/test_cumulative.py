"""cumsum / cumprod (inclusive, exclusive, reversed) and the prod reduction through compiled kernels over run-time
lengths 0, 1, primes and large, against numpy."""
import functools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any

LENGTHS = st.sampled_from([0, 1, 2, 3, 7, 13, 31, 257])


@functools.lru_cache(maxsize=None)
def _vm(op, dtype, **attrs):
    x = ir.var("x", shape=(Any, Any), dtype=dtype)
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], getattr(nb, op)(x, **attrs)))
    return nimble.VirtualMachine(nimble.compile(mod))


def _numpy_cumulative(x, op, axis, exclusive, reverse):
    fn = np.cumsum if op == "cumsum" else np.cumprod
    y = np.flip(x, axis) if reverse else x
    out = fn(y, axis=axis, dtype=x.dtype)
    if exclusive:
        ident = np.ones_like if op == "cumprod" else np.zeros_like
        out = np.concatenate([ident(np.take(y, [0], axis=axis)), out], axis=axis).take(
            np.arange(x.shape[axis]), axis=axis) if x.shape[axis] else out
    return np.flip(out, axis) if reverse else out


@pytest.mark.parametrize("op,dtype", [("cumsum", "float32"), ("cumsum", "int32"), ("cumprod", "float64"),
                                      ("cumprod", "int64")])
@pytest.mark.parametrize("exclusive,reverse", [(False, False), (True, False), (False, True), (True, True)])
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_cumulative_matches_numpy(op, dtype, exclusive, reverse, data):
    n, m, axis = data.draw(LENGTHS), data.draw(st.sampled_from([1, 3])), data.draw(st.sampled_from([0, 1, -1]))
    shape = (n, m) if axis == 0 else (m, n)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = (rng.uniform(0.9, 1.1, shape) if op == "cumprod" else rng.uniform(-3, 3, shape)).astype(dtype)
    if dtype.startswith("int"):
        x = rng.integers(-2, 3, shape).astype(dtype)
    got = _vm(op, dtype, axis=axis, exclusive=exclusive, reverse=reverse).run(x)
    want = _numpy_cumulative(x, op, axis % 2, exclusive, reverse)
    assert got.shape == want.shape and got.dtype == want.dtype
    if dtype.startswith("float"):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["float32", "int64"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_prod_over_a_run_time_axis(dtype, data):
    n = data.draw(LENGTHS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.uniform(0.95, 1.05, (3, n)).astype(dtype) if dtype == "float32" else rng.integers(-1, 2, (3, n))
    x[0, : n // 2] = np.nan if dtype == "float32" and n > 3 else x[0, : n // 2]
    got = _vm("prod", dtype, axis=1).run(x)
    np.testing.assert_allclose(got, np.prod(x, axis=1), rtol=1e-4, equal_nan=True)


SCAN_DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int16", "int32", "uint32", "int64", "uint64"]
DIMS = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31, 101])


@functools.lru_cache(maxsize=None)
def _vm_rank(op, dtype, rank, axis, exclusive, reverse):
    x = ir.var("x", shape=(Any,) * rank, dtype=dtype)
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], getattr(nb, op)(x, axis=axis, exclusive=exclusive, reverse=reverse)))
    return nimble.VirtualMachine(nimble.compile(mod))


def _scan_values(rng, op, dtype, shape):
    if dtype.startswith("float"):
        x = rng.uniform(0.5, 1.5, shape) if op == "cumprod" else rng.uniform(-100, 100, shape)
        x[rng.random(shape) < 0.02] = np.nan
        x[rng.random(shape) < 0.02] = np.inf
        x[rng.random(shape) < 0.05] = -0.0
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -1000), min(info.max, 1000), shape, endpoint=True).astype(dtype)  # wraps


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
@pytest.mark.parametrize("dtype", SCAN_DTYPES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_cumulative_of_any_rank_axis_and_dtype_is_numpys_bit_for_bit(op, dtype, data):
    rank = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(DIMS) for _ in range(rank))
    axis = data.draw(st.integers(-rank, rank - 1))
    exclusive, reverse = data.draw(st.booleans()), data.draw(st.booleans())
    x = _scan_values(np.random.default_rng(data.draw(st.integers(0, 2**16))), op, dtype, shape)
    got = _vm_rank(op, dtype, rank, axis, exclusive, reverse).run(x)
    with np.errstate(all="ignore"):
        want = _numpy_cumulative(x, op, axis % rank, exclusive, reverse)
    assert got.shape == want.shape and got.dtype == want.dtype
    # the same operations in the same order as numpy's accumulate, each rounded to the dtype: equal bits (a NaN's
    # sign and payload are not numpy's contract: x86 keeps the first operand's, and a product's operands commute)
    nan = np.isnan(want) if want.dtype.kind == "f" else np.zeros(want.shape, bool)
    np.testing.assert_array_equal(np.isnan(got) if want.dtype.kind == "f" else nan, nan)
    np.testing.assert_array_equal(got[~nan].view(f"u{x.itemsize}"), want[~nan].view(f"u{x.itemsize}"))


@pytest.mark.parametrize("op", ["cumsum", "cumprod"])
def test_cumulative_along_an_axis_of_100000_takes_well_under_a_second(op):
    n = 100_000
    x = np.random.default_rng(0).uniform(0.99999, 1.00001, (2, n)).astype(np.float32)
    vm = _vm_rank(op, "float32", 2, 1, False, False)
    vm.run(x[:, :10])
    start = time.perf_counter()
    got = vm.run(x)
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(got, getattr(np, op)(x, axis=1, dtype=np.float32))
    assert elapsed < 1.5, f"{op} of (2, {n}) took {elapsed:.3f} s"  # O(n^2) took ~10 s; O(n) takes ~1 ms
