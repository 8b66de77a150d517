"""Readable text of scalar and tensor expressions."""
from __future__ import annotations

from .expr import BinaryOp, Call, Cast, FloatImm, IntImm, Max, Min, Not, Select, Var


def expr_str(e) -> str:
    from .tensor import Reduce, TensorLoad

    if isinstance(e, IntImm):
        if e.dtype == "bool":
            return "True" if e.value else "False"
        return str(e.value)
    if isinstance(e, FloatImm):
        return f"{e.value!r}f" if e.dtype == "float32" else repr(e.value)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, (Min, Max)):
        return f"{e.symbol}({expr_str(e.a)}, {expr_str(e.b)})"
    if isinstance(e, BinaryOp):
        return f"({expr_str(e.a)} {e.symbol} {expr_str(e.b)})"
    if isinstance(e, Not):
        return f"!{expr_str(e.a)}"
    if isinstance(e, Select):
        return f"select({expr_str(e.cond)}, {expr_str(e.true_value)}, {expr_str(e.false_value)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({expr_str(e.value)})"
    if isinstance(e, Call):
        return f"{e.func}({', '.join(expr_str(a) for a in e.args)})"
    if isinstance(e, TensorLoad):
        return f"{e.tensor.name}[{', '.join(expr_str(i) for i in e.indices)}]"
    if isinstance(e, Reduce):
        axes = ", ".join(a.var.name for a in e.axes)
        return f"{e.combiner}({expr_str(e.source)}, axis=[{axes}])"
    custom = getattr(e, "to_str", None)
    if custom is not None:
        return custom()
    return type(e).__name__
