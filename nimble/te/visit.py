"""One traversal and one rewriter for scalar expressions, used by every pass over them."""
from __future__ import annotations

from typing import Callable

from .expr import BinaryOp, Call, Cast, Expr, Not, Select, Var
from .tensor import Reduce, TensorLoad


def children(e: Expr) -> tuple:
    if isinstance(e, BinaryOp):
        return (e.a, e.b)
    if isinstance(e, TensorLoad):
        return e.indices
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Select):
        return (e.cond, e.true_value, e.false_value)
    if isinstance(e, Cast):
        return (e.value,)
    if isinstance(e, Not):
        return (e.a,)
    if isinstance(e, Reduce):
        return (e.source, e.init)
    extra = getattr(e, "expr_children", None)  # loop-IR expressions (buffer loads)
    return extra() if extra is not None else ()


def rebuild(e: Expr, new: tuple) -> Expr:
    if all(a is b for a, b in zip(new, children(e))):
        return e
    if isinstance(e, BinaryOp):
        return type(e)(new[0], new[1])
    if isinstance(e, TensorLoad):
        return TensorLoad(e.tensor, tuple(new))
    if isinstance(e, Call):
        return Call(e.func, tuple(new), e.dtype)
    if isinstance(e, Select):
        return Select(*new)
    if isinstance(e, Cast):
        return Cast(e.dtype, new[0])
    if isinstance(e, Not):
        return Not(new[0])
    if isinstance(e, Reduce):
        return Reduce(e.combiner, new[0], e.axes, new[1])
    return e.with_expr_children(new)


def transform(e: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild ``e`` bottom-up; ``fn(node)`` returns a replacement or None to keep the node."""
    memo: dict = {}

    def go(n: Expr) -> Expr:
        key = id(n)
        hit = memo.get(key)
        if hit is not None:
            return hit[1]
        kids = children(n)
        m = rebuild(n, tuple(go(k) for k in kids)) if kids else n
        r = fn(m)
        out = m if r is None else r
        memo[key] = (n, out)  # keep n alive so its id is not reused
        return out

    return go(e)


def substitute(e: Expr, mapping: dict) -> Expr:
    """Replace variables by expressions."""
    if not mapping:
        return e
    return transform(e, lambda n: mapping.get(n) if isinstance(n, Var) else None)


def walk(e: Expr):
    """Yield every node of ``e`` (pre-order)."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


def any_node(e: Expr, pred) -> bool:
    return any(pred(n) for n in walk(e))


def collect_loads(e: Expr) -> list:
    return [n for n in walk(e) if isinstance(n, TensorLoad)]


def free_vars(e: Expr) -> set:
    return {n for n in walk(e) if isinstance(n, Var)}
