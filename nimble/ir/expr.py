"""Expressions of the model IR.

Nodes are frozen dataclasses compared by identity (`eq=False`): a `Var` is the same variable only as the same object,
and passes can memoise on nodes cheaply. `structural_equal` / `structural_hash` compare by content.
`Op`, `GlobalVar` and `Constructor` are names and compare by value.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import TypeError
from .types import Type


class Expr:
    """Base class of every expression. Calling an expression (`f(x, y)`) makes a `Call` of it."""

    def __call__(self, *args) -> Call:
        return Call(self, tuple(as_expr(a) for a in args))


class Pattern:
    """Base class of every `match` pattern."""


def _freeze_attr(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_attr(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return tuple(_freeze_attr(v) for v in value.tolist())
    return value


def _store_tuples(node, *names: str) -> None:
    """Store the named fields of a frozen node as tuples (callers may pass lists)."""
    for name in names:
        object.__setattr__(node, name, tuple(getattr(node, name)))


@dataclass(frozen=True)
class Attrs:
    """Operator attributes: an immutable, hashable mapping from names to ints, floats, strings or tuples."""

    items: tuple = ()

    @staticmethod
    def of(mapping: dict | None = None) -> Attrs:
        return Attrs(tuple(sorted((k, _freeze_attr(v)) for k, v in (mapping or {}).items())))

    def as_dict(self) -> dict:
        return dict(self.items)

    def __getitem__(self, key):
        for k, v in self.items:
            if k == key:
                return v
        raise KeyError(key)

    def get(self, key, default=None):
        for k, v in self.items:
            if k == key:
                return v
        return default

    def __len__(self) -> int:
        return len(self.items)


_var_ids = itertools.count()


@dataclass(frozen=True, eq=False)
class Var(Expr):
    """A local variable (function parameter, let-bound or pattern-bound); `name` is only a hint for printing."""

    name: str
    type_annotation: Type | None = None
    id: int = field(default_factory=lambda: next(_var_ids))


@dataclass(frozen=True, eq=False)
class Constant(Expr):
    """A constant tensor; `name` (e.g. a weight's name) is only a hint for printing."""

    value: np.ndarray
    name: str = ""

    def __post_init__(self):
        array = np.array(self.value)  # copy, so the IR owns an immutable value
        array.flags.writeable = False
        object.__setattr__(self, "value", array)


@dataclass(frozen=True)
class Op(Expr):
    """A primitive operator, by its registered name (see `nimble.ops.registry`)."""

    name: str


@dataclass(frozen=True)
class GlobalVar(Expr):
    """A function of the module, by name; lets functions call themselves and each other."""

    name: str


@dataclass(frozen=True)
class Constructor(Expr):
    """A constructor of an ADT (`Cons` of `List`); `inputs` are its field types in terms of the ADT's type params."""

    name: str
    adt: str
    inputs: tuple
    tag: int


@dataclass(frozen=True, eq=False)
class Call(Expr):
    """Apply an `Op`, `Constructor`, `GlobalVar` or function value to arguments."""

    op: Expr
    args: tuple
    attrs: Attrs = Attrs()

    def __post_init__(self):
        _store_tuples(self, "args")
        for i, a in enumerate(self.args):
            if not isinstance(a, Expr):
                raise TypeError(f"Call argument {i} must be an Expr, got {type(a).__name__}")


@dataclass(frozen=True, eq=False)
class Function(Expr):
    """A function (a closure when it has free variables); `type_params` make it polymorphic."""

    params: tuple
    body: Expr
    ret_type: Type | None = None
    type_params: tuple = ()

    def __post_init__(self):
        _store_tuples(self, "params", "type_params")
        for p in self.params:
            if not isinstance(p, Var):
                raise TypeError(f"Function parameter must be a Var, got {type(p).__name__}")


@dataclass(frozen=True, eq=False)
class Let(Expr):
    """`let var = value; body`."""

    var: Var
    value: Expr
    body: Expr


@dataclass(frozen=True, eq=False)
class If(Expr):
    """`if (cond) {then_branch} else {else_branch}`; `cond` is a rank-0 bool tensor."""

    cond: Expr
    then_branch: Expr
    else_branch: Expr


@dataclass(frozen=True, eq=False)
class Tuple(Expr):
    """A tuple of values."""

    fields: tuple

    def __post_init__(self):
        _store_tuples(self, "fields")


@dataclass(frozen=True, eq=False)
class TupleGetItem(Expr):
    """Field `index` of a tuple."""

    tuple_value: Expr
    index: int


@dataclass(frozen=True, eq=False)
class PatternWildcard(Pattern):
    """`_`: matches anything, binds nothing."""


@dataclass(frozen=True, eq=False)
class PatternVar(Pattern):
    """Matches anything and binds it to `var`."""

    var: Var


@dataclass(frozen=True, eq=False)
class PatternConstructor(Pattern):
    """Matches a value built by `constructor` whose fields match `patterns`."""

    constructor: Constructor
    patterns: tuple = ()

    def __post_init__(self):
        _store_tuples(self, "patterns")


@dataclass(frozen=True, eq=False)
class PatternTuple(Pattern):
    """Matches a tuple whose fields match `patterns`."""

    patterns: tuple

    def __post_init__(self):
        _store_tuples(self, "patterns")


@dataclass(frozen=True, eq=False)
class Clause:
    """One arm of a `match`: `pattern => body`."""

    pattern: Pattern
    body: Expr


@dataclass(frozen=True, eq=False)
class Match(Expr):
    """Evaluate the body of the first clause whose pattern matches `data`."""

    data: Expr
    clauses: tuple

    def __post_init__(self):
        _store_tuples(self, "clauses")


def pattern_vars(pattern: Pattern) -> list[Var]:
    """Variables a pattern binds, left to right."""
    if isinstance(pattern, PatternVar):
        return [pattern.var]
    if isinstance(pattern, (PatternConstructor, PatternTuple)):
        return [v for p in pattern.patterns for v in pattern_vars(p)]
    return []


def as_expr(value, dtype: str | None = None) -> Expr:
    """An expression as is; a number, list or numpy array as a constant (Python floats become float32, ints int64)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, (list, tuple)) and any(isinstance(v, Expr) for v in value):
        return Tuple(tuple(as_expr(v, dtype) for v in value))
    array = np.asarray(value)
    if dtype is not None:
        array = array.astype(dtype)
    elif isinstance(value, (np.ndarray, np.generic)):
        pass  # numpy values keep their dtype
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.int64)
    return Constant(array)
