"""Every schedule primitive keeps results exact on symbolic extents that its factors do not divide."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.te.schedule import ScheduleError

NS = [0, 1, 2, 5, 13, 31, 97, 131]
rng = np.random.default_rng(1)


def ew():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    B = te.compute((n, m), lambda i, j: A[i, j] * A[i, j] + 1.0, name="B")
    return A, B, te.create_schedule(B)


def rowsum():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis(m, "k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")
    return A, B, te.create_schedule(B)


def sched_split(s, B):
    i, j = s[B].axis
    s[B].split(i, 4)
    s[B].split(j, nparts=3)


def sched_tile(s, B):
    i, j = s[B].axis
    s[B].tile(i, j, 3, 8)


def sched_fuse(s, B):
    i, j = s[B].axis
    f = s[B].fuse(i, j)
    s[B].split(f, 7)


def sched_reorder(s, B):
    i, j = s[B].axis
    s[B].reorder(j, i)


def sched_vectorize(s, B):
    i, j = s[B].axis
    jo, ji = s[B].split(j, 16)
    s[B].vectorize(ji)


def sched_vectorize_symbolic(s, B):
    i, j = s[B].axis
    s[B].vectorize(j)


def sched_unroll(s, B):
    i, j = s[B].axis
    jo, ji = s[B].split(j, 5)
    s[B].unroll(ji)


def sched_parallel(s, B):
    i, j = s[B].axis
    io, ii = s[B].split(i, 2)
    s[B].parallel(io)


def sched_fused_parallel_vector(s, B):
    i, j = s[B].axis
    jo, ji = s[B].split(j, 8)
    f = s[B].fuse(i, jo)
    s[B].parallel(f)
    s[B].vectorize(ji)


EW_SCHEDULES = [sched_split, sched_tile, sched_fuse, sched_reorder, sched_vectorize, sched_vectorize_symbolic,
                sched_unroll, sched_parallel, sched_fused_parallel_vector]


@pytest.mark.parametrize("schedule", EW_SCHEDULES, ids=lambda f: f.__name__)
def test_elementwise_primitive(schedule):
    A, B, s = ew()
    schedule(s, B)
    k = nimble.build(s, [A, B], name=schedule.__name__)
    for n in NS:
        for m in (1, 17, 33):
            a = rng.standard_normal((n, m)).astype("float32")
            np.testing.assert_allclose(k(a), a * a + 1.0, rtol=1e-6, atol=1e-6)


def red_split_reduce(s, B):
    (k,) = s[B].reduce_axis
    ko, ki = s[B].split(k, 8)
    s[B].unroll(ki)


def red_reorder(s, B):
    (i,) = s[B].axis
    (k,) = s[B].reduce_axis
    io, ii = s[B].split(i, 4)
    ko, ki = s[B].split(k, 3)
    s[B].reorder(io, ko, ii, ki)


def red_parallel(s, B):
    (i,) = s[B].axis
    s[B].parallel(i)


def red_cache_write(s, B):
    BL = s.cache_write(B)
    (i,) = s[B].axis
    io, ii = s[B].split(i, 8)
    s[BL].compute_at(s[B], io)
    (bi,) = s[BL].axis
    (bk,) = s[BL].reduce_axis
    s[BL].reorder(bk, bi)
    s[BL].vectorize(bi)


@pytest.mark.parametrize("schedule", [red_split_reduce, red_reorder, red_parallel, red_cache_write],
                         ids=lambda f: f.__name__)
def test_reduction_primitive(schedule):
    A, B, s = rowsum()
    schedule(s, B)
    k = nimble.build(s, [A, B], name=schedule.__name__)
    for n in NS:
        for m in (0, 1, 10, 29):
            a = rng.standard_normal((n, m)).astype("float32")
            np.testing.assert_allclose(k(a), a.sum(axis=1), rtol=1e-5, atol=1e-5)


def chain():
    n = te.var("n")
    A = te.placeholder((n, 24), name="A")
    T = te.compute((n, 24), lambda i, j: A[i, j] * 3.0, name="T")
    U = te.compute((n, 24), lambda i, j: T[i, j] + 1.0, name="U")
    return A, T, U, te.create_schedule(U)


def test_compute_inline():
    A, T, U, s = chain()
    s[T].compute_inline()
    k = nimble.build(s, [A, U], name="inlined")
    assert "T[" not in k.ir()
    for n in NS:
        a = rng.standard_normal((n, 24)).astype("float32")
        np.testing.assert_allclose(k(a), a * 3.0 + 1.0, rtol=1e-6, atol=1e-6)


def test_compute_at_computes_only_the_needed_tile():
    A, T, U, s = chain()
    i, j = s[U].axis
    io, ii = s[U].split(i, 5)
    s[T].compute_at(s[U], io)
    k = nimble.build(s, [A, U], name="computed_at")
    assert "T = alloc float32[120]" in k.ir()  # a 5 x 24 tile, not n x 24
    for n in NS:
        a = rng.standard_normal((n, 24)).astype("float32")
        np.testing.assert_allclose(k(a), a * 3.0 + 1.0, rtol=1e-6, atol=1e-6)


def test_intermediate_at_root_gets_a_heap_buffer():
    A, T, U, s = chain()
    k = nimble.build(s, [A, U], name="root_intermediate")
    assert "T = alloc float32[(n * 24)]  # global" in k.ir()
    a = rng.standard_normal((300, 24)).astype("float32")
    np.testing.assert_allclose(k(a), a * 3.0 + 1.0, rtol=1e-6, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([0, 1, 3, 7, 20, 61]))
def test_any_split_factors(f1, f2, n):
    A, B, s = ew()
    i, j = s[B].axis
    io, ii = s[B].split(i, f1)
    jo, ji = s[B].split(j, f2)
    s[B].reorder(jo, io, ji, ii)
    k = nimble.build(s, [A, B], name=f"split_{f1}_{f2}")
    a = rng.standard_normal((n, 11)).astype("float32")
    np.testing.assert_allclose(k(a), a * a + 1.0, rtol=1e-6, atol=1e-6)


def test_residue_variant_is_picked_when_n_is_a_multiple():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = te.create_schedule(B)
    io, ii = s[B].split(s[B].axis[0], 8)
    s[B].vectorize(ii)
    k = nimble.build(s, [A, B], name="residue", residues=[{n: 8}])
    assert "if " not in str(k.variants[0][1].func)  # no tail, no guard
    for size in range(0, 40):
        a = rng.standard_normal(size).astype("float32")
        np.testing.assert_array_equal(k(a), a * 2.0)
    assert k.variant_calls == [5, 35]  # 0, 8, 16, 24, 32 took the variant


def test_nested_compute_at_reads_the_right_rows():
    n, m = te.var("n"), te.var("m")
    x = te.placeholder((n, m), name="x")
    k = te.reduce_axis(m, "k")
    rmax = te.compute((n,), lambda i: te.max(x[i, k], axis=k), name="rmax")
    mx = te.compute((n,), lambda i: rmax[i] + 0.0, name="mx")
    out = te.compute((n, m), lambda i, j: x[i, j] - mx[i], name="out")
    s = te.create_schedule(out)
    io, ii = s[out].split(s[out].axis[0], 2)
    s[mx].compute_at(s[out], io)
    s[rmax].compute_at(s[mx], s[mx].axis[0])
    kern = nimble.build(s, [x, out], name="nested_at")
    for size in (1, 2, 5):
        a = rng.standard_normal((size, 3)).astype("float32")
        np.testing.assert_allclose(kern(a), a - a.max(axis=1, keepdims=True), rtol=1e-6)


def test_integer_abs():
    n = te.var("n")
    A = te.placeholder((n,), "int32", name="A")
    B = te.compute((n,), lambda i: te.abs_(A[i]), name="B")
    k = nimble.build(B, [A, B], name="iabs")
    a = np.arange(-5, 5, dtype="int32")
    np.testing.assert_array_equal(k(a), np.abs(a))


def split_rowsum():
    """Row sums of (n, m) with the reduction split by 16: (A, B, schedule, outer reduction loop, m)."""
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis(m, "k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = te.create_schedule(B)
    ko, ki = s[B].split(s[B].reduce_axis[0], 16)
    return A, B, s, ko, m


def prefetched_rowsum(par: bool):
    """Row sums of (n, m) with the reduction split by 16 and the next rows' data prefetched."""
    A, B, s, ko, _ = split_rowsum()
    if par:
        s[B].parallel(s[B].axis[0])
    s[B].prefetch(A, ko, 3)
    return A, B, s


@pytest.mark.parametrize("par", [False, True], ids=["serial", "parallel"])
def test_prefetch_is_a_hint_that_never_changes_results(par):
    A, B, s = prefetched_rowsum(par)
    k = nimble.build(s, [A, B], name=f"prefetch_{par}")
    # three 16-element steps ahead of the step the loop starts; the 16 floats span one 64-byte line
    assert "prefetch A[(((i * m) + (k.o * 16)) + 48)]" in k.ir()
    assert "llvm.prefetch" in k.llvm_ir()
    for n in NS:
        for m in (0, 1, 10, 29, 300):  # prefetches run past the end of the last row: allowed
            a = rng.standard_normal((n, m)).astype("float32")
            np.testing.assert_allclose(k(a), a.sum(axis=1), rtol=1e-5, atol=1e-5)


def test_prefetch_covers_every_line_of_a_contiguous_span():
    n = te.var("n")
    A = te.placeholder((n, 48), name="A")
    B = te.compute((n, 48), lambda i, j: A[i, j] + 1.0, name="B")
    s = te.create_schedule(B)
    i, j = s[B].axis
    s[B].vectorize(j)
    s[B].prefetch(A, i, 2)
    k = nimble.build(s, [A, B], name="prefetch_lines")
    assert "prefetch A[((i * 48) + 96)]  # 3 lines" in k.ir()  # 48 floats = 192 bytes
    a = rng.standard_normal((7, 48)).astype("float32")
    np.testing.assert_allclose(k(a), a + 1.0)


def test_prefetch_rejects_what_it_cannot_mean():
    A, B, s = rowsum()
    (i,) = s[B].axis
    C = te.placeholder((4,), name="C")
    with pytest.raises(ScheduleError, match="positive number of iterations"):
        s[B].prefetch(A, i, 0)
    with pytest.raises(ScheduleError, match="does not read C"):
        s[B].prefetch(C, i, 1)
    A2, B2, s2 = ew()
    i2, j2 = s2[B2].axis
    s2[B2].vectorize(j2)
    with pytest.raises(ScheduleError, match="vectorized"):
        s2[B2].prefetch(A2, j2, 1)


def test_prefetch_index_fetches_an_explicit_address_under_a_condition_into_l2():
    A, B, s, ko, m = split_rowsum()
    # the next row's matching line, fetched only while rows are long enough to need it
    s[B].prefetch_index(A, ko, lambda i, k: (i + 1) * m + k, lines=2, level=2, when=lambda i, k: m >= 64)
    s[B].prefetch(A, ko, 1, level=1)
    kern = nimble.build(s, [A, B], name="prefetch_index")
    assert "if (64 <= m):" in kern.ir() and "prefetch to L2 A[(((i + 1) * m) + (k.o * 16))]  # 2 lines" in kern.ir()
    assert "i32 0, i32 2, i32 1)" in kern.llvm_ir() and "i32 0, i32 3, i32 1)" in kern.llvm_ir()  # L2 and L1
    for rows in NS:
        for cols in (0, 1, 63, 64, 300):  # the last row's prefetch runs past the end: allowed
            a = rng.standard_normal((rows, cols)).astype("float32")
            np.testing.assert_allclose(kern(a), a.sum(axis=1, dtype=np.float64), rtol=1e-4, atol=1e-4)


def test_prefetch_index_rejects_what_it_cannot_mean():
    A, B, s = rowsum()
    (i,) = s[B].axis
    C = te.placeholder((4,), name="C")
    with pytest.raises(ScheduleError, match="lines must be an int in 1..64"):
        s[B].prefetch_index(A, i, lambda *v: 0, lines=0)
    with pytest.raises(ScheduleError, match="level must be 1"):
        s[B].prefetch_index(A, i, lambda *v: 0, level=3)
    with pytest.raises(ScheduleError, match="level must be 1"):
        s[B].prefetch(A, i, 1, level=0)
    with pytest.raises(ScheduleError, match="must be functions"):
        s[B].prefetch_index(A, i, 5)
    with pytest.raises(ScheduleError, match="does not read C"):
        s[B].prefetch_index(C, i, lambda *v: 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2 ** 40), 2 ** 40), min_size=0, max_size=40),
       st.sampled_from([1, 2, 3, 4, 7, 8, 64, 1024, 1 << 20]), st.sampled_from(["int64", "int32"]))
def test_floor_division_and_modulo_by_a_constant_match_numpy(values, d, dtype):
    """Powers of two compile to a shift and a mask: exact for negative values too."""
    a = np.array(values, "int64").astype(dtype)
    n = te.var("n")
    A = te.placeholder((n,), dtype, name="A")
    Q = te.compute((n,), lambda i: A[i] // d, name="Q")
    R = te.compute((n,), lambda i: A[i] % d, name="R")
    q = nimble.build(Q, [A, Q], name=f"fdiv_{dtype}_{d}")
    r = nimble.build(R, [A, R], name=f"fmod_{dtype}_{d}")
    np.testing.assert_array_equal(q(a), a // d)
    np.testing.assert_array_equal(r(a), a % d)
