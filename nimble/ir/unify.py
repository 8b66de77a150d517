"""Unification of types with `Any`, symbolic dims and inference variables.

Two ways to combine types:
- `unify(a, b)`: a and b describe the *same* value (an argument and the parameter it is passed to). `Any` meets
  anything and yields the other side, static dims must agree, a bindable symbolic dim binds once.
- `join(a, b)`: the value is *either* a or b (the branches of an `if` or `match`). Dims that differ become `Any`;
  static dims that differ are an error, as in Relay.
"""
from __future__ import annotations

import itertools

from ..errors import ShapeError, TypeError
from .types import ADTType, AnyDim, FuncType, IncompleteType, SymDim, TensorType, TupleType, Type, TypeVar

_fresh = itertools.count()


class Unifier:
    """Solves inference variables (`IncompleteType`) and call-site symbolic dims; one per type-checking run."""

    def __init__(self):
        self.solved: dict[IncompleteType, Type] = {}
        self.dims: dict[SymDim, object] = {}  # bindable dim -> bound dim, or None while unbound

    # ---- fresh variables ---------------------------------------------------------------------------------
    def fresh_dim(self, sym: SymDim) -> SymDim:
        """A bindable copy of `sym`, for one call of a function whose signature mentions `sym`."""
        dim = SymDim(f"{sym.name}'{next(_fresh)}")
        self.dims[dim] = None
        return dim

    # ---- resolution --------------------------------------------------------------------------------------
    def resolve_dim(self, d):
        while isinstance(d, SymDim) and d in self.dims:
            bound = self.dims[d]
            if bound is None:
                return d
            d = bound
        return d

    def _shallow(self, t: Type) -> Type:
        while isinstance(t, IncompleteType) and t in self.solved:
            t = self.solved[t]
        return t

    def resolve(self, t: Type, finalize: bool = False) -> Type:
        """`t` with solved variables replaced; with `finalize`, unbound call-site dims become `Any`."""
        if isinstance(t, IncompleteType):
            if t in self.solved:
                return self.resolve(self.solved[t], finalize)
            return t
        if isinstance(t, TensorType):
            shape = tuple(self.resolve_dim(d) for d in t.shape)
            if finalize:
                shape = tuple(AnyDim() if isinstance(d, SymDim) and d in self.dims else d for d in shape)
            return TensorType(shape, t.dtype)
        if isinstance(t, TupleType):
            return TupleType(tuple(self.resolve(f, finalize) for f in t.fields))
        if isinstance(t, FuncType):
            return FuncType(
                tuple(self.resolve(a, finalize) for a in t.arg_types), self.resolve(t.ret_type, finalize), t.type_params
            )
        if isinstance(t, ADTType):
            return ADTType(t.name, tuple(self.resolve(a, finalize) for a in t.args))
        return t

    # ---- unify -------------------------------------------------------------------------------------------
    def unify(self, a: Type, b: Type, where: str = "") -> Type:
        """The most specific type that is both `a` and `b`; raises naming `where` when there is none."""
        a, b = self._shallow(a), self._shallow(b)
        if isinstance(a, IncompleteType) or isinstance(b, IncompleteType):
            return self._bind(a, b)
        if isinstance(a, TensorType) and isinstance(b, TensorType):
            _check_tensor_kind(a, b, where)
            dims = tuple(self.unify_dim(x, y, where, i) for i, (x, y) in enumerate(zip(a.shape, b.shape)))
            return TensorType(dims, a.dtype)
        if isinstance(a, TupleType) and isinstance(b, TupleType):
            if len(a.fields) != len(b.fields):
                raise TypeError(f"{where}: expected a tuple of {len(a.fields)} fields, got {len(b.fields)}")
            pairs = enumerate(zip(a.fields, b.fields))
            return TupleType(tuple(self.unify(x, y, f"{where}.{i}") for i, (x, y) in pairs))
        if isinstance(a, FuncType) and isinstance(b, FuncType):
            if len(a.arg_types) != len(b.arg_types):
                raise TypeError(f"{where}: expected a function of {len(a.arg_types)} arguments, got {len(b.arg_types)}")
            pairs = enumerate(zip(a.arg_types, b.arg_types))
            args = tuple(self.unify(x, y, f"{where} argument {i}") for i, (x, y) in pairs)
            return FuncType(args, self.unify(a.ret_type, b.ret_type, f"{where} result"))
        if isinstance(a, ADTType) and isinstance(b, ADTType) and a.name == b.name and len(a.args) == len(b.args):
            pairs = enumerate(zip(a.args, b.args))
            return ADTType(a.name, tuple(self.unify(x, y, f"{where}[{i}]") for i, (x, y) in pairs))
        if isinstance(a, TypeVar) and a == b:
            return a
        raise TypeError(f"{where}: expected {a!r}, got {b!r}")

    def unify_dim(self, x, y, where: str = "", axis: int | None = None):
        x0, y0 = x, y
        x, y = self.resolve_dim(x), self.resolve_dim(y)
        if x == y:
            return x
        for bindable, other in ((x, y), (y, x)):
            if isinstance(bindable, SymDim) and bindable in self.dims:
                if not isinstance(other, AnyDim):  # Any tells nothing: the dim stays free to bind once
                    self.dims[bindable] = other
                return other
        if isinstance(x, AnyDim):
            return y
        if isinstance(y, AnyDim):
            return x
        if isinstance(x, int) and isinstance(y, int):
            at = f" at axis {axis}" if axis is not None else ""
            for name, bound, got in ((x0, x, y), (y0, y, x)):
                if isinstance(name, SymDim) and name in self.dims:
                    base = name.name.split("'")[0]
                    raise ShapeError(f"{where}: symbolic dim {base}{at} is already bound to {bound}, got {got}")
            raise ShapeError(f"{where}: expected dim {x}{at}, got {y}")
        # A rigid symbolic dim meets a static one (or another name): they must be equal at run time.
        return y if isinstance(y, int) else x

    def _bind(self, a: Type, b: Type) -> Type:
        if isinstance(a, IncompleteType):
            var, other = a, b
        else:
            var, other = b, a
        if var != other:
            if _occurs(var, other):
                raise TypeError(f"type {var!r} would contain itself: {other!r}")
            self.solved[var] = other
        return other

    # ---- join --------------------------------------------------------------------------------------------
    def join(self, a: Type, b: Type, where: str = "") -> Type:
        """The type of a value that is either an `a` or a `b`."""
        a, b = self.resolve(a), self.resolve(b)
        if isinstance(a, IncompleteType) or isinstance(b, IncompleteType):
            return self._bind(a, b)
        if isinstance(a, TensorType) and isinstance(b, TensorType):
            _check_tensor_kind(a, b, where)
            dims = []
            for i, (x, y) in enumerate(zip(a.shape, b.shape)):
                if x == y:
                    dims.append(x)
                elif isinstance(x, int) and isinstance(y, int):
                    raise ShapeError(f"{where}: one branch has dim {x} at axis {i}, the other {y}")
                else:
                    dims.append(AnyDim())
            return TensorType(tuple(dims), a.dtype)
        if isinstance(a, TupleType) and isinstance(b, TupleType) and len(a.fields) == len(b.fields):
            return TupleType(tuple(self.join(x, y, f"{where}.{i}") for i, (x, y) in enumerate(zip(a.fields, b.fields))))
        if isinstance(a, ADTType) and isinstance(b, ADTType) and a.name == b.name and len(a.args) == len(b.args):
            return ADTType(a.name, tuple(self.join(x, y, where) for x, y in zip(a.args, b.args)))
        return self.unify(a, b, where)


def _check_tensor_kind(a: TensorType, b: TensorType, where: str):
    if a.dtype != b.dtype:
        raise TypeError(f"{where}: expected dtype {a.dtype}, got {b.dtype}")
    if a.ndim != b.ndim:
        raise ShapeError(f"{where}: expected rank {a.ndim} {a!r}, got rank {b.ndim} {b!r}")


def _occurs(var: IncompleteType, t: Type) -> bool:
    if t == var:
        return True
    if isinstance(t, TupleType):
        return any(_occurs(var, f) for f in t.fields)
    if isinstance(t, FuncType):
        return any(_occurs(var, a) for a in t.arg_types) or _occurs(var, t.ret_type)
    if isinstance(t, ADTType):
        return any(_occurs(var, a) for a in t.args)
    return False
