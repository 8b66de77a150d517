"""Trigonometric functions, round and the integer bit operators through compiled kernels (one per op and dtype, a
run-time length) against numpy: lengths 0, 1, primes and large; NaN, infinities, signed zeros, halfway points for
round, shift amounts at and past the bit width (numpy's 0, or -1 for a negative value shifted right)."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any

LENGTHS = st.sampled_from([0, 1, 2, 3, 7, 13, 31, 1021])
SETTINGS = settings(max_examples=8, deadline=None)
TRIG = {"sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
        "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh}
EDGES = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1e-30, 1e30, 100.0, -100.0, 2.0]


@functools.lru_cache(maxsize=None)
def _vm(op, dtype, arity=1):
    args = [ir.var(name, shape=(Any,), dtype=dtype) for name in "ab"[:arity]]
    mod = ir.IRModule()
    mod.define("main", ir.Function(args, getattr(nb, op)(*args)))
    return nimble.VirtualMachine(nimble.compile(mod))


def _floats(draw, n, dtype, edges=EDGES):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.uniform(-4, 4, n).astype(dtype)
    pick = rng.random(n) < 0.3
    x[pick] = rng.choice(np.array(edges, dtype), int(pick.sum()))
    return x


@pytest.mark.parametrize("op", sorted(TRIG))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@SETTINGS
@given(data=st.data())
def test_trig_matches_numpy_with_nan_and_infinities(op, dtype, data):
    x = _floats(data.draw, data.draw(LENGTHS), dtype)
    with np.errstate(all="ignore"):
        want = TRIG[op](x.astype(np.float64))
        want_as_dtype = want.astype(dtype)  # (sinh, cosh: beyond float32's range, inf)
    got = _vm(op, dtype).run(x)
    assert got.shape == x.shape and got.dtype == x.dtype
    finite = np.isfinite(want_as_dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want_as_dtype))
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6 if dtype == "float32" else 1e-12, atol=1e-30)
    np.testing.assert_array_equal(got[~finite], want_as_dtype[~finite])


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@SETTINGS
@given(data=st.data())
def test_round_takes_halfway_cases_to_even_and_keeps_signed_zero(dtype, data):
    big = 2.0**52 + 1 if dtype == "float64" else 1e4
    halves = [k + 0.5 for k in range(-6, 6)] + [-0.0, np.nan, np.inf, -np.inf, big]
    x = _floats(data.draw, data.draw(LENGTHS), dtype, halves)
    got = _vm("round", dtype).run(x)
    want = np.rint(x)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_round_of_the_largest_value_below_a_half_stays_down():
    x = np.array([np.nextafter(np.float32(0.5), 0), np.nextafter(np.float32(2.5), 3), 2.5], np.float32)
    np.testing.assert_array_equal(_vm("round", "float32").run(x), [0.0, 3.0, 2.0])


INT_DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int32", "int64"]


def _ints(rng, n, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(int(info.min), int(info.max), n, dtype=dtype, endpoint=True)
    return x


@pytest.mark.parametrize("op", ["left_shift", "right_shift"])
@pytest.mark.parametrize("dtype", INT_DTYPES)
@SETTINGS
@given(data=st.data())
def test_shift_amounts_at_and_past_the_bit_width(op, dtype, data):
    n = data.draw(LENGTHS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    bits = np.iinfo(dtype).bits
    x = _ints(rng, n, dtype)
    amounts = rng.integers(0, bits + 3, n).astype(dtype)  # bits, bits + 1, bits + 2 included
    if np.iinfo(dtype).min < 0:
        amounts[rng.random(n) < 0.1] = -1
    want = getattr(np, op)(x, amounts)
    np.testing.assert_array_equal(_vm(op, dtype, 2).run(x, amounts), want)


@pytest.mark.parametrize("op", ["bitwise_and", "bitwise_or", "bitwise_xor"])
@pytest.mark.parametrize("dtype", INT_DTYPES)
@SETTINGS
@given(data=st.data())
def test_bitwise_binary_matches_numpy(op, dtype, data):
    n = data.draw(LENGTHS)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x, y = _ints(rng, n, dtype), _ints(rng, n, dtype)
    np.testing.assert_array_equal(_vm(op, dtype, 2).run(x, y), getattr(np, op)(x, y))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@SETTINGS
@given(data=st.data())
def test_bitwise_not_wraps_to_the_dtype(dtype, data):
    x = _ints(np.random.default_rng(data.draw(st.integers(0, 2**16))), data.draw(LENGTHS), dtype)
    np.testing.assert_array_equal(_vm("bitwise_not", dtype).run(x), np.invert(x))


def test_bit_operators_refuse_floats_and_trig_refuses_ints():
    x = ir.var("x", shape=(3,), dtype="float32")
    i = ir.var("i", shape=(3,), dtype="int32")
    mod = ir.IRModule()
    with pytest.raises(nimble.TypeError, match="bitwise_and"):
        mod.define("main", ir.Function([x], nb.bitwise_and(x, x)))
        nimble.compile(mod)
    mod = ir.IRModule()
    with pytest.raises(nimble.TypeError, match="cos"):
        mod.define("main", ir.Function([i], nb.cos(i)))
        nimble.compile(mod)
