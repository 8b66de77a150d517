"""Checks and dim arithmetic shared by the operators' type relations.

Messages name the operator and argument, the expected and the actual value, e.g.
"dense: x has 512 columns, weight expects 768".
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, TypeError
from ..ir.types import AnyDim, SymDim, TensorType, TupleType, Type

Any = AnyDim()

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")  # float8 / float4: data movement and casts only
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def tensor_arg(op: str, name: str, t: Type, dtypes: tuple | None = None) -> TensorType:
    """`t` as a tensor type; raises when it is not a tensor or its dtype is not in `dtypes`."""
    if not isinstance(t, TensorType):
        raise TypeError(f"{op}: {name} must be a tensor, got {t!r}")
    if dtypes is not None and t.dtype not in dtypes:
        raise TypeError(f"{op}: {name} must have dtype in {dtypes}, got {t.dtype}")
    return t


def tuple_arg(op: str, name: str, t: Type) -> list[TensorType]:
    if not isinstance(t, TupleType) or not t.fields:
        raise TypeError(f"{op}: {name} must be a non-empty tuple of tensors, got {t!r}")
    return [tensor_arg(op, f"{name} field {i}", f) for i, f in enumerate(t.fields)]


def same_dtype(op: str, *named: tuple[str, TensorType]) -> str:
    first_name, first = named[0]
    for name, t in named[1:]:
        if t.dtype != first.dtype:
            raise TypeError(f"{op}: {first_name} is {first.dtype}, {name} is {t.dtype}; they must match")
    return first.dtype


def rank_at_least(op: str, name: str, t: TensorType, rank: int):
    if t.ndim < rank:
        raise ShapeError(f"{op}: {name} must have rank >= {rank}, got {t!r}")


def rank_is(op: str, name: str, t: TensorType, rank: int):
    if t.ndim != rank:
        raise ShapeError(f"{op}: {name} must have rank {rank}, got {t!r}")


def normalize_axis(op: str, axis: int, ndim: int, name: str = "axis") -> int:
    """`axis` in `0..ndim-1` (negative counts from the end)."""
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: {name} {axis} is out of range for rank {ndim}")
    return int(axis) % ndim


def normalize_axes(op: str, axis, ndim: int) -> tuple:
    """None -> every axis; an int or a tuple -> sorted distinct axes in `0..ndim-1`."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = sorted({normalize_axis(op, a, ndim) for a in axes})
    if len(out) != len(axes):
        raise ShapeError(f"{op}: axis {axis} repeats an axis")
    return tuple(out)


def dims_equal(op: str, a, b, message: str):
    """Raise `op: message` (formatted with `a` and `b`) when two dims are static and differ.

    `Any` and symbolic dims pass: they are checked at run time.
    """
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise ShapeError(f"{op}: " + message.format(a=a, b=b))


def meet_dim(a, b):
    """Of two dims that must be equal, the more specific one."""
    if isinstance(a, int):
        return a
    if isinstance(b, int):
        return b
    return a if isinstance(a, SymDim) else b


def broadcast_dim(x, y):
    """numpy broadcasting of two dims; None when both are static and incompatible."""
    if x == y:
        return x
    if x == 1:
        return y
    if y == 1:
        return x
    if isinstance(x, int) and isinstance(y, int):
        return None
    if isinstance(x, int):  # x > 1: y (Any or a name) must be 1 or x
        return x
    if isinstance(y, int):
        return y
    return Any


def broadcast_shapes(op: str, *named: tuple[str, TensorType]) -> tuple:
    """The broadcast shape of several tensors, numpy rules, `Any` where unknown."""
    out: tuple = ()
    out_name = named[0][0]
    for name, t in named:
        ndim = max(len(out), t.ndim)
        a = (1,) * (ndim - len(out)) + tuple(out)
        b = (1,) * (ndim - t.ndim) + t.shape
        dims = []
        for axis, (x, y) in enumerate(zip(a, b)):
            d = broadcast_dim(x, y)
            if d is None:
                raise ShapeError(
                    f"{op}: cannot broadcast {out_name} {_shape_str(a)} with {name} {_shape_str(b)}: "
                    f"dim {x} vs {y} at axis {axis}"
                )
            dims.append(d)
        out = tuple(dims)
    return out


def _shape_str(shape) -> str:
    return "(" + ", ".join(repr(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def static_int(op: str, name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    return int(value)


def int_pair(op: str, name: str, value) -> tuple:
    """An int or a pair of ints as a pair (strides, dilation, pool sizes)."""
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, (int, np.integer)) for v in value):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return value


def padding4(op: str, value) -> tuple:
    """Padding as (top, left, bottom, right) from an int, (h, w) or (top, left, bottom, right)."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * 4
    value = tuple(int(v) for v in value)
    if len(value) == 2:
        return value + value
    if len(value) == 4:
        return value
    raise TypeError(f"{op}: padding must be an int, (h, w) or (top, left, bottom, right), got {value!r}")


def shape_of(array_or_shape) -> np.ndarray:
    """An int64 shape array."""
    return np.asarray(array_or_shape, dtype=np.int64)
