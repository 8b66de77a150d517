"""``Stage.reverse`` and the loop IR's ``For.reverse``: a loop that runs backwards under a run-time condition
(the lstm_cell template's odd steps). The order is observed through a hand-written kernel that numbers the
iterations as they run; te kernels must compute the same values in either order."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.codegen import num_threads, set_num_threads
from nimble.codegen.build import build_func
from nimble.te.expr import IntImm, Var
from nimble.te.schedule import ScheduleError
from nimble.tir import Buffer, For, Load, PrimFunc, Store, seq
from nimble.tir.lower import LowerError, lower


@pytest.fixture
def one_thread():
    saved = num_threads()
    set_num_threads(1)
    yield
    set_num_threads(saved)


def _numbering_func(kind: str) -> PrimFunc:
    """out[i] = how many iterations ran before iteration i; the loop runs backwards when flag is odd."""
    n = te.var("n")
    flag, out, count = Buffer("flag", "int64", ()), Buffer("out", "int64", (n,)), Buffer("count", "int64", (IntImm(1),))
    i, zero = Var("i"), IntImm(0)
    body = seq(Store(out, i, Load(count, zero)), Store(count, zero, Load(count, zero) + 1))
    backwards = te.eq(Load(flag, zero) % 2, te.const(1, "int64"))
    return PrimFunc(f"numbering_{kind}", (flag, out, count), (n,), For(i, zero, n, kind, body, backwards))


@pytest.mark.parametrize("kind", ["serial", "parallel"])
@pytest.mark.parametrize("n", [0, 1, 2, 7, 64])
def test_a_reversed_loop_runs_its_iterations_last_to_first_when_its_condition_holds(kind, n, one_thread):
    kernel = build_func(_numbering_func(kind), outputs=(1, 2))
    assert "backwards when" in str(_numbering_func(kind))
    for flag in (0, 1, 2, 3):
        out, count = np.full(n, -1, np.int64), np.zeros(1, np.int64)
        kernel(np.array(flag, np.int64), out, count)
        expected = np.arange(n)[::-1] if flag % 2 else np.arange(n)
        np.testing.assert_array_equal(out, expected, err_msg=f"flag {flag}")


def _reversed_blocks(par: bool):
    """B = A * 2 + t over (n, 5), rows in blocks of 3; the blocks run backwards on odd t."""
    n = te.var("n")
    A = te.placeholder((n, 5), name="A")
    t = te.placeholder((), name="t", dtype="int64")
    B = te.compute((n, 5), lambda i, j: A[i, j] * 2.0 + te.cast("float32", t[()]), name="B")
    s = te.create_schedule(B)
    io, _ = s[B].split(s[B].axis[0], 3)
    if par:
        s[B].parallel(io)
    s[B].reverse(io, when=te.eq(t[()] % 2, 1))
    return A, t, B, s


@pytest.mark.parametrize("par", [False, True], ids=["serial", "parallel"])
@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([0, 1, 2, 3, 5, 7, 13, 97, 1000]), t=st.integers(-3, 6))
def test_a_reversed_loop_computes_the_same_values(par, n, t):
    A, tt, B, s = _reversed_blocks(par)
    kernel = nimble.build(s, [A, tt, B], name=f"reversed_blocks_{par}")
    a = np.random.default_rng(n).standard_normal((n, 5)).astype(np.float32)
    np.testing.assert_array_equal(kernel(a, np.array(t, np.int64)), a * 2.0 + np.float32(t))


def test_the_loop_ir_names_the_condition():
    A, t, B, s = _reversed_blocks(False)
    text = str(lower(s, [A, t, B]))
    assert "backwards when ((t[0] % 2) == 1)" in text


def test_reverse_refuses_what_it_cannot_mean():
    n = te.var("n")
    A = te.placeholder((n, 8), name="A")
    t = te.placeholder((), name="t", dtype="int64")
    R = te.reduce_axis(8, "r")
    S = te.compute((n,), lambda i: te.sum(A[i, R], axis=R), name="S")
    s = te.create_schedule(S)
    (i,) = s[S].axis
    with pytest.raises(ScheduleError, match="reduction loop"):
        s[S].reverse(s[S].reduce_axis[0])
    with pytest.raises(ScheduleError, match="must not depend on the loops"):
        s[S].reverse(i, when=te.eq(i.var % 2, 1))
    with pytest.raises(ScheduleError, match="bool condition"):
        s[S].reverse(i, when=t[()])
    s[S].reverse(i)
    with pytest.raises(ScheduleError, match="runs backwards"):
        s[S].split(i, 2)
    with pytest.raises(ScheduleError, match="runs backwards"):
        s[S].vectorize(i)
    B = te.compute((n, 8), lambda a, b: A[a, b] + 1.0, name="B")
    s2 = te.create_schedule(B)
    a, b = s2[B].axis
    s2[B].vectorize(b)
    with pytest.raises(ScheduleError, match="only a serial or parallel loop"):
        s2[B].reverse(b)


def test_a_condition_that_reads_a_tensor_is_refused_at_lowering():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B)
    s[B].reverse(s[B].axis[0], when=A[0] > 0.0)
    with pytest.raises(LowerError, match="only shape variables and 0-d arguments"):
        nimble.build(s, [A, B], name="reverse_bad_condition")
