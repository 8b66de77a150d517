"""A stage that computes row indices must store them whatever its checks say: a failed check skips the store it
guards, and a later stage reading the unwritten index as an address would read outside its buffer (a crash, or
a silent wrong answer). The take and lstm_cell templates compute such rows; their checks either guard the
reading stage (take) or, reading only a 0-d argument (lstm_cell's step), run once before every loop."""
import numpy as np
import pytest

import nimble
from nimble.schedules.lstm_cell import lstm_cell_signature
from nimble.schedules.registry import get_template
from nimble.schedules.take import take_signature
from nimble.tir.lower import lower
from nimble.tir.nodes import Allocate, Assert, For, IfThenElse, LetStmt, Seq, Store, While


def _stores_under_assert(stmt, buffer_name: str, under: bool = False) -> list:
    """For each store into ``buffer_name``: whether it is nested in an Assert."""
    if isinstance(stmt, Store):
        return [under] if stmt.buffer.name == buffer_name else []
    if isinstance(stmt, Assert):
        return _stores_under_assert(stmt.body, buffer_name, True)
    if isinstance(stmt, Seq):
        return [x for s in stmt.stmts for x in _stores_under_assert(s, buffer_name, under)]
    if isinstance(stmt, IfThenElse):
        return _stores_under_assert(stmt.then_case, buffer_name, under) + (
            [] if stmt.else_case is None else _stores_under_assert(stmt.else_case, buffer_name, under))
    if isinstance(stmt, (For, LetStmt, Allocate, While)):
        return _stores_under_assert(stmt.body, buffer_name, under)
    return []


def _lowered(name, sig):
    tmpl = get_template(name)
    inst = tmpl.instantiate(sig, tmpl.fallback(sig, tmpl.space(sig), {d: 16 for d in sig.symbolic_dims}))
    return lower(inst.schedule, inst.args, name)


def test_take_stores_every_row_index_and_guards_the_copy():
    func = _lowered("take", take_signature("v", 64, ("n",), "int64"))
    rows = _stores_under_assert(func.body, "row_of")
    assert rows and not any(rows)
    assert all(_stores_under_assert(func.body, "out"))  # the copy is what the range check guards


def test_lstm_cell_step_check_runs_once_before_the_loops():
    func = _lowered("lstm_cell", lstm_cell_signature("n", 1, 64))
    assert isinstance(func.body, Assert)  # the step check, outermost
    rows = _stores_under_assert(func.body.body, "row")
    assert rows and not any(rows)


@pytest.mark.parametrize("n, bad", [(1, 10**9), (1, -(10**9)), (3, 2**62)])
def test_take_with_a_far_index_raises_and_reads_nothing(n, bad):
    sig = take_signature("v", 64, ("n",), "int64")
    tmpl = get_template("take")
    kernel = tmpl.build(sig, tmpl.fallback(sig, tmpl.space(sig), {"n": 16, "v": 16}))
    table = np.ones((4, 64), "float32")
    idx = np.zeros(n, np.int64)
    idx[-1] = bad
    with pytest.raises(nimble.OutOfRangeError, match="outside the table"):
        kernel(table, idx)
