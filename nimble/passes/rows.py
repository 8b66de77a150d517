"""Fold batch dims into rows: keep row-wise work on (rows, features) tensors, as a model built in Python does.

The ONNX frontend lowers an N-D MatMul with a constant weight to ``reshape(a, (-1, k))``, a 2-D ``dense`` and a
reshape back. Reshapes are copies in the VM, and a bias, activation or residual add after the reshape back cannot
join the dense kernel's epilogue. This pass moves those reshapes down through row-wise operators:

* ``reshape(reshape(x, s1), s2)`` -> ``reshape(x, s2)``; ``reshape(x, (-1, m))`` of a 2-D (?, m) x -> x; the same
  ``reshape(x, newshape)`` twice -> once;
* ``f(reshape(z, s))`` for an elementwise ``f``, ``layer_norm`` over the last axis, or a broadcast binary operator
  whose other operand is a per-feature constant, a scalar, or a tensor of the same leading dims -> ``reshape(f(z, ...), s)``,
  where z is 2-D with the same last dim; the same for an elementwise or broadcast operator of one such tensor and
  scalars (``quantize_linear`` with a per-tensor scale and zero point);
* ``sum / max / min / prod(reshape(z, s))`` over every axis (keepdims off) -> the same of z.

Leading dims are "the same" when they are provably equal (equal ints, the same symbolic dim, the same dim of one
tensor read through the frontend's ``dyn.reshape(., concatenate(take(shape_of(y), [i]), ...))``), or differ at one
position while every other leading dim is a static 1 (broadcasting there is the same on rows). The result keeps
the type of the value it replaces. ``fold_rows(mod)`` rewrites each function's top-level let chain.
"""
from __future__ import annotations

import numpy as np

from ..ir.expr import Call, Constant, Function, Op, Tuple, Var
from ..ir.module import IRModule
from ..ir.types import SymDim, TensorType
from ..ir.visitor import substitute_vars
from ..ops.registry import OpPattern, get_op
from .fold import eliminate_dead_code
from .let_chain import LetChain, concat_fields, dim_tokens, field_token, last_axis

RESHAPES = ("reshape", "dyn.reshape")
BINARY = ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum")
WHOLE_REDUCTIONS = ("sum", "max", "min", "prod")


def _same_dim(a, b) -> bool:
    return (isinstance(a, int) and a == b) or (isinstance(a, SymDim) and a == b)


def _rows_compatible(t1, t2) -> int | None:
    """How many leading positions of two same-rank tensor types are not provably equal (0 or 1), else None."""
    if not (isinstance(t1, TensorType) and isinstance(t2, TensorType)) or len(t1.shape) != len(t2.shape):
        return None
    if not isinstance(t1.shape[-1], int) or t1.shape[-1] != t2.shape[-1]:
        return None
    lead = list(zip(t1.shape[:-1], t2.shape[:-1]))
    differ = [i for i, (a, b) in enumerate(lead) if not _same_dim(a, b)]
    if not differ:
        return 0
    if len(differ) == 1 and all(a == 1 and b == 1 for i, (a, b) in enumerate(lead) if i != differ[0]):
        return 1
    return None


class _Rows:
    def __init__(self, chain: LetChain):
        self.chain = chain
        self.subst: dict = {}
        self.reshapes: dict = {}  # (id of input, newshape) -> var of the first such reshape

    def resolve(self, e):
        while isinstance(e, Var) and e in self.subst:
            e = self.subst[e]
        return e

    def view(self, e):
        """(z, reshape call) when `e` is a reshape of a 2-D (?, m) tensor z to a type ending in m."""
        r = self.chain.producer(e, RESHAPES)
        if r is None:
            return None
        z, zt, et = r.args[0], self.chain.type_of(r.args[0]), self.chain.type_of(e)
        if not (isinstance(zt, TensorType) and len(zt.shape) == 2 and isinstance(zt.shape[1], int)):
            return None
        if not isinstance(et, TensorType) or len(et.shape) < 2 or et.shape[-1] != zt.shape[1]:
            return None
        return z, r

    def out_reshape(self, index: int, new_call: Call, r: Call, var_type, hint: str) -> Call:
        """Bind `new_call` (2-D) before `index` (the binding rewritten moves to index + 1); the reshape of it back
        to `var_type` (static when it can be)."""
        new = self.chain.bind_before(index, new_call, hint)
        shape = var_type.shape
        if sum(not isinstance(d, int) for d in shape) <= 1:
            return self.chain.call("reshape", (new,), {"newshape": tuple(d if isinstance(d, int) else -1
                                                                          for d in shape)})
        return Call(r.op, (new,) + r.args[1:], r.attrs)

    def rows_of(self, index: int, e, m: int):
        """`e` (a tensor with last dim m) as 2-D rows, binding a reshape before `index` when needed."""
        v = self.view(e)
        if v is not None:
            return v[0], 0
        key = (e.id if isinstance(e, Var) else id(e), (-1, m))
        if key not in self.reshapes:
            self.reshapes[key] = self.chain.bind_before(index, self.chain.call("reshape", (e,), {"newshape": (-1, m)}),
                                                        "rows")
            return self.reshapes[key], 1
        return self.reshapes[key], 0

    def step(self, index: int) -> int:
        """Rewrite binding `index`; the number of bindings inserted before it."""
        chain = self.chain
        var, value = chain.bindings[index]
        if not (isinstance(value, Call) and isinstance(value.op, Op)):
            return 0
        args = tuple(self.resolve(a) for a in value.args)
        if args != value.args:
            value = Call(value.op, args, value.attrs)
            chain.replace(index, value)
        op, vt = value.op.name, var.type_annotation
        if op in RESHAPES:
            inner = chain.producer(args[0], RESHAPES)
            if inner is not None:  # a reshape of a reshape
                value = Call(value.op, (inner.args[0],) + args[1:], value.attrs)
                chain.replace(index, value)
            x = value.args[0]
            xt = chain.type_of(x)
            if op == "reshape" and isinstance(xt, TensorType) and len(xt.shape) == 2 and tuple(
                    value.attrs["newshape"]) == (-1, xt.shape[1]):
                self.subst[var] = x
                return 0
            if op == "reshape":
                key = (x.id if isinstance(x, Var) else id(x), tuple(value.attrs["newshape"]))
                if key in self.reshapes:
                    self.subst[var] = self.reshapes[key]
                else:
                    self.reshapes[key] = var
            return 0
        if op == "shape_of" and self._exact_shape(args[0]) is not None:
            self.subst[var] = self._exact_shape(args[0])
            return 0
        if op in WHOLE_REDUCTIONS and value.attrs.get("axis") is None and not value.attrs.get("keepdims"):
            r = chain.producer(args[0], RESHAPES)  # a reduction of every element: the same over the rows
            if r is not None and self._rows(r.args[0]):
                chain.replace(index, chain.call(op, (r.args[0],), value.attrs.as_dict()))
            return 0
        if not isinstance(vt, TensorType) or not vt.shape:
            return 0
        opdef = get_op(op)
        shaped = [k for k, a in enumerate(args) if not self._scalar(a)]
        if opdef.pattern in (OpPattern.ELEMWISE, OpPattern.BROADCAST) and len(shaped) == 1:
            # one tensor, any others scalars (a quantization's scale and zero point): it commutes with a reshape
            r = chain.producer(args[shaped[0]], RESHAPES)
            if r is None or not self._rows(r.args[0]):
                return 0
            new_args = args[:shaped[0]] + (r.args[0],) + args[shaped[0] + 1:]
            new_call = chain.call(op, new_args, value.attrs.as_dict())
            chain.replace(index + 1, self.out_reshape(index, new_call, r, vt, op.replace(".", "_")))
            return 1
        if not isinstance(vt.shape[-1], int):
            return 0
        m = vt.shape[-1]
        if op == "layer_norm" and last_axis(value.attrs, len(vt.shape)):
            v = self.view(args[0])
            if v is None:
                return 0
            new_call = chain.call(op, (v[0],) + args[1:], {**value.attrs.as_dict(), "axis": -1})
            chain.replace(index + 1, self.out_reshape(index, new_call, v[1], vt, "layer_norm"))
            return 1
        if op in BINARY and len(args) == 2:
            return self._binary(index, var, value, args, vt, m)
        return 0

    def _rows(self, e) -> bool:
        t = self.chain.type_of(e)
        return isinstance(t, TensorType) and len(t.shape) == 2

    def _scalar(self, e) -> bool:
        t = self.chain.type_of(e)
        return isinstance(t, TensorType) and not t.shape

    def _same_target(self, r1: Call, r2: Call) -> bool:
        """Two reshapes to the same shape: equal static newshapes without -1, or the same shape tensor value."""
        if r1.op.name == r2.op.name == "reshape":
            return tuple(r1.attrs["newshape"]) == tuple(r2.attrs["newshape"]) and -1 not in r1.attrs["newshape"]
        return r1.op.name == r2.op.name == "dyn.reshape" and self._same_value(r1.args[1], r2.args[1], 8)

    def _same_value(self, a, b, depth: int) -> bool:
        """`a` and `b` compute the same value: the same variable, equal constants, or the same pure call of
        same values (every operator is pure)."""
        if a is b:
            return True
        if isinstance(a, Constant) and isinstance(b, Constant):
            return a.value.dtype == b.value.dtype and np.array_equal(a.value, b.value)
        if isinstance(a, Tuple) and isinstance(b, Tuple):
            return len(a.fields) == len(b.fields) and all(self._same_value(x, y, depth) for x, y in
                                                          zip(a.fields, b.fields))
        pa, pb = self.chain.producer(a), self.chain.producer(b)
        if depth <= 0 or pa is None or pb is None or pa.op.name != pb.op.name or pa.attrs != pb.attrs:
            return False
        return len(pa.args) == len(pb.args) and all(self._same_value(x, y, depth - 1) for x, y in
                                                    zip(pa.args, pb.args))

    def _same_shape(self, a, b) -> bool:
        """`a` and `b` have equal run-time shapes, read from the same dims (``let_chain.dim_tokens``)."""
        ta, tb = dim_tokens(self.chain, a), dim_tokens(self.chain, b)
        return ta is not None and ta == tb

    def _exact_shape(self, e):
        """The shape tensor of `e = dyn.reshape(z, shape)` when `shape` holds no -1 (a concatenation of run-time
        dims and constants >= 0, as the frontend builds), else None."""
        r = self.chain.producer(e, "dyn.reshape")
        fields = concat_fields(self.chain, r.args[1]) if r is not None else None
        if fields is None:
            return None
        for f in fields:
            if isinstance(f, Constant):
                if f.value.ndim != 1 or (f.value < 0).any():
                    return None
            elif self.chain.producer(self.chain.producer(f, "take").args[0] if self.chain.producer(f, "take")
                                     else None, "shape_of") is None and field_token(self.chain, f, 64) is None:
                return None
        st = self.chain.type_of(r.args[1])
        return r.args[1] if isinstance(st, TensorType) and st.dtype == "int64" else None

    def _binary(self, index, var, value, args, vt, m) -> int:
        chain = self.chain
        views = [self.view(a) for a in args]
        side = 0 if views[0] is not None else 1 if views[1] is not None else None
        if side is None:
            return 0
        other = args[1 - side]
        if isinstance(other, Constant):
            c = other.value
            if c.ndim > len(vt.shape) or c.ndim > 1 and int(c.size) != c.shape[-1] or c.ndim >= 1 and c.shape[-1] \
                    not in (1, m):
                return 0  # a constant that adds dims, or varies along a leading dim
            other_rows, added = (Constant(c.reshape(c.shape[-1:])) if c.ndim else other), 0
        elif isinstance(chain.type_of(other), TensorType) and not chain.type_of(other).shape:
            other_rows, added = other, 0  # a run-time scalar (a quantization scale) broadcasts the same on rows
        else:
            if _rows_compatible(chain.type_of(args[side]), chain.type_of(other)) is None and not (
                    views[1 - side] is not None and self._same_target(views[side][1], views[1 - side][1])) and not (
                    self._same_shape(args[side], other)):
                return 0
            other_rows, added = self.rows_of(index, other, m)
            index += added
        z = views[side][0]
        new_args = (z, other_rows) if side == 0 else (other_rows, z)
        new_call = chain.call(value.op.name, new_args, value.attrs.as_dict())
        chain.replace(index + 1, self.out_reshape(index, new_call, views[side][1], vt, value.op.name))
        return added + 1


def fold_rows(mod: IRModule) -> IRModule:
    """`mod` with reshapes around row-wise operators moved out of the way (see the module docstring)."""
    out = IRModule(dict(mod.functions), dict(mod.type_defs))
    changed = False
    for name, func in mod.functions.items():
        chain = LetChain.of(func.body)
        rows = _Rows(chain)
        index = 0
        while index < len(chain.bindings):
            index += 1 + rows.step(index)
        if rows.subst or len(chain.bindings) != len(LetChain.of(func.body).bindings):
            chain.bindings = [(v, e) for v, e in chain.bindings if v not in rows.subst]  # replaced by others
            body = substitute_vars(chain.body(), {v: rows.resolve(v) for v in rows.subst})
            out.functions[name] = Function(func.params, body, func.ret_type, func.type_params)
            changed = True
    return eliminate_dead_code(out) if changed else mod
