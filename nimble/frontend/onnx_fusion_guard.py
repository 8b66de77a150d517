"""A guard around a nimble fusion bug: `nimble.passes.fuse` counts a variable's uses through the memoising
`ExprVisitor`, so a `let` variable used twice looks used once; its producer is fused into the first consumer and
compiling the second fails ("%x was fused away but is used as an input" / "used outside its scope").

`guarded_ret` rebinds every fusable value used more than once as `dyn.reshape(v, shape_of(v))`: neither consumer
fuses (data-dependent and opaque), so the value is materialised once and read by every user."""
from __future__ import annotations

import dataclasses

from ..ir.expr import Attrs, Call, Expr, Function, Op, Var
from ..ir.types import TensorType
from ..ops.registry import OpPattern, get_op


def _children(e: Expr):
    if isinstance(e, Function):
        yield e.body
        return
    for f in dataclasses.fields(e):
        v = getattr(e, f.name)
        if isinstance(v, Expr):
            yield v
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, Expr):
                    yield x
                elif dataclasses.is_dataclass(x) and hasattr(x, "rhs"):  # match clauses
                    yield x.rhs


def count_uses(roots: list) -> dict:
    """`{var id: number of occurrences}` over the expressions `roots` (shared non-Var nodes walked once)."""
    counts: dict = {}
    seen: set = set()
    stack = list(roots)
    while stack:
        e = stack.pop()
        if isinstance(e, Var):
            counts[e.id] = counts.get(e.id, 0) + 1
            continue
        if id(e) in seen:
            continue
        seen.add(id(e))
        stack.extend(_children(e))
    return counts


def _fusable(value) -> bool:
    if not (isinstance(value, Call) and isinstance(value.op, Op)):
        return False
    opdef = get_op(value.op.name)
    return opdef.pattern != OpPattern.OPAQUE and not opdef.value_inputs


def guarded_ret(builder, result):
    """`builder.ret(result)` after rebinding multi-use fusable values (see the module docstring)."""
    from ..ir.expr import as_expr

    result = as_expr(result)
    counts = count_uses([value for _, value in builder.bindings] + [result])
    out = []
    for var, value in builder.bindings:
        if counts.get(var.id, 0) > 1 and _fusable(value) and isinstance(var.type_annotation, TensorType):
            raw = Var(var.name + "_value", var.type_annotation)
            out.append((raw, value))
            shape = Call(Op("shape_of"), (raw,), Attrs.of({}))
            out.append((var, Call(Op("dyn.reshape"), (raw, shape), Attrs.of({}))))
        else:
            out.append((var, value))
    builder.bindings = out
    return builder.ret(result)
