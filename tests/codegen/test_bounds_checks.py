"""Indices read from data are checked by default; kernel-call errors name the real problem."""
import numpy as np
import pytest

import nimble
from nimble import te


def _gather(**kw):
    n, m, k = te.var("n"), te.var("m"), te.var("k")
    D = te.placeholder((n, m), "float32", name="D")
    I = te.placeholder((k,), "int64", name="I")
    out = te.compute((k, m), lambda i, j: D[I[i], j], name="out")
    return nimble.build(out, [D, I, out], name="gather", **kw)


@pytest.mark.parametrize("bad", [10, 12, 10**12, -1, -(2**62)])
def test_gather_with_an_index_outside_the_table_raises_out_of_range(bad):
    table = np.arange(20, dtype="float32").reshape(10, 2)
    with pytest.raises(nimble.OutOfRangeError, match="index read from data is outside D dimension 0"):
        _gather()(table, np.array([1, bad], "int64"))


def test_gather_in_range_matches_numpy_and_the_check_is_in_the_loop_ir():
    kern = _gather()
    table = np.arange(20, dtype="float32").reshape(10, 2)
    idx = np.array([0, 9, 3], "int64")
    np.testing.assert_array_equal(kern(table, idx), table[idx])
    assert "assert" in kern.ir()


def test_bounds_checks_false_drops_the_check():
    kern = _gather(bounds_checks=False)
    assert "assert" not in kern.ir()
    table = np.arange(20, dtype="float32").reshape(10, 2)
    np.testing.assert_array_equal(kern(table, np.array([2], "int64")), table[[2]])


def test_a_clamped_index_is_proved_in_range_and_costs_no_check():
    k = te.var("k")
    D = te.placeholder((10,), "float32", name="D")
    I = te.placeholder((k,), "int64", name="I")
    out = te.compute((k,), lambda i: D[te.min_(te.max_(I[i], 0), 9)], name="out")
    assert "assert" not in nimble.build(out, [D, I, out], name="clamped").ir()


def test_an_index_under_a_select_is_checked_only_where_taken():
    n, k = te.var("n"), te.var("k")
    D = te.placeholder((n,), "float32", name="D")
    I = te.placeholder((k,), "int64", name="I")
    out = te.compute((k,), lambda i: te.select(I[i] >= 0, D[I[i]], te.const(0.0, "float32")), name="out")
    kern = nimble.build(out, [D, I, out], name="guarded")
    np.testing.assert_array_equal(kern(np.ones(4, "float32"), np.array([-5, 1], "int64")), [0, 1])
    with pytest.raises(nimble.OutOfRangeError):
        kern(np.ones(4, "float32"), np.array([4], "int64"))


def test_a_wrong_static_dim_names_the_dim_not_a_missing_output():
    A = te.placeholder((3,), name="A")
    B = te.compute((3,), lambda i: A[i] + 1.0, name="B")
    kern = nimble.build(B, [A, B], name="stat")
    with pytest.raises(nimble.ShapeError, match="dimension 0 must be 3 = 3, got 4"):
        kern(np.ones(4, "float32"))


def test_a_contiguous_memmap_is_accepted(tmp_path):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    kern = nimble.build(B, [A, B], name="twice")
    mm = np.memmap(tmp_path / "a.bin", dtype="float32", mode="w+", shape=(5,))
    mm[:] = np.arange(5)
    np.testing.assert_array_equal(kern(mm), np.arange(5) * 2.0)
    out = np.memmap(tmp_path / "b.bin", dtype="float32", mode="w+", shape=(5,))
    kern(mm, out)
    np.testing.assert_array_equal(out, np.arange(5) * 2.0)


def test_an_equal_but_distinct_dtype_object_runs_the_kernel():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    kern = nimble.build(B, [A, B], name="plus")
    a = np.zeros(3, dtype=np.dtype("float32", metadata={"unit": "m"}))
    np.testing.assert_array_equal(kern(a), [1, 1, 1])


def test_an_output_too_large_for_int64_bytes_is_a_shape_error():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n, n, n, n), lambda i, j, k, l: A[i], name="B")
    kern = nimble.build(B, [A, B], name="huge")
    with pytest.raises((nimble.ShapeError, MemoryError)):
        kern(np.ones(2**16, "float32"))


def test_an_out_of_range_error_gives_the_sizes_of_the_dims_it_names():
    with pytest.raises(nimble.OutOfRangeError, match=r"expected 0 <= index < n\) \(here n = 10\)"):
        _gather()(np.zeros((10, 2), "float32"), np.array([12], "int64"))
