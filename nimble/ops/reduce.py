"""Reductions over axes: sum, mean, max, min, prod, argmax."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from .registry import OpPattern, register
from .relations import FLOAT_DTYPES, normalize_axes, tensor_arg


def reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_rel(name, dtypes, out_dtype=None):
    def rel(x, axis, keepdims):
        x = tensor_arg(name, "x", x, dtypes)
        axes = normalize_axes(name, axis, x.ndim)
        return TensorType(reduced_shape(x.shape, axes, keepdims), out_dtype or x.dtype)

    return rel


def _reduce_shape(name):
    def shape_func(x, axis, keepdims):
        axes = normalize_axes(name, axis, len(x))
        return [np.array(reduced_shape(tuple(int(d) for d in x), axes, keepdims), dtype=np.int64)]

    return shape_func


def _reduce_ref(fn):
    def run(x, axis, keepdims):
        axes = None if axis is None else (axis if isinstance(axis, int) else tuple(axis))
        return np.asarray(fn(x, axis=axes, keepdims=keepdims)).astype(x.dtype, copy=False)

    return run


def _mean(x, axis, keepdims):
    return np.mean(x.astype(np.float64), axis=axis, keepdims=keepdims)


# name -> (reference, dtypes allowed, doc)
REDUCTIONS = {
    "sum": (np.sum, None, "sum"),
    "mean": (_mean, FLOAT_DTYPES, "mean"),
    "max": (np.max, None, "maximum"),
    "min": (np.min, None, "minimum"),
    "prod": (np.prod, None, "product"),
}

_builders = {
    name: register(
        name, args=("x",), attrs={"axis": None, "keepdims": False}, type_rel=_reduce_rel(name, dtypes),
        shape_func=_reduce_shape(name), reference=_reduce_ref(fn), pattern=OpPattern.COMM_REDUCE,
        doc=f"The {doc} over axis (None: all axes; an int or a tuple), keeping reduced axes as 1 with keepdims.",
    )
    for name, (fn, dtypes, doc) in REDUCTIONS.items()
}
sum = _builders["sum"]  # noqa: A001
mean = _builders["mean"]
max = _builders["max"]  # noqa: A001
min = _builders["min"]  # noqa: A001
prod = _builders["prod"]


def _argmax_rel(x, axis, keepdims):
    x = tensor_arg("argmax", "x", x)
    if axis is not None and not isinstance(axis, int):
        raise ShapeError(f"argmax: axis must be None or one int, got {axis!r}")
    return _reduce_rel("argmax", None, "int64")(x, axis, keepdims)


def _argmax_ref(x, axis, keepdims):
    return np.asarray(np.argmax(x, axis=axis, keepdims=keepdims), dtype=np.int64)


argmax = register(
    "argmax", args=("x",), attrs={"axis": None, "keepdims": False}, type_rel=_argmax_rel,
    shape_func=_reduce_shape("argmax"), reference=_argmax_ref, pattern=OpPattern.COMM_REDUCE,
    doc="int64 index of the first maximum along axis (None: of the flattened tensor).",
)
