"""numpy broadcasting over symbolic dims: a dim unknown at compile time that is 1 at run time broadcasts
(read with stride 0), as numpy and ONNX Runtime do; dims that are neither 1 nor equal raise a nimble error
naming the arguments, never a wrong answer. (Exports such as T5's position bias meet this: a (?, ...) mask
whose ? is 1 beside a tensor of 4 heads.)"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import ops as nb
from nimble.ir import Any
from nimble.ir.builder import const, var
from nimble.ir.expr import Function
from nimble.ir.module import IRModule

SIZES = st.sampled_from([0, 1, 2, 3, 7, 13, 64, 1001])


def _compile(params, body):
    return nimble.VirtualMachine(nimble.compile(IRModule({"main": Function(params, body)})))


@pytest.fixture(scope="module")
def vectors():
    x, y = var("x", shape=(Any,)), var("y", shape=(Any,))
    return _compile([x, y], nb.multiply(nb.add(x, y), y))


@pytest.fixture(scope="module")
def rows():
    x, y = var("x", shape=(Any, Any)), var("y", shape=(Any, 5))
    return _compile([x, y], nb.subtract(x, y))


@pytest.fixture(scope="module")
def masked():
    cond, x = var("cond", shape=(Any, Any, Any), dtype="bool"), var("x", shape=(2, Any, Any))
    return _compile([cond, x], nb.where(cond, x, const(np.float32(-1.0))))


def _expect(fn, *arrays):
    """numpy's result, or why it raises. numpy broadcasts a 0 with a 1 to 0; nimble refuses a symbolic 0 beside
    a symbolic 1 (its output dim is the max of the dims) with a clear error: the tests expect that error."""
    try:
        return fn(*arrays), None
    except ValueError:
        return None, "incompatible"


@settings(max_examples=40, deadline=None)
@given(n=SIZES, m=SIZES)
def test_symbolic_vectors_broadcast_as_numpy(vectors, n, m):
    rng = np.random.default_rng(n * 1009 + m)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(m).astype(np.float32)
    want, why = _expect(lambda a, b: (a + b) * b, x, y)
    if why or (n != m and {n, m} == {0, 1}):
        with pytest.raises(nimble.NimbleError, match="1 or the same size|broadcast"):
            vectors.run(x, y)
    else:
        np.testing.assert_allclose(vectors.run(x, y), want, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(a=SIZES, b=st.sampled_from([1, 5, 3]), c=SIZES)
def test_a_symbolic_one_broadcasts_on_either_side(rows, a, b, c):
    rng = np.random.default_rng(a * 31 + b * 7 + c)
    x, y = rng.standard_normal((a, b)).astype(np.float32), rng.standard_normal((c, 5)).astype(np.float32)
    want, why = _expect(np.subtract, x, y)
    if why or (a != c and {a, c} == {0, 1}):
        with pytest.raises(nimble.NimbleError):
            rows.run(x, y)
    else:
        got = rows.run(x, y)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("cond_shape,x_shape", [((1, 1, 8), (2, 4, 8)), ((2, 4, 8), (2, 1, 8)), ((1, 4, 1), (2, 4, 8)),
                                                ((2, 1, 1), (2, 3, 3)), ((1, 1, 1), (2, 1, 1))])
def test_where_broadcasts_a_run_time_one_in_the_condition_and_the_values(masked, cond_shape, x_shape):
    rng = np.random.default_rng(0)
    cond = rng.random(cond_shape) > 0.5
    x = rng.standard_normal(x_shape).astype(np.float32)
    np.testing.assert_array_equal(masked.run(cond, x), np.where(cond, x, np.float32(-1.0)))


def test_sizes_that_are_neither_one_nor_equal_name_both_arguments(rows):
    with pytest.raises(nimble.NimbleError) as info:
        rows.run(np.ones((3, 5), np.float32), np.ones((4, 5), np.float32))
    text = str(info.value)
    assert "(= 3)" in text and "(= 4)" in text and "1 or the same size" in text


@pytest.fixture(scope="module")
def nonzero_vm():
    x = var("x", shape=(3, Any), dtype="int64")
    return _compile([x], nb.nonzero(x))


@settings(max_examples=25, deadline=None)
@given(cols=SIZES, density=st.sampled_from([0.0, 0.3, 1.0]))
def test_nonzero_returns_exactly_the_non_zero_coordinates(nonzero_vm, cols, density):
    """(rank, count) as numpy, not a (rank, size) buffer padded with -1."""
    x = (np.random.default_rng(cols).random((3, cols)) < density).astype(np.int64)
    got = nonzero_vm.run(x)
    np.testing.assert_array_equal(got, np.array(np.nonzero(x)))
