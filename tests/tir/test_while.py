"""The loop IR's While statement (hand-written kernels: schedules/topk.py) through the printer, the LLVM codegen and
``build_func``, against numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.codegen.build import build_func
from nimble.te.expr import IntImm, Var
from nimble.tir import Allocate, Buffer, For, LetStmt, Load, PrimFunc, Store, While, seq


def _bit_length_func() -> PrimFunc:
    """out[i] = the number of halvings that bring x[i] (>= 0) to 0 (Python's int.bit_length)."""
    n = te.var("n")
    x, out = Buffer("x", "int64", (n,)), Buffer("out", "int64", (n,))
    state = Buffer("state", "int64", (2,), "local")  # [value, count]
    i = Var("i")
    zero, one = IntImm(0), IntImm(1)
    halve = seq(Store(state, zero, Load(state, zero) // 2), Store(state, one, Load(state, one) + 1))
    body = For(i, zero, n, "parallel", Allocate(state, IntImm(2), seq(
        Store(state, zero, Load(x, i)), Store(state, one, zero),
        While(zero < Load(state, zero), halve), Store(out, i, Load(state, one)))))
    return PrimFunc("bit_length", (x, out), (n,), body)


def test_while_prints_as_a_while_loop():
    text = str(_bit_length_func())
    assert "while (0 < state[0]):" in text


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 2**62), max_size=40))
def test_while_runs_until_its_condition_fails(values):
    kernel = build_func(_bit_length_func(), outputs=(1,))
    x = np.array(values, np.int64)
    np.testing.assert_array_equal(kernel(x), [v.bit_length() for v in values])


def test_build_func_rejects_outputs_that_are_not_parameters():
    with pytest.raises(nimble.NimbleError, match="outputs"):
        build_func(_bit_length_func(), outputs=(2,))
