"""Operators that make tensors or read shapes: zeros, ones, full (static or runtime shape), arange, nonzero,
shape_of."""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir.expr import Expr
from ..ir.types import AnyDim, TensorType
from .registry import REQUIRED, OpPattern, ShapeFuncKind, register
from .relations import INT_DTYPES, normalize_axis, rank_at_least, rank_is, tensor_arg

Any = AnyDim()


def _shape_tensor_rank(op: str, shape) -> int:
    shape = tensor_arg(op, "shape", shape, INT_DTYPES)
    rank_is(op, "shape", shape, 1)
    if not isinstance(shape.shape[0], int):
        raise ShapeError(f"{op}: a runtime shape must have a static length (the output rank)")
    return shape.shape[0]


def _fill_static(name, value):
    return register(
        name, args=(), attrs={"shape": REQUIRED, "dtype": "float32"},
        type_rel=lambda shape, dtype: TensorType(tuple(shape), dtype),
        shape_func=lambda shape, dtype: [np.array(shape, dtype=np.int64)],
        reference=lambda shape, dtype: np.full(tuple(shape), value, dtype=dtype), pattern=OpPattern.ELEMWISE,
        doc=f"A tensor of {value}s of a static shape.",
    )


def _fill_dynamic(name, value):
    return register(
        f"dyn.{name}", args=("shape",), attrs={"dtype": "float32"},
        type_rel=lambda shape, dtype: TensorType((Any,) * _shape_tensor_rank(name, shape), dtype),
        shape_func=lambda shape, dtype: [np.array(shape, dtype=np.int64)],
        shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(0,),
        reference=lambda shape, dtype: np.full(tuple(int(d) for d in shape), value, dtype=dtype),
        pattern=OpPattern.ELEMWISE, doc=f"A tensor of {value}s whose shape is a runtime int tensor.",
    )


_zeros_static, _zeros_dynamic = _fill_static("zeros", 0), _fill_dynamic("zeros", 0)
_ones_static, _ones_dynamic = _fill_static("ones", 1), _fill_dynamic("ones", 1)


def zeros(shape, dtype: str = "float32"):
    """Zeros of a static shape (a tuple) or of a runtime shape (an int tensor expression)."""
    if isinstance(shape, Expr):
        return _zeros_dynamic(shape, dtype=dtype)
    return _zeros_static(shape=tuple(shape), dtype=dtype)


def ones(shape, dtype: str = "float32"):
    """Ones of a static shape (a tuple) or of a runtime shape (an int tensor expression)."""
    if isinstance(shape, Expr):
        return _ones_dynamic(shape, dtype=dtype)
    return _ones_static(shape=tuple(shape), dtype=dtype)


def _full_rel(fill_value, shape):
    fill_value = tensor_arg("full", "fill_value", fill_value)
    rank_is("full", "fill_value", fill_value, 0)
    return TensorType(tuple(shape), fill_value.dtype)


_full_static = register(
    "full", args=("fill_value",), attrs={"shape": REQUIRED}, type_rel=_full_rel,
    shape_func=lambda fill_value, shape: [np.array(shape, dtype=np.int64)],
    reference=lambda fill_value, shape: np.full(tuple(shape), fill_value, dtype=fill_value.dtype),
    pattern=OpPattern.ELEMWISE, doc="A tensor of a static shape filled with the scalar fill_value.",
)


def _dyn_full_rel(fill_value, shape):
    fill_value = tensor_arg("full", "fill_value", fill_value)
    rank_is("full", "fill_value", fill_value, 0)
    return TensorType((Any,) * _shape_tensor_rank("full", shape), fill_value.dtype)


_full_dynamic = register(
    "dyn.full", args=("fill_value", "shape"), type_rel=_dyn_full_rel,
    shape_func=lambda fill_value, shape: [np.array(shape, dtype=np.int64)],
    shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(1,),
    reference=lambda fill_value, shape: np.full(tuple(int(d) for d in shape), fill_value, dtype=fill_value.dtype),
    pattern=OpPattern.ELEMWISE, doc="A tensor filled with the scalar fill_value, shape from a runtime int tensor.",
)


def full(fill_value, shape):
    """A tensor of `shape` (static tuple or runtime int tensor expression) filled with the scalar `fill_value`."""
    return _full_dynamic(fill_value, shape) if isinstance(shape, Expr) else _full_static(fill_value, shape=tuple(shape))


# ---- arange: data-dependent length -------------------------------------------------------------------------
def arange_length(start, stop, step) -> int:
    """numpy's arange length: ceil((stop - start) / step), at least 0."""
    start, stop, step = float(start), float(stop), float(step)
    if step == 0:
        raise ShapeError("arange: step is 0")
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ShapeError(f"arange: start, stop and step must be finite, got {start}, {stop}, {step}")
    length = (stop - start) / step
    if length >= 2.0 ** 62:
        raise ShapeError(f"arange: {start}..{stop} by {step} would have about {length:.3g} elements, more than "
                         f"any tensor can hold")
    return max(0, math.ceil(length))


def _arange_rel(start, stop, step, dtype):
    for name, t in (("start", start), ("stop", stop), ("step", step)):
        rank_is("arange", name, tensor_arg("arange", name, t), 0)
    return TensorType((Any,), dtype)


arange = register(
    "arange", args=("start", "stop", "step"), attrs={"dtype": "float32"}, type_rel=_arange_rel,
    shape_func=lambda start, stop, step, dtype: [np.array([arange_length(start, stop, step)], dtype=np.int64)],
    shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(0, 1, 2),
    reference=lambda start, stop, step, dtype: np.arange(start.item(), stop.item(), step.item()).astype(dtype),
    pattern=OpPattern.OPAQUE,
    doc="start, start + step, ... below stop (scalar tensors); its length is known at run time.",
)


def _dim_arange_rel(x, axis, dtype):
    x = tensor_arg("dim_arange", "x", x)
    return TensorType((x.shape[normalize_axis("dim_arange", axis, x.ndim)],), dtype)


dim_arange = register(
    "dim_arange", args=("x",), attrs={"axis": 0, "dtype": "int64"}, type_rel=_dim_arange_rel,
    shape_func=lambda x, axis, dtype: [np.array([x[normalize_axis("dim_arange", axis, len(x))]], dtype=np.int64)],
    reference=lambda x, axis, dtype: np.arange(x.shape[axis]).astype(dtype), pattern=OpPattern.INJECTIVE,
    doc="0, 1, ..., x.shape[axis] - 1 (x's values are not read): arange(0, dim, 1) with a data-independent shape.",
)


# ---- nonzero: data-dependent shape ------------------------------------------------------------------------
def _nonzero_rel(x):
    x = tensor_arg("nonzero", "x", x)
    rank_at_least("nonzero", "x", x, 1)
    return TensorType((x.ndim, Any), "int64")


nonzero = register(
    "nonzero", args=("x",), type_rel=_nonzero_rel,
    shape_func=lambda x: [np.array([x.ndim, np.count_nonzero(x)], dtype=np.int64)],
    shape_kind=ShapeFuncKind.UPPER_BOUND, value_inputs=(0,),
    upper_bound=lambda x: [np.array([len(x), np.prod(x, dtype=np.int64)], dtype=np.int64)],
    reference=lambda x: np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1), pattern=OpPattern.OPAQUE,
    doc="Indices of the non-zero elements, shape (rank, count) like numpy / ONNX. The exact shape counts them; the "
        "compiled kernel writes into the upper bound (rank, size) in one pass and reports the count.",
)


# ---- shape_of ----------------------------------------------------------------------------------------------
def _shape_of_rel(x, dtype):
    x = tensor_arg("shape_of", "x", x)
    return TensorType((x.ndim,), dtype)


shape_of = register(
    "shape_of", args=("x",), attrs={"dtype": "int64"}, type_rel=_shape_of_rel,
    shape_func=lambda x, dtype: [np.array([len(x)], dtype=np.int64)],
    reference=lambda x, dtype: np.array(np.shape(x), dtype=dtype), pattern=OpPattern.OPAQUE,
    doc="The shape of x as a 1-D int tensor.",
)
