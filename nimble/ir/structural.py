"""Structural equality and hashing of IR, up to the renaming of variables (alpha-equivalence).

Two expressions are structurally equal when they have the same shape of nodes, equal types, attributes and
constant values, and their variables correspond one to one in order of first appearance (name hints and ids do
not matter). Free variables are matched the same way, as TVM does with `map_free_vars=True`. Both walks are
iterative, so deeply nested `let` chains are fine.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .expr import Attrs, Clause, Constant, Constructor, Expr, GlobalVar, Op, Pattern, Var
from .module import IRModule
from .types import Type

_SKIP_FIELDS = {Var: ("name", "id"), Constant: ("name",)}


def _children(node) -> list:
    skip = _SKIP_FIELDS.get(type(node), ())
    return [getattr(node, f.name) for f in dataclasses.fields(node) if f.name not in skip]


def structural_equal(lhs, rhs) -> bool:
    """True when `lhs` and `rhs` (expressions, or whole modules) are the same program up to variable names."""
    if isinstance(lhs, IRModule) or isinstance(rhs, IRModule):
        return (
            isinstance(lhs, IRModule) and isinstance(rhs, IRModule)
            and lhs.type_defs == rhs.type_defs and sorted(lhs.functions) == sorted(rhs.functions)
            and all(structural_equal(lhs.functions[n], rhs.functions[n]) for n in lhs.functions)
        )
    lhs_to_rhs: dict[int, Var] = {}
    rhs_seen: set[int] = set()
    stack = [(lhs, rhs)]
    while stack:
        a, b = stack.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, Var):
            mapped = lhs_to_rhs.get(id(a))
            if mapped is not None:
                if mapped is not b:
                    return False
                continue
            if id(b) in rhs_seen or a.type_annotation != b.type_annotation:
                return False
            lhs_to_rhs[id(a)] = b
            rhs_seen.add(id(b))
        elif a is b:
            continue
        elif isinstance(a, Constant):
            if a.value.dtype != b.value.dtype or a.value.shape != b.value.shape:
                return False
            if not np.array_equal(a.value, b.value, equal_nan=a.value.dtype.kind == "f"):
                return False
        elif isinstance(a, (Type, Attrs)) or not isinstance(a, (Expr, Pattern, Clause, tuple)):
            if a != b:
                return False
        elif isinstance(a, tuple):
            if len(a) != len(b):
                return False
            stack.extend(reversed(list(zip(a, b))))
        else:
            stack.extend(reversed(list(zip(_children(a), _children(b)))))
    return True


def structural_hash(expr) -> int:
    """A hash consistent with `structural_equal`."""
    if isinstance(expr, IRModule):
        return hash(tuple((n, structural_hash(expr.functions[n])) for n in sorted(expr.functions)))
    var_index: dict[int, int] = {}
    h = 0
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Var):
            if id(node) not in var_index:
                var_index[id(node)] = len(var_index)
                token = ("var-def", var_index[id(node)], node.type_annotation)
            else:
                token = ("var", var_index[id(node)])
        elif isinstance(node, Constant):
            value = node.value
            token = ("const", value.dtype.name, value.shape, value.tobytes())
        elif isinstance(node, tuple):
            token = ("tuple", len(node))
            stack.extend(reversed(node))
        elif isinstance(node, (Op, GlobalVar, Constructor)):
            token = ("name", node)
        elif isinstance(node, (Expr, Pattern, Clause)):
            token = (type(node).__name__,)
            stack.extend(reversed(_children(node)))
        else:
            token = ("leaf", node)
        h = hash((h, token))
    return h

