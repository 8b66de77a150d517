"""Analyses of the loop IR that code generation needs: what a statement tree reads and defines
(to outline a parallel loop), whether a loop body can become explicit vector code, and how much
work a loop nest does (to keep small parallel loops serial)."""
from __future__ import annotations

from ..te.expr import Expr, IntImm, Var
from ..te.simplify import simplify
from ..te.visit import free_vars, walk
from ..tir.nodes import Allocate, Assert, For, IfThenElse, LetStmt, Load, Prefetch, Seq, Stmt, Store, TileMatmul, While


def stmt_exprs(s: Stmt):
    """Every expression directly held by a statement tree (conditions, indices, values, extents)."""
    if isinstance(s, For):
        yield s.min
        yield s.extent
        if s.reverse is not None:
            yield s.reverse
        yield from stmt_exprs(s.body)
    elif isinstance(s, (Assert, While)):
        yield s.cond
        yield from stmt_exprs(s.body)
    elif isinstance(s, Store):
        yield s.index
        yield s.value
    elif isinstance(s, Prefetch):
        yield s.index
    elif isinstance(s, TileMatmul):
        yield s.out_index
        yield s.a_index
        yield s.b_index
        yield s.rows
        yield s.init_index
    elif isinstance(s, IfThenElse):
        yield s.cond
        yield from stmt_exprs(s.then_case)
        if s.else_case is not None:
            yield from stmt_exprs(s.else_case)
    elif isinstance(s, LetStmt):
        yield s.value
        yield from stmt_exprs(s.body)
    elif isinstance(s, Allocate):
        yield s.extent
        yield from stmt_exprs(s.body)
    elif isinstance(s, Seq):
        for x in s.stmts:
            yield from stmt_exprs(x)


def stmts(s: Stmt):
    yield s
    if isinstance(s, (For, LetStmt, Allocate, Assert, While)):
        yield from stmts(s.body)
    elif isinstance(s, IfThenElse):
        yield from stmts(s.then_case)
        if s.else_case is not None:
            yield from stmts(s.else_case)
    elif isinstance(s, Seq):
        for x in s.stmts:
            yield from stmts(x)


def uses(s: Stmt):
    """(free variables, buffers used but not allocated) of a statement tree."""
    defined, allocated, used_vars, used_bufs = set(), set(), set(), []
    for st in stmts(s):
        if isinstance(st, (For, LetStmt)):
            defined.add(st.var)
        if isinstance(st, Allocate):
            allocated.add(st.buffer)
        if isinstance(st, (Store, Prefetch)) and st.buffer not in used_bufs:
            used_bufs.append(st.buffer)
        if isinstance(st, TileMatmul):
            used_bufs.extend(x for x in (st.out, st.a, st.b, st.init) if x is not None and x not in used_bufs)
    for e in stmt_exprs(s):
        for n in walk(e):
            if isinstance(n, Var):
                used_vars.add(n)
            elif isinstance(n, Load) and n.buffer not in used_bufs:
                used_bufs.append(n.buffer)
    return sorted(used_vars - defined, key=lambda v: v.name), [b for b in used_bufs if b not in allocated]


def vector_body_ok(s: Stmt, v: Var) -> bool:
    """An explicit vector loop holds only stores (guards and lets not varying with the lane)."""
    if isinstance(s, Seq):
        return all(vector_body_ok(x, v) for x in s.stmts)
    if isinstance(s, Store):
        return v in free_vars(s.index)
    if isinstance(s, IfThenElse):
        return v not in free_vars(s.cond) and vector_body_ok(s.then_case, v) and (
            s.else_case is None or vector_body_ok(s.else_case, v))
    return False


def work_estimate(s: Stmt, available: set) -> Expr:
    """Innermost-statement executions of ``s`` (symbolic extents bound outside count as such)."""
    if isinstance(s, For):
        ext = simplify(s.extent)
        if not isinstance(ext, IntImm) and not free_vars(ext) <= available:
            ext = IntImm(16)
        return simplify(ext * work_estimate(s.body, available))
    if isinstance(s, Seq):
        out = IntImm(0)
        for x in s.stmts:
            out = out + work_estimate(x, available)
        return simplify(out)
    if isinstance(s, IfThenElse):
        return work_estimate(s.then_case, available)
    if isinstance(s, While):  # an unknown trip count, counted as 16 like a symbolic extent bound inside
        return simplify(IntImm(16) * work_estimate(s.body, available))
    if isinstance(s, (LetStmt, Allocate, Assert)):
        return work_estimate(s.body, available)
    if isinstance(s, TileMatmul):  # in 16-lane multiply-adds
        rows = s.rows if free_vars(s.rows) <= available else IntImm(16)
        return simplify(rows * max(1, s.cols * s.k // 16))
    return IntImm(1)
