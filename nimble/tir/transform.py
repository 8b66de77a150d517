"""Rewriting every expression of a loop-IR statement tree."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..te.visit import substitute
from .nodes import Allocate, Assert, For, IfThenElse, LetStmt, Prefetch, Seq, Stmt, Store, TileMatmul, While


def map_exprs(s: Stmt, fn: Callable) -> Stmt:
    """The statement with ``fn`` applied to each expression it holds."""
    if isinstance(s, For):
        return For(s.var, fn(s.min), fn(s.extent), s.kind, map_exprs(s.body, fn),
                   None if s.reverse is None else fn(s.reverse))
    if isinstance(s, Store):
        return Store(s.buffer, fn(s.index), fn(s.value))
    if isinstance(s, Prefetch):
        return Prefetch(s.buffer, fn(s.index), s.lines, s.level)
    if isinstance(s, TileMatmul):
        return replace(s, out_index=fn(s.out_index), a_index=fn(s.a_index), b_index=fn(s.b_index), rows=fn(s.rows),
                       init_index=fn(s.init_index))
    if isinstance(s, IfThenElse):
        return IfThenElse(fn(s.cond), map_exprs(s.then_case, fn),
                          map_exprs(s.else_case, fn) if s.else_case is not None else None)
    if isinstance(s, While):
        return While(fn(s.cond), map_exprs(s.body, fn))
    if isinstance(s, LetStmt):
        return LetStmt(s.var, fn(s.value), map_exprs(s.body, fn))
    if isinstance(s, Allocate):
        return Allocate(s.buffer, fn(s.extent), map_exprs(s.body, fn))
    if isinstance(s, Assert):
        return Assert(fn(s.cond), s.code, map_exprs(s.body, fn))
    if isinstance(s, Seq):
        return Seq(tuple(map_exprs(x, fn) for x in s.stmts))
    return s


def substitute_stmt(s: Stmt, mapping: dict) -> Stmt:
    """Replace variables by expressions throughout a statement tree."""
    return map_exprs(s, lambda e: substitute(e, mapping))
