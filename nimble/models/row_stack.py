"""Stacking a `List` of per-step results into one tensor along axis 0, without a copy per step.

A loop over time steps conses each step's result onto a list (O(1) a step, no kernel); afterwards
`@<name>(steps, empty)` joins the list into one tensor. The list holds the newest step first. Each
pass of `@<name>_merge` concatenates runs of up to `ARITY` neighbours with one kernel (oldest first),
so a list of T steps becomes a list of ceil(T / ARITY) chunks; passes repeat until one chunk is left.
Every row is copied once a pass: T * ceil(log_ARITY T) rows in all (T = 100: 16 kernels, 300 rows),
where concatenating onto the output every step copies T (T + 1) / 2 rows with T kernels.

    type of steps: List[Tensor[(?, d1, ...)]]        @<name>(steps, empty) -> Tensor[(?, d1, ...)]

`empty` (a (0, d1, ...) tensor) is the result for an empty list.
"""
from __future__ import annotations

from .. import ops as nb
from ..ir import prelude
from ..ir.builder import match, pctor, var
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


def define_row_stack(mod: IRModule, name: str, chunk_t: TensorType) -> GlobalVar:
    """Define `@<name>_merge` and `@<name>` in `mod` (which gets the prelude's `List`) for chunks of
    type `chunk_t` (axis 0 `Any`); returns `@<name>`."""
    if not any(td.name == "List" for td in mod.type_defs.values()):
        mod.add_type(prelude.LIST)
    list_t = prelude.list_type(chunk_t)
    merge, stack = GlobalVar(f"{name}_merge"), GlobalVar(name)

    xs = var("xs", type=list_t)
    clauses = []
    for k in range(ARITY, 0, -1):
        heads = [var(f"x{j}") for j in range(k)]
        rest = var("rest")
        tail = rest if k == ARITY else pctor(prelude.Nil)
        joined = heads[0] if k == 1 else nb.concatenate(heads[::-1], axis=0)  # the newest is first
        chunk_rest = merge(rest) if k == ARITY else prelude.Nil()
        clauses.append((_run_pattern(heads, tail), prelude.Cons(joined, chunk_rest)))
    clauses.append((pctor(prelude.Nil), prelude.Nil()))
    mod.define(merge, Function([xs], match(xs, clauses), list_t))

    steps, empty, only = var("steps", type=list_t), var("empty", type=chunk_t), var("only")
    body = match(steps, [
        (pctor(prelude.Nil), empty),
        (pctor(prelude.Cons, only, pctor(prelude.Nil)), only),
        (None, stack(merge(steps), empty)),
    ])
    mod.define(stack, Function([steps, empty], body, chunk_t))
    return stack
