import pytest

from nimble import te
from nimble.te.schedule import ScheduleError


def make():
    n = te.var("n")
    A = te.placeholder((n, 16), name="A")
    k = te.reduce_axis(16, "k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")
    return A, B, te.create_schedule(B)


def test_split_replaces_the_loop_by_outer_and_inner():
    A, B, s = make()
    (i,) = s[B].axis
    io, ii = s[B].split(i, factor=8)
    assert s[B].leaf_iter_vars[:2] == [io, ii]
    assert str(io.extent) == "((n + 7) // 8)"


def test_split_by_nparts():
    A, B, s = make()
    (i,) = s[B].axis
    io, ii = s[B].split(i, nparts=4)
    assert str(io.extent) == "4"
    assert str(ii.extent) == "((n + 3) // 4)"


def test_primitives_reject_foreign_or_used_loops():
    A, B, s = make()
    (i,) = s[B].axis
    s[B].split(i, 4)
    with pytest.raises(ScheduleError, match="not a current loop"):
        s[B].split(i, 2)
    with pytest.raises(ScheduleError, match="exactly one"):
        s[B].split(s[B].leaf_iter_vars[0])
    with pytest.raises(ScheduleError, match="reduction"):
        s[B].parallel(s[B].reduce_axis[0])
    with pytest.raises(ScheduleError, match="inlined"):
        s[B].compute_inline()


def test_fuse_needs_adjacent_loops():
    n = te.var("n")
    A = te.placeholder((n, 3, 5), name="A")
    B = te.compute((n, 3, 5), lambda i, j, k: A[i, j, k] + 1.0, name="B")
    s = te.create_schedule(B)
    i, j, k = s[B].axis
    with pytest.raises(ScheduleError, match="immediately enclose"):
        s[B].fuse(i, k)
    f = s[B].fuse(j, k)
    assert str(f.extent) == "15"


def test_placeholder_has_no_stage():
    A, B, s = make()
    with pytest.raises(ScheduleError, match="placeholder"):
        s[A]
