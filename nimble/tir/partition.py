"""Guard elimination and loop partitioning (the paper's symbolic codegen).

A split of a symbolic extent leaves a guard ``io*f + ii < n`` in the loop body. Partitioning
runs the guarded loop as a main part ``io < n//f`` whose guards the prover drops, followed
by a tail that keeps them; vectorized and unrolled loops are left to codegen.
"""
from __future__ import annotations

from ..te.expr import LT, And, Expr, IntImm, Min, Select, Var
from ..te.visit import walk
from ..te.simplify import linear, prove_nonneg, simplify
from ..te.visit import free_vars
from .nodes import Allocate, Assert, For, IfThenElse, LetStmt, Prefetch, Seq, Stmt, Store, seq


def _simplify_index(e, ranges):
    """Simplify access indices and integer selects of ``e`` under the loop ranges in scope."""
    from ..te.visit import transform
    from .nodes import Load

    def fn(n):
        if isinstance(n, Load):
            idx = simplify(n.index, ranges)
            return Load(n.buffer, idx) if idx is not n.index else None
        if isinstance(n, Select):
            c = simplify(n.cond, ranges)
            if isinstance(c, IntImm):
                return n.true_value if c.value else n.false_value
        return None

    return transform(e, fn)


def simplify_guards(s: Stmt, ranges: dict) -> Stmt | None:
    """Simplify guards and access indices under the loop ranges in scope; drop guards proven
    true or false (and loops left empty)."""
    if isinstance(s, Store):
        return Store(s.buffer, simplify(s.index, ranges), _simplify_index(s.value, ranges))
    if isinstance(s, Prefetch):
        return Prefetch(s.buffer, simplify(s.index, ranges), s.lines, s.level)
    if isinstance(s, For):
        inner = dict(ranges)
        inner[s.var] = (s.min, simplify(s.min + s.extent - 1))
        body = simplify_guards(s.body, inner)
        if body is None:
            return None
        ext = simplify(s.extent, ranges)
        if isinstance(ext, IntImm) and ext.value <= 0:
            return None
        return For(s.var, simplify(s.min, ranges), ext, s.kind, body, s.reverse)
    if isinstance(s, IfThenElse):
        cond = simplify(s.cond, ranges)
        if isinstance(cond, IntImm):
            chosen = s.then_case if cond.value else s.else_case
            return simplify_guards(chosen, ranges) if chosen is not None else None
        then_case = simplify_guards(s.then_case, ranges)
        else_case = simplify_guards(s.else_case, ranges) if s.else_case is not None else None
        if then_case is None and else_case is None:
            return None
        return IfThenElse(cond, then_case if then_case is not None else seq(), else_case)
    if isinstance(s, Seq):
        kids = [simplify_guards(x, ranges) for x in s.stmts]
        kids = [k for k in kids if k is not None]
        return seq(*kids) if kids else None
    if isinstance(s, LetStmt):
        body = simplify_guards(s.body, ranges)
        return LetStmt(s.var, s.value, body) if body is not None else None
    if isinstance(s, Assert):
        body = simplify_guards(s.body, ranges)
        return Assert(simplify(s.cond, ranges), s.code, body) if body is not None else None
    if isinstance(s, Allocate):
        body = simplify_guards(s.body, ranges)
        return Allocate(s.buffer, s.extent, body) if body is not None else None
    return s


def _guards(s: Stmt):
    if isinstance(s, IfThenElse):
        yield s.cond
        yield from _guards(s.then_case)
        if s.else_case is not None:
            yield from _guards(s.else_case)
    elif isinstance(s, For):
        yield from _guards(s.body)
    elif isinstance(s, Seq):
        for x in s.stmts:
            yield from _guards(x)
    elif isinstance(s, (LetStmt, Allocate, Assert)):
        yield from _guards(s.body)
    elif isinstance(s, Store):  # an integer select in a value (a padded read) partitions like a guard
        for n in walk(s.value):
            if isinstance(n, Select) and isinstance(n.cond, LT):
                yield n.cond


def _conjuncts(c: Expr):
    if isinstance(c, And):
        yield from _conjuncts(c.a)
        yield from _conjuncts(c.b)
    else:
        yield c


def _inner_ranges(s: Stmt, out: dict):
    """(lo, hi) of every loop variable inside ``s``."""
    if isinstance(s, For):
        out[s.var] = (s.min, simplify(s.min + s.extent - 1))
        _inner_ranges(s.body, out)
    elif isinstance(s, Seq):
        for x in s.stmts:
            _inner_ranges(x, out)
    elif isinstance(s, IfThenElse):
        _inner_ranges(s.then_case, out)
        if s.else_case is not None:
            _inner_ranges(s.else_case, out)
    elif isinstance(s, (LetStmt, Allocate, Assert)):
        _inner_ranges(s.body, out)
    return out


def _main_extent(loop: For) -> Expr | None:
    """The trip count from 0 below which every ``a < b`` guard on ``loop.var`` holds, or None."""
    inner = _inner_ranges(loop.body, {})
    cands = []
    for g in _guards(loop.body):
        for c in _conjuncts(g):
            if not isinstance(c, LT) or loop.var not in free_vars(c.a) | free_vars(c.b):
                continue
            lin = linear(c.b).add(linear(c.a), -1)  # the guard is lin > 0, lin = rest - k*v
            k = -lin.terms.get(loop.var, 0)
            if k <= 0:
                continue
            rest_min: Expr = IntImm(lin.const)
            usable = True
            for atom, coef in lin.terms.items():
                if atom is loop.var:
                    continue
                if atom in inner:
                    lo, hi = inner[atom]
                    rest_min = rest_min + (hi if coef < 0 else lo) * coef
                elif free_vars(atom) & (set(inner) | {loop.var}):
                    usable = False
                else:
                    rest_min = rest_min + atom * coef
            if usable:  # rest_min - k*v > 0  <=>  v <= (rest_min - 1) // k
                cands.append(simplify((rest_min - 1) // k + 1))
    if not cands:
        return None
    out = cands[0]
    for c in cands[1:]:
        out = simplify(Min(out, c))
    return out


def partition_loops(s: Stmt, ranges: dict | None = None) -> Stmt:
    """Split loops whose bodies hold guards on them into a guard-free main part and a tail."""
    ranges = ranges or {}
    if isinstance(s, For):
        inner = dict(ranges)
        inner[s.var] = (s.min, simplify(s.min + s.extent - 1))
        if s.kind in ("serial", "parallel") and s.min == IntImm(0):
            main = _main_extent(s)
            if main is not None and simplify(s.extent - main) != IntImm(0):
                if not prove_nonneg(s.extent - main, ranges):
                    main = simplify(Min(main, s.extent))
                main_r = dict(ranges)
                main_r[s.var] = (IntImm(0), simplify(main - 1))
                main_body = simplify_guards(s.body, main_r)
                if main_body is not None and _has_no_guard_on(main_body, s.var):
                    tail_r = dict(ranges)
                    tail_r[s.var] = (main, simplify(s.extent - 1))
                    tail_body = simplify_guards(s.body, tail_r)
                    parts = [For(s.var, IntImm(0), main, s.kind, partition_loops(main_body, main_r), s.reverse)]
                    if tail_body is not None:
                        parts.append(_clip_to_guard(For(s.var, main, simplify(s.extent - main), s.kind,
                                                        partition_loops(tail_body, tail_r), s.reverse)))
                    return seq(*parts)
        return _clip_to_guard(For(s.var, s.min, s.extent, s.kind, partition_loops(s.body, inner), s.reverse))
    if isinstance(s, Seq):
        return seq(*[partition_loops(x, ranges) for x in s.stmts])
    if isinstance(s, IfThenElse):
        return IfThenElse(s.cond, partition_loops(s.then_case, ranges),
                          partition_loops(s.else_case, ranges) if s.else_case is not None else None)
    if isinstance(s, LetStmt):
        return LetStmt(s.var, s.value, partition_loops(s.body, ranges))
    if isinstance(s, Allocate):
        return Allocate(s.buffer, s.extent, partition_loops(s.body, ranges))
    if isinstance(s, Assert):
        return Assert(s.cond, s.code, partition_loops(s.body, ranges))
    return s


def _clip_to_guard(loop: For) -> For:
    """``loop`` ending where the guard around its whole body stops holding: a serial loop whose body is
    ``if (v*k < rest)`` (k > 0) does nothing from ``v = ceil(rest / k)`` on, so its tail iterations (a tail of
    a 1024-panel column split ran ~1000 empty iterations per row tile) are not run at all. The loop keeps its
    start; an end below it runs no iteration (serial loops compare ``v < end``)."""
    body = loop.body
    if loop.kind != "serial" or not isinstance(body, IfThenElse) or body.else_case is not None:
        return loop
    stop = _main_extent(For(loop.var, IntImm(0), loop.extent, loop.kind, IfThenElse(body.cond, seq())))
    if stop is None:
        return loop
    end = simplify(loop.min + loop.extent)
    if prove_nonneg(simplify(stop - end), {}):
        return loop
    return For(loop.var, loop.min, simplify(Min(end, stop) - loop.min), loop.kind, body, loop.reverse)


def _has_no_guard_on(s: Stmt, v: Var) -> bool:
    return all(v not in free_vars(g) for g in _guards(s))

