"""Short ways to write models: typed variables, constants, `if_`, tuples, `let` scopes and `match`.

    x = ir.var("x", shape=(Any, 768))
    b = ir.Builder()
    h = b.let("h", nb.dense(x, w))
    fn = ir.Function([x], b.ret(nb.gelu(h)))
"""
from __future__ import annotations

from ..errors import TypeError
from .expr import (
    Clause, Constant, Constructor, Expr, If, Let, Match, Pattern, PatternConstructor, PatternTuple, PatternVar,
    PatternWildcard, Tuple, TupleGetItem, Var, as_expr,
)
from .types import TensorType, Type


def tensor_type(shape, dtype: str = "float32") -> TensorType:
    """`TensorType(shape, dtype)`; dims are ints, `Any` / None, or names of symbolic dims."""
    return TensorType(tuple(shape), dtype)


def var(name: str, shape=None, dtype: str = "float32", type: Type | None = None) -> Var:  # noqa: A002
    """A variable typed by `shape` + `dtype` (a tensor) or by `type`; untyped when both are missing."""
    if shape is not None and type is not None:
        raise TypeError(f"var {name!r}: give shape or type, not both")
    if shape is not None:
        type = TensorType(tuple(shape), dtype)  # noqa: A001
    return Var(name, type)


def const(value, dtype: str | None = None, name: str = "") -> Constant:
    """A constant tensor (Python floats become float32 unless `dtype` says otherwise)."""
    expr = as_expr(value, dtype)
    return Constant(expr.value, name) if name else expr


def if_(cond: Expr, then_branch, else_branch) -> If:
    """`if (cond) {then_branch} else {else_branch}`."""
    return If(as_expr(cond), as_expr(then_branch), as_expr(else_branch))


def tuple_(*fields) -> Tuple:
    return Tuple(tuple(as_expr(f) for f in fields))


def get(tup: Expr, index: int) -> TupleGetItem:
    """Field `index` of a tuple expression."""
    return TupleGetItem(tup, index)


def pattern(p) -> Pattern:
    """A pattern from shorthand: a `Var` binds, `_` / None is a wildcard, a tuple of patterns matches a tuple."""
    if isinstance(p, Pattern):
        return p
    if isinstance(p, Var):
        return PatternVar(p)
    if p is None or p == "_":
        return PatternWildcard()
    if isinstance(p, tuple):
        return PatternTuple(tuple(pattern(q) for q in p))
    raise TypeError(f"cannot make a pattern from {p!r}")


def pctor(constructor: Constructor, *subs) -> PatternConstructor:
    """Pattern `Constructor(sub, ...)`; each sub-pattern in the shorthand of `pattern`."""
    return PatternConstructor(constructor, tuple(pattern(s) for s in subs))


def match(data: Expr, clauses: list) -> Match:
    """`match (data) { pattern => body, ... }` from `(pattern, body)` pairs."""
    return Match(data, tuple(Clause(pattern(p), as_expr(body)) for p, body in clauses))


class Builder:
    """Collects `let` bindings in order; `ret(result)` nests them around the result."""

    def __init__(self):
        self.bindings: list[tuple[Var, Expr]] = []

    def let(self, name: str, value, type: Type | None = None) -> Var:  # noqa: A002
        """Bind `value` to a new variable called `name` and return the variable."""
        v = Var(name, type)
        self.bindings.append((v, as_expr(value)))
        return v

    def ret(self, result) -> Expr:
        """The bindings so far around `result`; the builder is empty afterwards."""
        body = as_expr(result)
        for v, value in reversed(self.bindings):
            body = Let(v, value, body)
        self.bindings = []
        return body
