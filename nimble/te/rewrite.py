"""A small pattern language for scalar expressions, so that rewrite rules read as data.

A pattern is a tree of

* ``Any("x")``: any expression, bound to ``x`` (a name used twice must match equal nodes);
* ``Int("c")`` / ``Float("f")``: a constant, its *value* bound to ``c``; ``Int(1)`` matches the
  constant 1 only;
* nodes, written with Python operators (``X // C``, ``X + 0.0``, ``X < Y``) or ``Node(types, *kids)``
  for the rest (``Node((Min, Max), X, X)``; ``Node(Var)`` matches any Var, children unchecked).

Every pattern takes ``where=``: a predicate on the matched node (``Any``, ``Node``) or value
(``Int``, ``Float``). A ``Rules`` table is an ordered list of ``(name, pattern, fn)``; ``rewrite``
tries the rules whose root type is the node's exact type, in order, and returns the first result
that is not None of ``fn(node, *args, **bindings)``. Results need not be expressions (the bound and
prover tables return intervals and linear forms). In the spirit of tinygrad's ``PatternMatcher``
and TVM's ``rewrite_simplify`` rules.
"""
from __future__ import annotations

from typing import Callable

from .expr import (
    EQ, LE, LT, NE, Add, And, Cast, Div, Expr, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul,
    Not, Or, Select, Sub,
)

_BINARY = (Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max, LT, LE, EQ, NE, And, Or)
_FIELDS = {**{cls: ("a", "b") for cls in _BINARY}, Not: ("a",), Select: ("cond", "true_value", "false_value"),
           Cast: ("value",)}


class Pat:
    """Base of patterns; operators build node patterns (``Pat`` has no ordering or truth value)."""

    __slots__ = ()

    def match(self, e, b: dict) -> bool:  # pragma: no cover - every subclass defines it
        raise TypeError(f"{type(self).__name__} is not a pattern")

    def bind(self, e) -> dict | None:
        """The bindings of matching ``e``, or None."""
        b: dict = {}
        return b if self.match(e, b) else None

    def __add__(self, o):
        return Node(Add, self, lit(o))

    def __radd__(self, o):
        return Node(Add, lit(o), self)

    def __sub__(self, o):
        return Node(Sub, self, lit(o))

    def __rsub__(self, o):
        return Node(Sub, lit(o), self)

    def __mul__(self, o):
        return Node(Mul, self, lit(o))

    def __rmul__(self, o):
        return Node(Mul, lit(o), self)

    def __truediv__(self, o):
        return Node(Div, self, lit(o))

    def __floordiv__(self, o):
        return Node(FloorDiv, self, lit(o))

    def __rfloordiv__(self, o):
        return Node(FloorDiv, lit(o), self)

    def __mod__(self, o):
        return Node(FloorMod, self, lit(o))

    def __rmod__(self, o):
        return Node(FloorMod, lit(o), self)

    def __lt__(self, o):
        return Node(LT, self, lit(o))

    def __le__(self, o):
        return Node(LE, self, lit(o))

    def __bool__(self):
        raise TypeError("a pattern has no truth value (compare patterns with Node(EQ, ...))")


class Any(Pat):
    """Any expression (optionally one passing ``where``), bound to ``name``."""

    __slots__ = ("name", "where")

    def __init__(self, name: str | None = None, where: Callable | None = None):
        self.name, self.where = name, where

    def match(self, e, b):
        if self.where is not None and not self.where(e):
            return False
        if self.name is None:
            return True
        old = b.get(self.name)
        if old is None:
            b[self.name] = e
            return True
        return old is e or old == e

    def __repr__(self):
        return self.name or "_"


class _Const(Pat):
    __slots__ = ("name", "value", "where")
    kind: type

    def __init__(self, name_or_value=None, where: Callable | None = None):
        if isinstance(name_or_value, str) or name_or_value is None:
            self.name, self.value = name_or_value, None
        else:
            self.name, self.value = None, name_or_value
        self.where = where

    def match(self, e, b):
        if type(e) is not self.kind:
            return False
        v = e.value
        if self.value is not None and v != self.value:
            return False
        if self.where is not None and not self.where(v):
            return False
        if self.name is not None:
            old = b.get(self.name)
            if old is not None and old != v:
                return False
            b[self.name] = v
        return True

    def __repr__(self):
        return self.name if self.name is not None else repr(self.value)


class Int(_Const):
    """An integer (or bool) constant; its value is bound."""

    __slots__ = ()
    kind = IntImm


class Float(_Const):
    """A float constant; its value is bound."""

    __slots__ = ()
    kind = FloatImm


class Node(Pat):
    """A node of one of ``types`` (exact types) whose children match ``kids`` (unchecked if none)."""

    __slots__ = ("types", "kids", "fields", "name", "where")

    def __init__(self, types, *kids, name: str | None = None, where: Callable | None = None):
        self.types = frozenset(types if isinstance(types, tuple) else (types,))
        self.kids = tuple(lit(k) for k in kids)
        fields = {_FIELDS.get(t, ()) for t in self.types}
        if kids and (len(fields) != 1 or len(next(iter(fields))) != len(kids)):
            raise TypeError(f"Node{tuple(t.__name__ for t in self.types)}: {len(kids)} children do not fit")
        self.fields = next(iter(fields)) if kids else ()
        self.name, self.where = name, where

    def match(self, e, b):
        if type(e) not in self.types:
            return False
        if self.where is not None and not self.where(e):
            return False
        for field, kid in zip(self.fields, self.kids):
            if not kid.match(getattr(e, field), b):
                return False
        if self.name is not None:
            b[self.name] = e
        return True

    def __repr__(self):
        names = "|".join(sorted(t.__name__ for t in self.types))
        return f"{names}({', '.join(map(repr, self.kids))})"


def lit(x) -> Pat:
    """A pattern for ``x``: patterns stay, ints and floats match that constant."""
    if isinstance(x, Pat):
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"pattern: expected a pattern, an int or a float, got {x!r}")
    return Int(x) if isinstance(x, int) else Float(x)


class Rules:
    """An ordered table of named rules ``(name, pattern, fn)``, indexed by the root's exact type.

    ``trace``, when a list, collects the names of the rules that fired (for tests).
    """

    def __init__(self, rules):
        self.rules = tuple(rules)
        self.index: dict = {}
        for name, pat, fn in self.rules:
            if not isinstance(pat, Node):
                raise TypeError(f"rule {name}: the root of a pattern must be a Node, got {pat!r}")
            for t in pat.types:
                self.index.setdefault(t, []).append((name, pat, fn))
        self.trace: list | None = None

    def __iter__(self):
        return iter(self.rules)

    def names(self) -> list:
        return [name for name, _, _ in self.rules]

    def rewrite(self, e: Expr, *args):
        """The first non-None ``fn(e, *args, **bindings)`` of the rules matching ``e``, else None."""
        for name, pat, fn in self.index.get(type(e), ()):
            b: dict = {}
            if pat.match(e, b):
                out = fn(e, *args, **b)
                if out is not None:
                    if self.trace is not None:
                        self.trace.append(name)
                    return out
        return None


__all__ = ["Pat", "Any", "Int", "Float", "Node", "Rules", "lit"]
