"""A function body as a flat list of `let` bindings, for passes that match and rewrite operator patterns.

`LetChain.of(body)` flattens the top-level `let` chain of a body (nested scopes stay inside their values);
`producer(e)` is the operator call a variable is bound to; `uses` counts each variable's occurrences in the
chain and its result. A rewrite replaces the value of a binding in place (`replace`), so every user of the variable
sees the new value, or inserts new bindings before one (`insert_before`); `body()` rebuilds the `let` chain.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..ir.expr import Attrs, Call, Constant, Expr, Let, Op, Tuple, Var
from ..ir.types import SymDim, TensorType
from ..ops.registry import OpPattern, get_op
from .fuse import _Uses

_names = itertools.count()


class LetChain:
    def __init__(self, bindings: list, result: Expr):
        self.bindings = list(bindings)
        self.result = result
        self.bound = {var: value for var, value in self.bindings}
        self._pending: dict = {}  # index -> bindings to insert before it
        self.uses = _Uses(self.body()).count

    @staticmethod
    def of(body: Expr) -> LetChain:
        bindings = []
        while isinstance(body, Let):
            bindings.append((body.var, body.value))
            body = body.body
        return LetChain(bindings, body)

    def body(self) -> Expr:
        out = self.result
        for var, value in reversed(self.bindings):
            out = Let(var, value, out)
        return out

    # ---- queries ---------------------------------------------------------------------------------------------
    def producer(self, e: Expr, op: str | tuple | None = None) -> Call | None:
        """The operator call `e` (a let variable) is bound to, when it calls `op` (a name or names)."""
        value = self.bound.get(e) if isinstance(e, Var) else None
        if not (isinstance(value, Call) and isinstance(value.op, Op)):
            return None
        if op is not None and value.op.name not in ((op,) if isinstance(op, str) else op):
            return None
        return value

    def used_only(self, var: Expr, times: int = 1) -> bool:
        return isinstance(var, Var) and var in self.bound and self.uses.get(var, 0) == times

    # ---- building --------------------------------------------------------------------------------------------
    def call(self, op_name: str, args: tuple, attrs: dict | None = None) -> Call:
        return Call(Op(op_name), tuple(args), Attrs.of(attrs or {}))

    def type_of(self, e: Expr):
        if isinstance(e, Constant):
            return TensorType(e.value.shape, e.value.dtype.name)
        return getattr(e, "type_annotation", None)  # None for a nested call (a chain not in ANF)

    def infer(self, call: Call):
        opdef = get_op(call.op.name)
        return opdef.infer([self.type_of(a) for a in call.args], opdef.full_attrs(call.attrs))

    def bind_before(self, index: int, call: Call, hint: str = "p", type_=None) -> Var:
        """A new variable bound to `call` just before binding `index` (its type inferred unless given)."""
        var = Var(f"{hint}_{next(_names)}", type_ or self.infer(call))
        self.bindings.insert(index, (var, call))
        self.bound[var] = call
        return var

    def replace(self, index: int, value: Expr) -> None:
        var, _ = self.bindings[index]
        self.bindings[index] = (var, value)
        self.bound[var] = value

    def recount(self) -> None:
        self.uses = _Uses(self.body()).count


def scalar_of(e: Expr) -> float | None:
    """The value of a float constant with one element (any rank), else None."""
    if isinstance(e, Constant) and e.value.size == 1 and e.value.dtype.kind == "f":
        return float(e.value.reshape(()))
    return None


def close(value: float | None, want: float, rtol: float = 1e-5) -> bool:
    return value is not None and abs(value - want) <= rtol * abs(want)


def row_constant(e: Expr, m) -> bool:
    """`e` is a float constant of `m` elements along the last axis (a per-feature gamma, beta or bias)."""
    return isinstance(e, Constant) and e.value.dtype.kind == "f" and e.value.ndim >= 1 and e.value.shape[-1] == m \
        and int(np.prod(e.value.shape[:-1])) == 1


def last_axis(attrs: Attrs, rank: int) -> bool:
    axis = attrs.get("axis")
    axes = axis if isinstance(axis, tuple) else (axis,)
    return len(axes) == 1 and axes[0] is not None and axes[0] % rank == rank - 1


# ---- the frontend's run-time shape arithmetic: concatenate((take(shape_of(y), [i]), const([c]), ...)) ----------
def const_1d(e: Expr, value: int | None = None) -> int | None:
    """The int of a 1-element 1-D constant (when it equals `value`, if given), else None."""
    if not isinstance(e, Constant) or e.value.shape != (1,) or e.value.dtype.kind not in "iu":
        return None
    v = int(e.value[0])
    return v if value is None or v == value else None


def concat_fields(chain: LetChain, e: Expr):
    """The fields of `e = concatenate(fields, axis=0)` (a let-bound tuple resolved), else None."""
    cat = chain.producer(e, "concatenate")
    if cat is None or cat.attrs.get("axis") != 0:
        return None
    fields = cat.args[0]
    fields = chain.bound.get(fields, fields) if isinstance(fields, Var) else fields
    return fields.fields if isinstance(fields, Tuple) else None


def shape_dim_source(chain: LetChain, e: Expr, axis: int | None = None):
    """(y, i) when `e` is take(shape_of(y), [i]) (and i == axis, if given); else None."""
    t = chain.producer(e, "take")
    i = const_1d(t.args[1]) if t is not None else None
    if i is None or (axis is not None and i != axis):
        return None
    s = chain.producer(t.args[0], "shape_of")
    return None if s is None else (s.args[0], i)


def dim_tokens(chain: LetChain, e: Expr, depth: int = 64):
    """Per-dim tokens of the run-time shape of tensor `e`: ints and symbolic dims of its type, else (var, axis) of
    the tensor the dim was read from through a ``dyn.reshape(., concatenate(take(shape_of(y), [i]), ...))``, or of
    the input of a shape-preserving operator (layer_norm, a unary elementwise operator, a broadcast one of one tensor
    and scalars). Two tensors whose tokens
    are equal have equal shapes. None when unknown."""
    if depth <= 0:
        return None
    memo = chain.__dict__.setdefault("_dim_tokens", {})  # a binding rewritten keeps its shape: entries stay valid
    if isinstance(e, Var) and e in memo:
        return memo[e]
    found = _dim_tokens(chain, e, depth)
    if isinstance(e, Var) and found is not None:
        memo[e] = found
    return found


def _dim_tokens(chain: LetChain, e: Expr, depth: int):
    r = chain.producer(e, "dyn.reshape")
    fields = concat_fields(chain, r.args[1]) if r is not None else None
    if fields is not None:
        out = [field_token(chain, f, depth - 1) for f in fields]
        return None if any(x is None for x in out) else tuple(out)
    p = chain.producer(e)
    if p is not None and p.args and (p.op.name == "layer_norm" or (
            len(p.args) == 1 and get_op(p.op.name).pattern == OpPattern.ELEMWISE)):
        return dim_tokens(chain, p.args[0], depth - 1)  # the shape of its input
    if p is not None and len(p.args) >= 2 and get_op(p.op.name).pattern in (OpPattern.ELEMWISE, OpPattern.BROADCAST):
        shaped = [x for x in p.args if not _scalar(chain, x)]
        if len(shaped) == 1:  # one tensor and scalars (a quantization's scale and zero point): the tensor's shape
            return dim_tokens(chain, shaped[0], depth - 1)
    if p is not None and len(p.args) == 2 and get_op(p.op.name).pattern in (OpPattern.ELEMWISE, OpPattern.BROADCAST):
        a, b = (dim_tokens(chain, x, depth - 1) for x in p.args)  # operands of one shape: that shape
        if a is not None and a == b:
            return a
    if p is not None and p.op.name == "reshape_like":
        return dim_tokens(chain, p.args[1], depth - 1)
    if p is not None and p.op.name == "take" and isinstance(p.args[0], Constant) and p.attrs.get("axis") == 0:
        rows = dim_tokens(chain, p.args[1], depth - 1)  # a table lookup: the indices' dims, then the row's
        return None if rows is None else rows + tuple(int(d) for d in p.args[0].value.shape[1:])
    t = chain.type_of(e)
    if not isinstance(t, TensorType):
        return None
    return tuple(d if isinstance(d, (int, SymDim)) else (e, k) for k, d in enumerate(t.shape))


def _scalar(chain: LetChain, e: Expr) -> bool:
    t = chain.type_of(e)
    return isinstance(t, TensorType) and not t.shape


def field_token(chain: LetChain, f: Expr, depth: int):
    """The dim token (see `dim_tokens`) of a 1-element shape field, else None."""
    c = const_1d(f)
    if c is not None:
        return c if c >= 0 else None
    t = chain.producer(f, "take")
    i = const_1d(t.args[1]) if t is not None else None
    if i is None or depth <= 0:
        return None
    s = chain.producer(t.args[0], "shape_of")
    if s is not None:
        sub = dim_tokens(chain, s.args[0], depth - 1)
        return sub[i] if sub is not None and 0 <= i < len(sub) else None
    fields = concat_fields(chain, t.args[0])  # a field of a shape built by concatenation
    if fields is None or not 0 <= i < len(fields) or any(chain.type_of(x) is None or
                                                       tuple(chain.type_of(x).shape) != (1,) for x in fields):
        return None
    return field_token(chain, fields[i], depth - 1)
