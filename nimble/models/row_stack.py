"""Stacking a `List` of per-step results into one tensor along axis 0, without a copy per step.

A loop over time steps conses each step's result onto a list (O(1) a step, no kernel); afterwards
`@<name>(steps, empty)` joins the list into one tensor (the newest step first in the list by default). Each
pass of `@<name>_merge` concatenates runs of up to `ARITY` neighbours with one kernel (in time order),
so a list of T steps becomes a list of ceil(T / ARITY) chunks; passes repeat until one chunk is left.
Every row is copied once a pass: T * ceil(log_ARITY T) rows in all (T = 100: 16 kernels, 300 rows),
where concatenating onto the output every step copies T (T + 1) / 2 rows with T kernels.

    type of steps: List[Tensor[(?, d1, ...)]]        @<name>(steps, empty) -> Tensor[(?, d1, ...)]

`empty` (a (0, d1, ...) tensor) is the result for an empty list. A `join` on a non-empty list of chunks
always ends with one chunk, so `@<name>_join` never sees `Nil`.
"""
from __future__ import annotations

from .. import ops as nb
from ..ir import prelude
from ..ir.builder import Builder, match, pctor, var
from ..ir.expr import Function, GlobalVar
from ..ir.module import IRModule
from ..ir.types import TensorType

ARITY = 8  # rows joined by one concatenate kernel


def _run_pattern(heads: list, tail):
    """`Cons(heads[0], Cons(heads[1], ... tail))`."""
    pat = tail
    for h in reversed(heads):
        pat = pctor(prelude.Cons, h, pat)
    return pat


def _define_merge(mod: IRModule, merge: GlobalVar, chunk_t: TensorType, newest_first: bool) -> None:
    """`@merge(xs: List[chunk_t]) -> List[chunk_t]`: each run of up to ARITY neighbours becomes one chunk."""
    xs = var("xs", type=prelude.list_type(chunk_t))
    clauses = []
    for k in range(ARITY, 0, -1):
        heads = [var(f"x{j}") for j in range(k)]
        rest = var("rest")
        parts = heads[::-1] if newest_first else heads
        b = Builder()  # the chunk is typed `chunk_t`: a run of k rows is one case of (?, ...)
        joined = b.let("chunk", parts[0] if k == 1 else nb.concatenate(parts, axis=0), chunk_t)
        if k == ARITY:
            clauses.append((_run_pattern(heads, rest), b.ret(prelude.Cons(joined, merge(rest)))))
        else:
            clauses.append((_run_pattern(heads, pctor(prelude.Nil)), b.ret(prelude.Cons(joined, prelude.Nil()))))
    clauses.append((pctor(prelude.Nil), prelude.Nil()))
    mod.define(merge, Function([xs], match(xs, clauses), prelude.list_type(chunk_t)))


def define_row_stack(mod: IRModule, name: str, chunk_t: TensorType, newest_first: bool = True) -> GlobalVar:
    """Define `@<name>(steps, empty) -> chunk_t`, `@<name>_merge` and `@<name>_join` in `mod` (which gets the
    prelude's `List`).

    `chunk_t`: the type of the elements of `steps` and of the result, axis 0 `Any` (a step's element may have
    any length on axis 0, e.g. a (1, H) row). `newest_first`: the head of `steps` ends the result (a loop that
    conses each step); else it starts it.
    """
    if not any(td.name == "List" for td in mod.type_defs.values()):
        mod.add_type(prelude.LIST)
    list_t = prelude.list_type(chunk_t)
    merge, join, stack = (GlobalVar(f"{name}{suffix}") for suffix in ("_merge", "_join", ""))
    _define_merge(mod, merge, chunk_t, newest_first)

    chunks, only = var("chunks", type=list_t), var("only")
    join_body = match(chunks, [(pctor(prelude.Cons, only, pctor(prelude.Nil)), only), (None, join(merge(chunks)))])
    mod.define(join, Function([chunks], join_body, chunk_t))

    steps, empty = var("steps", type=list_t), var("empty", type=chunk_t)
    body = match(steps, [(pctor(prelude.Nil), empty), (None, join(merge(steps)))])
    mod.define(stack, Function([steps, empty], body, chunk_t))
    return stack
