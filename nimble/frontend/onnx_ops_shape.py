"""Converters of shape and data-movement ONNX operators.

Shape tensors carry `Value.dims` (ints and `DimRef`s), so Shape -> Gather -> Concat -> Reshape chains fold to
static reshapes where at most one dim is unknown, and otherwise become `dyn.reshape` typed with every dim that is
still static.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir.types import AnyDim, TensorType
from .onnx_attrs import axes_in, axis_in, perm_of
from .onnx_graph import ConversionError, MalformedNodeError, converter
from .onnx_ops_math import const_of
from .onnx_values import DimRef, Value, const_value, shape_dims

INT_MAX = 2**63 - 1


def with_dims(v: Value, dims) -> Value:
    """`v` remembering `dims` (ints / DimRefs / None) when it is a rank-0/1 int tensor that is not constant."""
    if v.is_const or dims is None or v.ndim > 1 or not v.dtype.startswith("int"):
        return v
    return replace(v, dims=tuple(dims))


def value_dims(v: Value) -> tuple | None:
    """Elements of a rank-0/1 int tensor as ints / DimRefs / None (unknown), when its length is static."""
    if v.dims is not None:
        return v.dims
    if v.ndim == 1 and isinstance(v.shape[0], int) and v.dtype.startswith("int"):
        return (None,) * v.shape[0]
    if v.ndim == 0 and v.dtype.startswith("int"):
        return (None,)
    return None


def dims_tensor(ctx, dims, source: Value | None = None) -> Value:
    """A 1-D int64 tensor of `dims`; a None element is read from the same position of `source`."""
    parts = []
    for i, d in enumerate(dims):
        if isinstance(d, DimRef):
            shape = ctx.emit("shape_of", Value(d.expr, _type_of(ctx, d.expr)))
            parts.append(ctx.emit("take", shape, np.array([d.axis], np.int64), axis=0))
        elif d is None:
            parts.append(ctx.emit("take", ctx.emit("cast", source, dtype="int64"), np.array([i], np.int64), axis=0))
        else:
            parts.append(np.array([d], np.int64))
    if not parts:
        return const_value(np.zeros((0,), np.int64))
    return with_dims(ctx.concat(parts, axis=0), dims)


def dims_type(dims, dtype) -> TensorType:
    """The type of a tensor whose shape tensor holds `dims`: each static element a static dim."""
    return TensorType(tuple(d if isinstance(d, int) and d >= 0 else AnyDim() for d in dims), dtype)


def _type_of(ctx, expr):
    t = getattr(expr, "type_annotation", None)
    if t is None:
        raise ConversionError("a run-time dim refers to an untyped value")
    return t


def ints_of(v: Value | None, what: str) -> list[int] | None:
    return None if v is None else [int(i) for i in const_of(v, what).reshape(-1)]


# ---- Shape, Size, Constant, ConstantOfShape, Range ---------------------------------------------------------
@converter("Shape")
def shape(ctx, node, inputs, attrs):
    x = inputs[0]
    rank = x.ndim
    start, end = attrs.get("start", 0), attrs.get("end", rank)
    dims = shape_dims(x)[slice(start, end)]
    if all(isinstance(d, int) for d in dims):
        return [const_value(np.array(dims, np.int64))]
    full = ctx.emit("shape_of", x)
    if len(dims) != rank:
        full = ctx.emit("strided_slice", full, begin=(start,), end=(min(end, INT_MAX),))
    return [with_dims(full, dims)]


@converter("Size")
def size(ctx, node, inputs, attrs):
    x = inputs[0]
    if all(isinstance(d, int) for d in x.shape):
        return [const_value(np.array(int(np.prod(x.shape, dtype=np.int64)), np.int64))]
    return [_dims_product(ctx, x, range(x.ndim))]


def _dims_product(ctx, x: Value, axes) -> Value:
    """The product of dims `axes` of `x` as a rank-0 int64 value (run-time dims read with shape_of)."""
    from .onnx_ops_dynamic import dim_of

    out = const_value(np.array(1, np.int64))
    for a in axes:
        out = ctx.emit("multiply", out, dim_of(ctx, x, a))
    return out


@converter("Constant")
def constant(ctx, node, inputs, attrs):
    for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [const_value(np.asarray(attrs[key], dtype=dtype))]
    raise ConversionError(f"Constant with attributes {sorted(attrs)} is not supported")


@converter("ConstantOfShape")
def constant_of_shape(ctx, node, inputs, attrs):
    fill = np.asarray(attrs.get("value", np.zeros((1,), np.float32))).reshape(())
    shp = inputs[0]
    if shp.is_const:
        return [const_value(np.full(tuple(int(d) for d in shp.const), fill, dtype=fill.dtype))]
    dims = value_dims(shp)
    return [ctx.emit("dyn.full", fill, ctx.emit("cast", shp, dtype="int64"),
                     type_=dims_type(dims, fill.dtype.name) if dims is not None else None)]


@converter("Range")
def range_(ctx, node, inputs, attrs):
    start, limit, delta = (ctx.emit("reshape", v, newshape=()) if v.ndim else v for v in inputs)
    return [ctx.emit("arange", start, limit, delta, dtype=start.dtype)]


# ---- Reshape, Flatten, Transpose, Squeeze, Unsqueeze ------------------------------------------------------
@converter("Reshape")
def reshape(ctx, node, inputs, attrs):
    x, target = inputs
    dims = value_dims(target)
    if dims is None:
        raise ConversionError("the shape input must have a static length")
    xdims = shape_dims(x)
    replaced = False
    if not attrs.get("allowzero", 0):
        new = []
        for i, d in enumerate(dims):
            if isinstance(d, int) and d == 0:
                if i >= len(xdims):
                    raise ConversionError(f"shape element {i} is 0 (copy) but the input has rank {len(xdims)}")
                new.append(xdims[i])
                replaced = True
            else:
                new.append(d)
        dims = tuple(new)
    unknown = [d for d in dims if not isinstance(d, int) or d == -1]
    out = _reshape_dims(ctx, x, dims, unknown, target, replaced, attrs.get("allowzero", 0))
    return [with_dims(out, value_dims(x) if out.ndim <= 1 else None)]


def _reshape_dims(ctx, x, dims, unknown, target, replaced, allowzero):
    if len(unknown) <= 1:
        return ctx.emit("reshape", x, newshape=tuple(d if isinstance(d, int) else -1 for d in dims))
    if all(isinstance(d, (int, DimRef)) for d in dims) or replaced:
        shape_expr = dims_tensor(ctx, dims, target)
    else:
        shape_expr = ctx.emit("cast", target, dtype="int64") if target.dtype != "int64" else target
        if not allowzero:  # a run-time 0 copies the input's dim at that position
            shape_expr = _copy_zeros(ctx, x, shape_expr, len(dims))
    out_type = TensorType(tuple(d if isinstance(d, int) and d >= 0 else AnyDim() for d in dims), x.dtype)
    return ctx.emit("dyn.reshape", x, shape_expr, type_=out_type)


def _copy_zeros(ctx, x, shape_expr, length):
    in_shape = ctx.emit("shape_of", x)
    if length > x.ndim:
        in_shape = ctx.concat([in_shape, np.zeros((length - x.ndim,), np.int64)], 0)
    elif length < x.ndim:
        in_shape = ctx.emit("strided_slice", in_shape, begin=(0,), end=(length,))
    return ctx.emit("where", ctx.emit("equal", shape_expr, np.array(0, np.int64)), in_shape, shape_expr)


@converter("Flatten")
def flatten(ctx, node, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    if not -x.ndim <= axis <= x.ndim:
        raise MalformedNodeError(f"axis = {axis} is out of range for a rank-{x.ndim} input "
                                 f"(expected {-x.ndim} <= axis <= {x.ndim})")
    axis = axis + x.ndim if axis < 0 else axis
    head, tail = x.shape[:axis], x.shape[axis:]
    if all(isinstance(d, int) for d in head):
        return [ctx.emit("reshape", x, newshape=(int(np.prod(head, dtype=np.int64)), -1))]
    if all(isinstance(d, int) for d in tail):
        return [ctx.emit("reshape", x, newshape=(-1, int(np.prod(tail, dtype=np.int64))))]
    shape = ctx.concat([ctx.emit("reshape", _dims_product(ctx, x, part), newshape=(1,))
                        for part in (range(axis), range(axis, x.ndim))], 0)
    return [ctx.emit("dyn.reshape", x, shape, type_=TensorType((AnyDim(), AnyDim()), x.dtype))]


@converter("Transpose")
def transpose(ctx, node, inputs, attrs):
    perm = attrs.get("perm")
    return [ctx.emit("transpose", inputs[0], axes=perm_of(perm, inputs[0].ndim) if perm is not None else None)]


def _axes_input(inputs, attrs, what):
    if len(inputs) > 1 and inputs[1] is not None:
        return ints_of(inputs[1], what)
    return attrs.get("axes")


@converter("Unsqueeze")
def unsqueeze(ctx, node, inputs, attrs):
    x = inputs[0]
    axes = _axes_input(inputs, attrs, "Unsqueeze axes")
    out_rank = x.ndim + len(axes)
    out = x
    for a in sorted(axes_in(axes, out_rank, "Unsqueeze axes")):
        out = ctx.emit("expand_dims", out, axis=a)
    return [with_dims(out, x.dims if out.ndim <= 1 else None)]


@converter("Squeeze")
def squeeze(ctx, node, inputs, attrs):
    x = inputs[0]
    axes = _axes_input(inputs, attrs, "Squeeze axes")
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
        if any(not isinstance(d, int) for d in x.shape):
            raise ConversionError("Squeeze without axes needs static dims")
    if not axes:
        return [x]
    out = ctx.emit("squeeze", x, axis=tuple(axes_in(axes, x.ndim, "Squeeze axes")))
    return [with_dims(out, x.dims)]


# ---- Concat, Split ----------------------------------------------------------------------------------------
@converter("Concat")
def concat(ctx, node, inputs, attrs):
    rank = inputs[0].ndim
    axis = axis_in(attrs["axis"], rank)
    out = ctx.concat(list(inputs), axis)
    if rank == 1 and out.dtype.startswith("int") and not out.is_const:
        parts = [value_dims(v) for v in inputs]
        if all(p is not None for p in parts):
            out = with_dims(out, tuple(d for p in parts for d in p))
    return [out]


@converter("Split")
def split(ctx, node, inputs, attrs):
    x = inputs[0]
    axis = axis_in(attrs.get("axis", 0), x.ndim)
    size_input = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    if size_input is not None and not size_input.is_const:
        return _split_runtime_sizes(ctx, x, axis, size_input, len(node.output))
    sizes = ints_of(size_input, "Split sizes") if size_input is not None else attrs.get("split")
    count = len(node.output)
    if sizes is None:
        dim = x.shape[axis]
        n = attrs.get("num_outputs", count)
        if isinstance(dim, int):
            chunk = -(-dim // n)
            sizes = [min(chunk, dim - i * chunk) for i in range(n)]
        else:
            return _split_fields(ctx, x, n, axis)
    cuts = tuple(int(c) for c in np.cumsum(sizes)[:-1])
    return _split_fields(ctx, x, cuts, axis)


def _split_runtime_sizes(ctx, x, axis, sizes, count):
    """Parts whose sizes arrive at run time: part k is x[offset_k : offset_k + sizes[k]] along `axis`."""
    from .onnx_ops_index import _runtime_slice, _scalar_at

    if sizes.ndim != 1 or sizes.shape[0] != count:
        raise MalformedNodeError(f"the split input has shape {sizes.shape}, expected ({count},): one size per output")
    known = value_dims(sizes)
    offset, parts = const_value(np.array(0, np.int64)), []
    for k in range(count):
        end = ctx.emit("add", offset, _scalar_at(ctx, sizes, known[k], k))
        parts.append(_runtime_slice(ctx, x, axis, offset, end, 1))
        offset = end
    return parts


def _split_fields(ctx, x, indices_or_sections, axis):
    """One strided_slice per part: nimble's tuple-valued `split` loses a field's storage when the tuple's register
    dies before the field's last use (wrong values in larger graphs), so tuples are avoided."""
    dim = x.shape[axis]
    if isinstance(indices_or_sections, int):
        if not isinstance(dim, int):
            raise ConversionError("Split into equal parts of a run-time dim is not supported")
        step = dim // indices_or_sections
        indices_or_sections = tuple(step * k for k in range(1, indices_or_sections))
    cuts = (0,) + tuple(indices_or_sections) + (INT_MAX,)
    return [ctx.emit("strided_slice", x, begin=(b,), end=(e,), axes=(axis,)) for b, e in zip(cuts[:-1], cuts[1:])]


# ---- Expand -------------------------------------------------------------------------------
@converter("Expand")
def expand(ctx, node, inputs, attrs):
    x, target = inputs
    if target.is_const:
        shape = tuple(int(d) for d in target.const)
        if all(isinstance(d, int) for d in x.shape) and np.broadcast_shapes(x.shape, shape) == x.shape:
            return [x]
        filler = np.zeros(shape, dtype=x.dtype) if x.dtype != "bool" else np.ones(shape, dtype=bool)
        out_type = None
    else:
        dims = value_dims(target)
        shape_expr = ctx.emit("cast", target, dtype="int64")
        op = "dyn.ones" if x.dtype == "bool" else "dyn.zeros"
        filler = ctx.emit(op, shape_expr, dtype=x.dtype, type_=dims_type(dims, x.dtype) if dims else None)
        out_type = _broadcast_type(x.type, filler.type)
    if x.dtype == "bool":
        return [ctx.emit("where", filler, x, x, type_=out_type)]
    return [ctx.emit("add", x, filler, type_=out_type)]


def _broadcast_type(a: TensorType, b: TensorType) -> TensorType:
    """numpy broadcasting where a static 1 on one side takes the other side's dim (even a run-time one)."""
    n = max(a.ndim, b.ndim)
    da = (1,) * (n - a.ndim) + tuple(a.shape)
    db = (1,) * (n - b.ndim) + tuple(b.shape)
    out = []
    for x, y in zip(da, db):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif isinstance(x, int):
            out.append(x)
        else:
            out.append(y)
    return TensorType(tuple(out), a.dtype)
