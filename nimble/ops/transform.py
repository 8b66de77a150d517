"""Shape-changing (injective) operators: reshape, transpose, expand_dims, squeeze, concatenate, split,
strided_slice, take."""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..ir.expr import Expr, Tuple, as_expr
from ..ir.types import AnyDim, TensorType, TupleType
from .registry import OpPattern, ShapeFuncKind, register
from .relations import (
    INT_DTYPES,
    dims_equal,
    meet_dim,
    normalize_axes,
    normalize_axis,
    rank_is,
    same_dtype,
    static_int,
    tensor_arg,
    tuple_arg,
)

Any = AnyDim()


# ---- reshape (static newshape, -1 infers one dim) and dyn.reshape (newshape is a runtime int64 tensor) -----
def reshaped_dims(in_shape: tuple, newshape: tuple, op: str = "reshape") -> tuple:
    """Concrete output dims of numpy's reshape (one -1 allowed)."""
    newshape = tuple(int(d) for d in newshape)
    size = math.prod(int(d) for d in in_shape)  # Python ints: no silent int64 wrap-around
    if sum(d == -1 for d in newshape) > 1 or any(d < -1 for d in newshape):
        raise ShapeError(f"{op}: newshape {newshape} may hold one -1 and otherwise dims >= 0")
    if any(d >= 1 << 63 for d in newshape):
        raise ShapeError(f"{op}: newshape {newshape} has a dim beyond int64")
    known = math.prod(d for d in newshape if d != -1)
    if -1 in newshape:
        if known == 0 or size % known:
            raise ShapeError(f"{op}: cannot reshape {size} elements of shape {tuple(in_shape)} to {newshape}")
        return tuple(size // known if d == -1 else d for d in newshape)
    if known != size:
        raise ShapeError(f"{op}: cannot reshape {size} elements of shape {tuple(in_shape)} to {newshape}")
    return newshape


def _reshape_rel(x, newshape):
    x = tensor_arg("reshape", "x", x)
    if x.is_static:
        return TensorType(reshaped_dims(x.shape, newshape), x.dtype)
    if sum(d == -1 for d in newshape) > 1:
        raise ShapeError(f"reshape: newshape {tuple(newshape)} may hold only one -1")
    return TensorType(tuple(Any if d == -1 else d for d in newshape), x.dtype)


_reshape_static = register(
    "reshape", args=("x",), attrs={"newshape": ()}, type_rel=_reshape_rel,
    shape_func=lambda x, newshape: [np.array(reshaped_dims(tuple(x), newshape), dtype=np.int64)],
    reference=lambda x, newshape: np.reshape(x, newshape), pattern=OpPattern.INJECTIVE,
    doc="x with shape newshape (static; one -1 is inferred).",
)


def _dyn_reshape_rel(x, newshape):
    x = tensor_arg("reshape", "x", x)
    newshape = tensor_arg("reshape", "newshape", newshape, INT_DTYPES)
    rank_is("reshape", "newshape", newshape, 1)
    if not isinstance(newshape.shape[0], int):
        raise ShapeError("reshape: a runtime newshape must have a static length (the output rank)")
    return TensorType((Any,) * newshape.shape[0], x.dtype)


_reshape_dynamic = register(
    "dyn.reshape", args=("x", "newshape"), type_rel=_dyn_reshape_rel,
    shape_func=lambda x, newshape: [np.array(reshaped_dims(tuple(x), tuple(newshape)), dtype=np.int64)],
    shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(1,),
    reference=lambda x, newshape: np.reshape(x, tuple(int(d) for d in newshape)), pattern=OpPattern.INJECTIVE,
    doc="x reshaped to the shape held in the int tensor newshape (known at run time).",
)


def reshape(x, newshape):
    """Reshape `x`: to a static tuple (`reshape`), or to a runtime shape tensor expression (`dyn.reshape`)."""
    if isinstance(newshape, Expr):
        return _reshape_dynamic(x, newshape)
    return _reshape_static(x, newshape=tuple(int(d) for d in newshape))


def _reshape_like_rel(x, like):
    x, like = tensor_arg("reshape_like", "x", x), tensor_arg("reshape_like", "like", like)
    if x.is_static and like.is_static and math.prod(x.shape) != math.prod(like.shape):
        raise ShapeError(f"reshape_like: cannot lay out {math.prod(x.shape)} elements of shape {tuple(x.shape)} "
                         f"as {tuple(like.shape)}")
    return TensorType(tuple(like.shape), x.dtype)


def _reshape_like_shape(x, like):
    return [np.array(reshaped_dims(tuple(x), tuple(like), "reshape_like"), dtype=np.int64)]


reshape_like = register(
    "reshape_like", args=("x", "like"), type_rel=_reshape_like_rel, shape_func=_reshape_like_shape,
    reference=lambda x, like: np.reshape(x, like.shape), pattern=OpPattern.INJECTIVE,
    doc="x reshaped to the shape of `like` (whose values are not read): a reshape whose shape comes from another "
        "tensor's dims without a data-dependent shape function.",
)


# ---- transpose, expand_dims, squeeze -----------------------------------------------------------------------
def _transpose_axes(op, axes, ndim):
    if axes is None:
        return tuple(reversed(range(ndim)))
    norm = tuple(normalize_axis(op, a, ndim) for a in axes)
    if sorted(norm) != list(range(ndim)):
        raise ShapeError(f"{op}: axes {tuple(axes)} is not a permutation of 0..{ndim - 1}")
    return norm


def _transpose_rel(x, axes):
    x = tensor_arg("transpose", "x", x)
    return TensorType(tuple(x.shape[a] for a in _transpose_axes("transpose", axes, x.ndim)), x.dtype)


transpose = register(
    "transpose", args=("x",), attrs={"axes": None}, type_rel=_transpose_rel,
    shape_func=lambda x, axes: [x[list(_transpose_axes("transpose", axes, len(x)))]],
    reference=lambda x, axes: np.transpose(x, axes), pattern=OpPattern.INJECTIVE,
    doc="Permute the axes of x (None: reverse them).",
)


def _expand_dims_shape(shape: tuple, axis: int, num_newaxis: int) -> tuple:
    ax = normalize_axis("expand_dims", axis, len(shape) + 1)
    return tuple(shape[:ax]) + (1,) * num_newaxis + tuple(shape[ax:])


def _expand_dims_rel(x, axis, num_newaxis):
    x = tensor_arg("expand_dims", "x", x)
    return TensorType(_expand_dims_shape(x.shape, axis, num_newaxis), x.dtype)


def _expand_dims_ref(x, axis, num_newaxis):
    return np.reshape(x, _expand_dims_shape(x.shape, axis, num_newaxis))


expand_dims = register(
    "expand_dims", args=("x",), attrs={"axis": 0, "num_newaxis": 1}, type_rel=_expand_dims_rel,
    shape_func=lambda x, axis, num_newaxis: [np.array(_expand_dims_shape(tuple(x), axis, num_newaxis), np.int64)],
    reference=_expand_dims_ref, pattern=OpPattern.INJECTIVE,
    doc="Insert num_newaxis axes of length 1 at axis (in -rank-1..rank).",
)


def _squeeze_axes(shape: tuple, axis) -> tuple:
    if axis is None:
        if any(isinstance(d, AnyDim) or not isinstance(d, int) for d in shape):
            raise ShapeError(f"squeeze: x {tuple(shape)} has unknown dims; name the axes to squeeze")
        return tuple(i for i, d in enumerate(shape) if d == 1)
    axes = normalize_axes("squeeze", axis, len(shape))
    for a in axes:
        dims_equal("squeeze", 1, shape[a], f"axis {a} must have length 1, but has length {{b}}")
    return axes


def _squeeze_rel(x, axis):
    x = tensor_arg("squeeze", "x", x)
    axes = _squeeze_axes(x.shape, axis)
    return TensorType(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype)


def _squeeze_shape(x, axis):
    axes = _squeeze_axes(tuple(int(d) for d in x), axis)
    return [np.array([d for i, d in enumerate(x) if i not in axes], dtype=np.int64)]


squeeze = register(
    "squeeze", args=("x",), attrs={"axis": None}, type_rel=_squeeze_rel, shape_func=_squeeze_shape,
    reference=lambda x, axis: np.squeeze(x, axis=_squeeze_axes(x.shape, axis)), pattern=OpPattern.INJECTIVE,
    doc="Remove axes of length 1 (None: every one; needs static dims).",
)


# ---- concatenate, split -----------------------------------------------------------------------------------
def _concatenate_rel(data, axis):
    fields = tuple_arg("concatenate", "data", data)
    first = fields[0]
    ax = normalize_axis("concatenate", axis, first.ndim)
    dims = list(first.shape)
    total = first.shape[ax]
    for i, t in enumerate(fields[1:], start=1):
        same_dtype("concatenate", ("field 0", first), (f"field {i}", t))
        if t.ndim != first.ndim:
            raise ShapeError(f"concatenate: field 0 has rank {first.ndim}, field {i} has rank {t.ndim}")
        for a, d in enumerate(t.shape):
            if a == ax:
                total = total + d if isinstance(total, int) and isinstance(d, int) else Any
            else:
                dims_equal("concatenate", dims[a], d, f"field 0 has dim {{a}} at axis {a}, field {i} has {{b}}")
                dims[a] = meet_dim(dims[a], d)
    dims[ax] = total
    return TensorType(tuple(dims), first.dtype)


def _concatenate_shape(data, axis):
    out = np.array(data[0], dtype=np.int64)
    out[axis % len(out)] = sum(int(s[axis % len(out)]) for s in data)
    return [out]


_concatenate = register(
    "concatenate", args=("data",), attrs={"axis": 0}, type_rel=_concatenate_rel, shape_func=_concatenate_shape,
    reference=lambda data, axis: np.concatenate(data, axis=axis), pattern=OpPattern.INJECTIVE,
    doc="Join the tensors of the tuple data along axis.",
)


def concatenate(tensors, axis: int = 0):
    """Join a list of tensor expressions (or a tuple-valued expression) along `axis`."""
    data = tensors if isinstance(tensors, Expr) else Tuple(tuple(as_expr(t) for t in tensors))
    return _concatenate(data, axis=axis)


def split_bounds(dim: int, indices_or_sections) -> list[tuple[int, int]]:
    """(begin, end) of each part, numpy's array_split semantics for indices, equal parts for sections."""
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or dim % indices_or_sections:
            raise ShapeError(f"split: dim {dim} does not divide into {indices_or_sections} equal sections")
        step = dim // indices_or_sections
        return [(i * step, (i + 1) * step) for i in range(indices_or_sections)]
    cuts = [0] + [min(int(i), dim) for i in indices_or_sections] + [dim]
    return [(min(b, e), e) if b <= e else (e, e) for b, e in zip(cuts[:-1], cuts[1:])]


def _split_rel(x, indices_or_sections, axis):
    x = tensor_arg("split", "x", x)
    ax = normalize_axis("split", axis, x.ndim)
    dim = x.shape[ax]
    if isinstance(indices_or_sections, int):
        static_int("split", "indices_or_sections", indices_or_sections)
        count = indices_or_sections
    else:
        count = len(indices_or_sections) + 1
    if isinstance(dim, int):
        sizes = [e - b for b, e in split_bounds(dim, indices_or_sections)]
    else:
        sizes = [Any] * count
    return TupleType(tuple(TensorType(x.shape[:ax] + (s,) + x.shape[ax + 1 :], x.dtype) for s in sizes))


def _split_shape(x, indices_or_sections, axis):
    ax = axis % len(x)
    out = []
    for b, e in split_bounds(int(x[ax]), indices_or_sections):
        s = np.array(x, dtype=np.int64)
        s[ax] = e - b
        out.append(s)
    return out


split = register(
    "split", args=("x",), attrs={"indices_or_sections": 1, "axis": 0}, type_rel=_split_rel,
    shape_func=_split_shape,
    reference=lambda x, indices_or_sections, axis: tuple(np.split(x, indices_or_sections, axis=axis)),
    pattern=OpPattern.INJECTIVE,
    doc="A tuple of parts of x along axis: an int gives that many equal parts, a tuple gives the cut indices.",
)


# ---- strided_slice: python slicing per axis ---------------------------------------------------------------
def _slices(ndim: int, begin, end, strides, axes) -> list:
    axes = tuple(range(len(begin))) if axes is None else tuple(axes)
    strides = (1,) * len(axes) if strides is None else tuple(strides)
    if not len(begin) == len(end) == len(strides) == len(axes):
        raise ShapeError(
            f"strided_slice: begin, end, strides and axes differ in length: {begin} {end} {strides} {axes}"
        )
    slices = [slice(None)] * ndim
    for a, b, e, s in zip(axes, begin, end, strides):
        if s == 0:
            raise ShapeError("strided_slice: a stride is 0")
        slices[normalize_axis("strided_slice", a, ndim)] = slice(b, e, s)
    return slices


def _strided_slice_rel(x, begin, end, strides, axes):
    x = tensor_arg("strided_slice", "x", x)
    slices = _slices(x.ndim, begin, end, strides, axes)
    dims = tuple(
        len(range(*sl.indices(d))) if isinstance(d, int) else (d if sl == slice(None) else Any)
        for d, sl in zip(x.shape, slices)
    )
    return TensorType(dims, x.dtype)


def _strided_slice_shape(x, begin, end, strides, axes):
    slices = _slices(len(x), begin, end, strides, axes)
    return [np.array([len(range(*sl.indices(int(d)))) for d, sl in zip(x, slices)], dtype=np.int64)]


strided_slice = register(
    "strided_slice", args=("x",), attrs={"begin": (), "end": (), "strides": None, "axes": None},
    type_rel=_strided_slice_rel, shape_func=_strided_slice_shape,
    reference=lambda x, begin, end, strides, axes: np.ascontiguousarray(
        x[tuple(_slices(x.ndim, begin, end, strides, axes))]
    ),
    pattern=OpPattern.INJECTIVE,
    doc="x[begin:end:strides] on the given axes (default: the first len(begin)), python slice semantics.",
)


# ---- take --------------------------------------------------------------------------------------------------
def _take_rel(data, indices, axis, mode):
    data = tensor_arg("take", "data", data)
    indices = tensor_arg("take", "indices", indices, INT_DTYPES)
    if mode not in ("clip", "wrap", "raise"):
        raise ShapeError(f"take: mode must be 'clip', 'wrap' or 'raise', got {mode!r}")
    if axis is None:
        return TensorType(indices.shape, data.dtype)
    ax = normalize_axis("take", axis, data.ndim)
    return TensorType(data.shape[:ax] + indices.shape + data.shape[ax + 1 :], data.dtype)


def _take_shape(data, indices, axis, mode):
    if axis is None:
        return [np.array(indices, dtype=np.int64)]
    ax = axis % len(data)
    return [np.concatenate([data[:ax], indices, data[ax + 1 :]]).astype(np.int64)]


take = register(
    "take", args=("data", "indices"), attrs={"axis": None, "mode": "raise"}, type_rel=_take_rel,
    shape_func=_take_shape,
    reference=lambda data, indices, axis, mode: np.asarray(np.take(data, indices, axis=axis, mode=mode)),
    pattern=OpPattern.INJECTIVE,
    doc="Elements of data at indices along axis (None: of the flattened data); out-of-range indices clip "
    "by default, as in TVM.",
)
