"""The one visitor / mutator base of the model IR.

`ExprFunctor` dispatches on the node class to `visit_<kind>` and memoises results per node (nodes are
compared by identity, so a shared subexpression is visited once). `ExprVisitor` walks every subexpression;
`ExprMutator` rebuilds the expression bottom up, reusing nodes that did not change. Both walk chains of
`let` iteratively, so a model of thousands of bindings does not exhaust Python's stack.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

from .expr import (
    Call, Clause, Constant, Constructor, Expr, Function, GlobalVar, If, Let, Match, Op, Pattern, PatternConstructor,
    PatternTuple, PatternVar, PatternWildcard, Tuple, TupleGetItem, Var,
)

_KIND = {
    Var: "var",
    Constant: "constant",
    Op: "op",
    GlobalVar: "global_var",
    Constructor: "constructor",
    Call: "call",
    Function: "function",
    Let: "let",
    If: "if",
    Tuple: "tuple",
    TupleGetItem: "tuple_getitem",
    Match: "match",
}


def kind_of(expr: Expr) -> str:
    """The short name of an expression's node class ('call', 'let', ...)."""
    return _KIND[type(expr)]


@contextmanager
def deep_recursion(limit: int = 100_000):
    """Raise Python's recursion limit inside the block (deeply nested IR, recursive programs)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class ExprFunctor:
    """Dispatch `visit(expr)` to `visit_<kind>(expr)`, memoising the result per node."""

    def __init__(self):
        self.memo: dict[int, tuple] = {}

    def visit(self, expr: Expr):
        key = id(expr)
        hit = self.memo.get(key)
        if hit is not None:
            return hit[1]
        result = getattr(self, "visit_" + _KIND[type(expr)])(expr)
        self.memo[key] = (expr, result)  # keep expr alive so its id is not reused
        return result


class ExprVisitor(ExprFunctor):
    """Visit every subexpression once; override `visit_<kind>` and call the base to keep walking."""

    def visit_var(self, var: Var):
        pass

    def visit_constant(self, const: Constant):
        pass

    def visit_op(self, op: Op):
        pass

    def visit_global_var(self, gv: GlobalVar):
        pass

    def visit_constructor(self, ctor: Constructor):
        pass

    def visit_call(self, call: Call):
        self.visit(call.op)
        for a in call.args:
            self.visit(a)

    def visit_function(self, fn: Function):
        for p in fn.params:
            self.visit(p)
        self.visit(fn.body)

    def visit_let(self, let: Let):
        expr = let
        while isinstance(expr, Let):
            self.memo[id(expr)] = (expr, None)
            self.visit(expr.var)
            self.visit(expr.value)
            expr = expr.body
        self.visit(expr)

    def visit_if(self, node: If):
        self.visit(node.cond)
        self.visit(node.then_branch)
        self.visit(node.else_branch)

    def visit_tuple(self, tup: Tuple):
        for f in tup.fields:
            self.visit(f)

    def visit_tuple_getitem(self, node: TupleGetItem):
        self.visit(node.tuple_value)

    def visit_match(self, match: Match):
        self.visit(match.data)
        for clause in match.clauses:
            self.visit_pattern(clause.pattern)
            self.visit(clause.body)

    def visit_pattern(self, pattern: Pattern):
        if isinstance(pattern, PatternVar):
            self.visit(pattern.var)
        elif isinstance(pattern, (PatternConstructor, PatternTuple)):
            for p in pattern.patterns:
                self.visit_pattern(p)


class ExprMutator(ExprFunctor):
    """Rebuild an expression bottom up; override `visit_<kind>` to replace nodes. Unchanged nodes are reused."""

    def visit_var(self, var: Var) -> Expr:
        return var

    def visit_constant(self, const: Constant) -> Expr:
        return const

    def visit_op(self, op: Op) -> Expr:
        return op

    def visit_global_var(self, gv: GlobalVar) -> Expr:
        return gv

    def visit_constructor(self, ctor: Constructor) -> Expr:
        return ctor

    def visit_call(self, call: Call) -> Expr:
        op = self.visit(call.op)
        args = tuple(self.visit(a) for a in call.args)
        if op is call.op and all(a is b for a, b in zip(args, call.args)):
            return call
        return Call(op, args, call.attrs)

    def visit_function(self, fn: Function) -> Expr:
        params = tuple(self.visit(p) for p in fn.params)
        body = self.visit(fn.body)
        if body is fn.body and all(a is b for a, b in zip(params, fn.params)):
            return fn
        return Function(params, body, fn.ret_type, fn.type_params)

    def visit_let(self, let: Let) -> Expr:
        chain = []
        expr = let
        while isinstance(expr, Let) and id(expr) not in self.memo:
            chain.append((expr, self.visit(expr.var), self.visit(expr.value)))
            expr = expr.body
        result = self.visit(expr)
        for node, var, value in reversed(chain):
            if not (var is node.var and value is node.value and result is node.body):
                result = Let(var, value, result)
            else:
                result = node
            self.memo[id(node)] = (node, result)
        return result

    def visit_if(self, node: If) -> Expr:
        cond, then_b, else_b = self.visit(node.cond), self.visit(node.then_branch), self.visit(node.else_branch)
        if cond is node.cond and then_b is node.then_branch and else_b is node.else_branch:
            return node
        return If(cond, then_b, else_b)

    def visit_tuple(self, tup: Tuple) -> Expr:
        fields = tuple(self.visit(f) for f in tup.fields)
        if all(a is b for a, b in zip(fields, tup.fields)):
            return tup
        return Tuple(fields)

    def visit_tuple_getitem(self, node: TupleGetItem) -> Expr:
        value = self.visit(node.tuple_value)
        return node if value is node.tuple_value else TupleGetItem(value, node.index)

    def visit_match(self, match: Match) -> Expr:
        data = self.visit(match.data)
        clauses = tuple(Clause(self.visit_pattern(c.pattern), self.visit(c.body)) for c in match.clauses)
        if data is match.data and all(
            a.pattern is b.pattern and a.body is b.body for a, b in zip(clauses, match.clauses)
        ):
            return match
        return Match(data, clauses)

    def visit_pattern(self, pattern: Pattern) -> Pattern:
        if isinstance(pattern, PatternVar):
            var = self.visit(pattern.var)
            return pattern if var is pattern.var else PatternVar(var)
        if isinstance(pattern, PatternConstructor):
            subs = tuple(self.visit_pattern(p) for p in pattern.patterns)
            same = all(a is b for a, b in zip(subs, pattern.patterns))
            return pattern if same else PatternConstructor(pattern.constructor, subs)
        if isinstance(pattern, PatternTuple):
            subs = tuple(self.visit_pattern(p) for p in pattern.patterns)
            return pattern if all(a is b for a, b in zip(subs, pattern.patterns)) else PatternTuple(subs)
        assert isinstance(pattern, PatternWildcard)
        return pattern


class _FreeVars(ExprVisitor):
    def __init__(self):
        super().__init__()
        self.bound: set[int] = set()
        self.free: list[Var] = []

    def visit_var(self, var: Var):
        if var.id not in self.bound and all(v is not var for v in self.free):
            self.free.append(var)

    def visit_function(self, fn: Function):
        self.bound.update(p.id for p in fn.params)
        self.visit(fn.body)

    def visit_let(self, let: Let):
        expr = let
        while isinstance(expr, Let):
            self.bound.add(expr.var.id)
            self.visit(expr.value)
            expr = expr.body
        self.visit(expr)

    def visit_match(self, match: Match):
        from .expr import pattern_vars

        self.visit(match.data)
        for clause in match.clauses:
            self.bound.update(v.id for v in pattern_vars(clause.pattern))
            self.visit(clause.body)


def free_vars(expr: Expr) -> list[Var]:
    """Variables used in `expr` but bound outside it, in first-use order (vars are unique, so scoping is by id)."""
    finder = _FreeVars()
    finder.visit(expr)
    return finder.free


class _Substitute(ExprMutator):
    def __init__(self, mapping: dict):
        super().__init__()
        self.mapping = {v.id: e for v, e in mapping.items()}

    def visit_var(self, var: Var) -> Expr:
        return self.mapping.get(var.id, var)


def substitute_vars(expr: Expr, mapping: dict) -> Expr:
    """Replace each free occurrence of a `Var` key of `mapping` by its expression."""
    return _Substitute(mapping).visit(expr)
