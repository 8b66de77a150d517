"""Bad arguments raise a clear exception naming the argument before any generated code runs."""
import numpy as np
import pytest

import nimble
from nimble import te


@pytest.fixture(scope="module")
def add():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    B = te.placeholder((n, m), name="B")
    C = te.compute((n, m), lambda i, j: A[i, j] + B[i, j], name="C")
    return nimble.build(C, [A, B, C], name="add")


def arr(*shape, dtype="float32"):
    return np.ones(shape, dtype=dtype)


def test_wrong_dtype_names_argument_and_dtypes(add):
    with pytest.raises(nimble.TypeError, match=r"'B' \(#1\): expected dtype float32, got float64"):
        add(arr(2, 3), arr(2, 3, dtype="float64"))


def test_wrong_rank(add):
    with pytest.raises(nimble.ShapeError, match=r"'A' \(#0\): expected rank 2, got rank 1"):
        add(arr(6), arr(2, 3))


def test_disagreeing_symbolic_dims(add):
    with pytest.raises(nimble.ShapeError, match=r"'B' \(#1\): dimension 0 is n = 4, but argument 'A' dimension 0 set n = 2"):
        add(arr(2, 3), arr(4, 3))


def test_non_contiguous_array(add):
    with pytest.raises(nimble.ShapeError, match="C-contiguous"):
        add(arr(3, 4).T, arr(4, 3))


def test_not_an_array(add):
    with pytest.raises(nimble.TypeError, match="numpy.ndarray, got list"):
        add([[1.0]], arr(1, 1))


def test_wrong_argument_count(add):
    with pytest.raises(nimble.TypeError, match="expected 2 input arrays"):
        add(arr(1, 1))


def test_output_of_wrong_shape(add):
    with pytest.raises(nimble.ShapeError, match=r"'C' \(#2\): dimension 0 is n = 3"):
        add(arr(2, 2), arr(2, 2), arr(3, 2))


def test_output_aliasing_an_input(add):
    a = arr(2, 2)
    with pytest.raises(nimble.ShapeError, match="overlaps"):
        add(a, arr(2, 2), a)


def test_read_only_output(add):
    out = arr(2, 2)
    out.flags.writeable = False
    with pytest.raises(nimble.ShapeError, match="read-only"):
        add(arr(2, 2), arr(2, 2), out)


def test_zero_sized_inputs_give_empty_results(add):
    assert add(arr(0, 5), arr(0, 5)).shape == (0, 5)
    assert add(arr(4, 0), arr(4, 0)).shape == (4, 0)


def test_destination_passing_writes_into_given_output(add):
    out = np.zeros((2, 3), "float32")
    assert add(arr(2, 3), arr(2, 3), out) is None
    np.testing.assert_array_equal(out, 2.0)


def test_derived_dim_checked():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n + 1,), lambda i: te.select(i < n, A[te.min_(i, n - 1)], 0.0), name="B")
    k = nimble.build(B, [A, B], name="pad1")
    np.testing.assert_array_equal(k(np.ones(3, "float32")), [1, 1, 1, 0])
    with pytest.raises(nimble.ShapeError, match=r"dimension 0 must be \(n \+ 1\) = 4, got 3"):
        k(np.ones(3, "float32"), np.ones(3, "float32"))


def test_unbindable_symbolic_dim_is_rejected_at_build():
    n = te.var("n")
    A = te.placeholder((n * 2,), name="A")
    B = te.compute((n * 2,), lambda i: A[i] + 1.0, name="B")
    with pytest.raises(nimble.ShapeError, match="no argument has as a plain dimension"):
        nimble.build(B, [A, B], name="twice")


def test_dim_bound_only_by_an_output_needs_the_output():
    n = te.var("n")
    A = te.placeholder((n * 2,), name="A")
    B = te.compute((n,), lambda i: A[i * 2], name="B")
    k = nimble.build(B, [A, B], name="evens")
    out = np.empty(3, "float32")
    k(np.arange(6, dtype="float32"), out)
    np.testing.assert_array_equal(out, [0, 2, 4])
    with pytest.raises(nimble.ShapeError, match="no input binds"):
        k(np.arange(6, dtype="float32"))
    with pytest.raises(nimble.ShapeError, match=r"must be \(n \* 2\) = 6, got 5"):
        k(np.arange(5, dtype="float32"), out)


def test_unknown_target_and_bad_name():
    A = te.placeholder((3,), name="A")
    B = te.compute((3,), lambda i: A[i], name="B")
    with pytest.raises(nimble.NimbleError, match="target"):
        nimble.build(B, [A, B], target="opencl")
    with pytest.raises(nimble.NimbleError, match="identifier"):
        nimble.build(B, [A, B], name="my kernel")


def test_placeholder_missing_from_args():
    A = te.placeholder((3,), name="A")
    B = te.compute((3,), lambda i: A[i], name="B")
    with pytest.raises(nimble.NimbleError, match="placeholder A"):
        nimble.build(B, [B], name="missing")


def test_value_checks_raise_out_of_range_instead_of_reading_outside():
    n, v = te.var("n"), te.var("v")
    idx = te.placeholder((n,), "int64", name="idx")
    W = te.placeholder((v, 8), name="W")
    O = te.compute((n, 8), lambda i, j: W[te.min_(te.max_(idx[i], 0), v - 1), j], name="O",
                   checks=lambda i, j: [(te.all_(idx[i] >= 0, idx[i] < v), "an index is outside the table")])
    k = nimble.build(O, [idx, W, O], name="gather")
    w = np.arange(80, dtype="float32").reshape(10, 8)
    np.testing.assert_array_equal(k(np.array([3, 0, 9]), w), w[[3, 0, 9]])
    with pytest.raises(nimble.OutOfRangeError, match="outside the table"):
        k(np.array([3, 10]), w)
    with pytest.raises(nimble.OutOfRangeError):
        k(np.array([-1]), w)


def test_generated_entry_checks_shapes_itself(add):
    """The kernel's own entry rejects arrays that disagree with the shape variables it is given,
    so a caller that skips the Python checks (the VM) still cannot make it read out of bounds."""
    from nimble.codegen.llvm import SHAPE_STATUS

    cfunc = add.general.cfunc
    a, b, c = arr(2, 3), arr(2, 3), arr(2, 3)
    assert cfunc(a, b, c, 2, 3, 1) == 0
    assert cfunc(a, arr(1, 3), c, 2, 3, 1) == SHAPE_STATUS + 1
    assert cfunc(a, b, arr(6), 2, 3, 1) == SHAPE_STATUS + 2
    assert cfunc(a, b, c, 4, 3, 1) == SHAPE_STATUS + 0
