"""Constant folding and dead-code elimination (IR -> IR).

``fold_constants``: an operator call whose arguments are all constants is evaluated once, at
compile time, by the operator's numpy reference (results above ``MAX_FOLD_ELEMENTS`` stay
calls: a model should not grow by a giant constant). ``eliminate_dead_code``: a ``let`` whose
variable is never used is dropped (every IR expression is pure).
"""
from __future__ import annotations

import numpy as np

from ..ir.expr import Call, Constant, Let, Op, Tuple
from ..ir.visitor import ExprMutator, free_vars
from ..ops.registry import get_op

MAX_FOLD_ELEMENTS = 1 << 16


def _const_value(e):
    if isinstance(e, Constant):
        return e.value
    if isinstance(e, Tuple) and all(isinstance(f, Constant) for f in e.fields):
        return [f.value for f in e.fields]
    return None


class _Folder(ExprMutator):
    def visit_call(self, e: Call):
        new = super().visit_call(e)
        if not isinstance(new.op, Op):
            return new
        values = [_const_value(a) for a in new.args]
        if any(v is None for v in values):
            return new
        opdef = get_op(new.op.name)
        try:
            out = opdef.reference(*values, **opdef.full_attrs(new.attrs))
        except Exception:  # noqa: BLE001 - a call that fails at compile time fails the same way at run time
            return new
        outs = out if isinstance(out, tuple) else (out,)
        if any(np.asarray(o).size > MAX_FOLD_ELEMENTS for o in outs):
            return new
        consts = [Constant(np.asarray(o)) for o in outs]
        return Tuple(tuple(consts)) if isinstance(out, tuple) else consts[0]


class _DeadCode(ExprMutator):
    def visit_let(self, e: Let):
        chain = []
        while isinstance(e, Let):
            chain.append(e)
            e = e.body
        body = self.visit(e)
        for let in reversed(chain):
            if let.var in free_vars(body):
                body = Let(let.var, self.visit(let.value), body)
        return body


def _map_functions(mod, mutator_cls):
    out = mod.copy()
    for name, func in mod.functions.items():
        out = out.with_function(name, mutator_cls().visit(func))
    return out


def fold_constants(mod):
    """The module with every all-constant operator call evaluated."""
    return _map_functions(mod, _Folder)


def eliminate_dead_code(mod):
    """The module without unused ``let`` bindings."""
    return _map_functions(mod, _DeadCode)
