"""Types of the model IR: tensors with static, `Any` and symbolic dims; tuples, functions, type variables, ADTs.

Types are frozen dataclasses compared by value (two `TensorType((Any, 768), "float32")` are equal).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..errors import ShapeError, TypeError
from ..dtypes import EXTENDED_DTYPES, dtype_name


@dataclass(frozen=True)
class AnyDim:
    """An unknown dimension: compatible with every dimension, known only at run time."""

    def __repr__(self) -> str:
        return "?"


Any = AnyDim()


@dataclass(frozen=True)
class SymDim:
    """A named symbolic dimension `n`: unknown, but the same wherever the same name appears in one signature."""

    name: str

    def __repr__(self) -> str:
        return self.name


Dim = int | AnyDim | SymDim

DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "bool") + tuple(EXTENDED_DTYPES)


def as_dim(value) -> Dim:
    """Turn an int, `Any`, None (= Any) or a name (= symbolic dim) into a dimension."""
    if value is None or isinstance(value, AnyDim):
        return Any
    if isinstance(value, SymDim):
        return value
    if isinstance(value, str):
        return SymDim(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 0:
            raise ShapeError(f"dimension must be >= 0, got {value}")
        return int(value)
    raise ShapeError(f"dimension must be an int, Any or a name, got {value!r}")


def as_dtype(dtype) -> str:
    """Canonical dtype name ('float32', 'int64', 'bool', ...)."""
    name = dtype_name(dtype)
    if name not in DTYPES:
        raise TypeError(f"dtype must be one of {DTYPES}, got {name!r}")
    return name


class Type:
    """Base class of every type."""


@dataclass(frozen=True)
class TensorType(Type):
    """A tensor of `dtype` whose shape is a tuple of dims (ints, `Any` or symbolic names)."""

    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(as_dim(d) for d in self.shape))
        object.__setattr__(self, "dtype", as_dtype(self.dtype))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def __repr__(self) -> str:
        dims = ", ".join(repr(d) for d in self.shape)
        if len(self.shape) == 1:
            dims += ","
        return f"Tensor[({dims}), {self.dtype}]"


@dataclass(frozen=True)
class TupleType(Type):
    """A tuple of values of the given field types."""

    fields: tuple

    def __post_init__(self):
        object.__setattr__(self, "fields", tuple(self.fields))

    def __repr__(self) -> str:
        return "(" + ", ".join(repr(f) for f in self.fields) + ("," if len(self.fields) == 1 else "") + ")"


@dataclass(frozen=True)
class TypeVar(Type):
    """A type parameter of a polymorphic function or ADT (`a` in `List[a]`)."""

    name: str

    def __repr__(self) -> str:
        return self.name


_incomplete_ids = itertools.count()


@dataclass(frozen=True)
class IncompleteType(Type):
    """A type not yet known during inference (a unification variable)."""

    id: int = field(default_factory=lambda: next(_incomplete_ids))

    def __repr__(self) -> str:
        return f"?t{self.id}"


@dataclass(frozen=True)
class FuncType(Type):
    """`fn[type_params](arg_types) -> ret_type`."""

    arg_types: tuple
    ret_type: Type
    type_params: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "arg_types", tuple(self.arg_types))
        object.__setattr__(self, "type_params", tuple(self.type_params))

    def __repr__(self) -> str:
        params = f"[{', '.join(map(repr, self.type_params))}]" if self.type_params else ""
        return f"fn{params}({', '.join(map(repr, self.arg_types))}) -> {self.ret_type!r}"


@dataclass(frozen=True)
class ADTType(Type):
    """An algebraic data type applied to type arguments: `List[Tensor[(?, 4), float32]]`."""

    name: str
    args: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "args", tuple(self.args))

    def __repr__(self) -> str:
        return self.name + (f"[{', '.join(map(repr, self.args))}]" if self.args else "")


def scalar_type(dtype: str = "float32") -> TensorType:
    """A rank-0 tensor type."""
    return TensorType((), dtype)


def walk_types(t: Type):
    """``t`` and every type inside it (tuple fields, function arguments and result, ADT arguments), pre-order."""
    yield t
    if isinstance(t, TupleType):
        inner = t.fields
    elif isinstance(t, FuncType):
        inner = (*t.arg_types, t.ret_type)
    elif isinstance(t, ADTType):
        inner = t.args
    else:
        return
    for u in inner:
        yield from walk_types(u)


def free_type_vars(t: Type) -> list[TypeVar]:
    """Type variables that occur in `t`, in first-occurrence order."""
    return list(dict.fromkeys(u for u in walk_types(t) if isinstance(u, TypeVar)))


def substitute(t: Type, type_map: dict, dim_map: dict | None = None) -> Type:
    """Replace type variables (keys of `type_map`) and symbolic dims (keys of `dim_map`) inside `t`."""
    dim_map = dim_map or {}
    if isinstance(t, TypeVar):
        return type_map.get(t, t)
    if isinstance(t, TensorType):
        if not dim_map:
            return t
        return TensorType(tuple(dim_map.get(d, d) if isinstance(d, SymDim) else d for d in t.shape), t.dtype)
    if isinstance(t, TupleType):
        return TupleType(tuple(substitute(f, type_map, dim_map) for f in t.fields))
    if isinstance(t, FuncType):
        inner = {k: v for k, v in type_map.items() if k not in t.type_params}
        return FuncType(
            tuple(substitute(a, inner, dim_map) for a in t.arg_types),
            substitute(t.ret_type, inner, dim_map),
            t.type_params,
        )
    if isinstance(t, ADTType):
        return ADTType(t.name, tuple(substitute(a, type_map, dim_map) for a in t.args))
    return t


def sym_dims(t: Type) -> list[SymDim]:
    """Symbolic dims that occur in `t`, in first-occurrence order."""
    return list(dict.fromkeys(d for u in walk_types(t) if isinstance(u, TensorType)
                              for d in u.shape if isinstance(d, SymDim)))
