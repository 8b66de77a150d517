"""A-normal form: every intermediate value gets a name.

After ``to_anf`` the arguments of calls, tuples and projections are atoms (variables,
constants, globals, operators, constructors); every call, tuple, projection, ``if``, ``match``
and closure is bound by a ``let`` in the scope that computes it (branches and function bodies
are scopes of their own, so nothing is hoisted out of a branch). Passes and the bytecode
compiler then see one value per ``let``.
"""
from __future__ import annotations

import itertools

from ..ir.expr import (
    Call, Clause, Constant, Constructor, Function, GlobalVar, If, Let, Match, Op, Tuple, TupleGetItem, Var,
)

_ATOMS = (Var, Constant, GlobalVar, Op, Constructor)
_names = itertools.count()


def _fresh() -> Var:
    return Var(f"a{next(_names)}")


def _value(e, bindings: list):
    """``e`` with atomic sub-expressions, its own node not bound (the caller binds or returns it)."""
    while isinstance(e, Let):  # long let chains: iterate, do not recurse
        bindings.append((e.var, _value(e.value, bindings)))
        e = e.body
    if isinstance(e, _ATOMS):
        return e
    if isinstance(e, Call):
        op = e.op if isinstance(e.op, (Op, GlobalVar, Constructor)) else _atom(e.op, bindings)
        return Call(op, tuple(_atom(a, bindings) for a in e.args), e.attrs)
    if isinstance(e, Tuple):
        return Tuple(tuple(_atom(f, bindings) for f in e.fields))
    if isinstance(e, TupleGetItem):
        return TupleGetItem(_atom(e.tuple_value, bindings), e.index)
    if isinstance(e, If):
        return If(_atom(e.cond, bindings), block(e.then_branch), block(e.else_branch))
    if isinstance(e, Match):
        return Match(_atom(e.data, bindings), tuple(Clause(c.pattern, block(c.body)) for c in e.clauses))
    if isinstance(e, Function):
        return Function(e.params, block(e.body), e.ret_type, e.type_params)
    raise TypeError(f"to_anf: unknown expression {type(e).__name__}")


def _atom(e, bindings: list):
    v = _value(e, bindings)
    if isinstance(v, _ATOMS):
        return v
    var = _fresh()
    bindings.append((var, v))
    return var


def block(e):
    """``e`` as a chain of lets ending in a value."""
    bindings: list = []
    result = _value(e, bindings)
    for var, value in reversed(bindings):
        result = Let(var, value, result)
    return result


def to_anf(mod):
    """The module with every function body in A-normal form."""
    out = mod.copy()
    for name, func in mod.functions.items():
        out = out.with_function(name, Function(func.params, block(func.body), func.ret_type, func.type_params))
    return out
