"""Converters of the indexing ONNX operators: Gather, GatherElements, Slice (static or run-time bounds)."""
from __future__ import annotations

import numpy as np

from .onnx_attrs import axes_in, axis_in
from .onnx_graph import ConversionError, converter
from .onnx_ops_shape import INT_MAX, _type_of, ints_of, value_dims, with_dims
from .onnx_values import DimRef, Value, const_value


@converter("Gather")
def gather(ctx, node, inputs, attrs):
    data, indices = inputs
    axis = axis_in(attrs.get("axis", 0), max(data.ndim, 1))
    if indices.is_const:
        idx = indices.const.astype(np.int64)
        dim = data.shape[axis]
        if isinstance(dim, int):
            if idx.size and (idx.min() < -dim or idx.max() >= dim):
                bad = idx[(idx < -dim) | (idx >= dim)].reshape(-1)[0]
                raise ConversionError(f"index {int(bad)} is out of range for axis {axis} of size {dim} "
                                      f"(expected {-dim} <= index < {dim})")
            idx = np.where(idx < 0, idx + dim, idx)
        if data.dims is not None and data.ndim == 1:
            picked = [data.dims[int(i)] for i in idx.reshape(-1)]
            if all(isinstance(d, int) for d in picked):
                return [const_value(np.array(picked, dtype=data.dtype).reshape(idx.shape))]
            out = ctx.emit("take", data, idx, axis=axis, mode="wrap")
            return [with_dims(out, picked)]
        mode = "clip" if isinstance(dim, int) else "wrap"
        return [ctx.emit("take", data, idx, axis=axis, mode=mode)]
    return [ctx.emit("take", data, indices, axis=axis, mode="raise")]  # ONNX: indices in [-n, n), else an error


@converter("Slice")
def slice_(ctx, node, inputs, attrs):
    data, starts, ends = inputs[:3]
    rank = data.ndim
    axes = ints_of(inputs[3], "Slice axes") if len(inputs) > 3 and inputs[3] is not None else None
    n = len(value_dims(starts) or ())
    axes = axes_in(axes, rank, "Slice axes") if axes is not None else list(range(n))
    step_input = inputs[4] if len(inputs) > 4 and inputs[4] is not None else const_value(np.ones(n, np.int64))
    if not step_input.is_const:  # run-time steps: every axis through the run-time path
        out = data
        for i, (a, b, e) in enumerate(zip(axes, value_dims(starts), value_dims(ends))):
            out = _runtime_slice(ctx, out, a, _scalar_at(ctx, starts, b, i), _scalar_at(ctx, ends, e, i),
                                 _scalar_at(ctx, step_input, None, i))
        return [out]
    steps = [int(s) for s in step_input.const.reshape(-1)]
    begin, end = value_dims(starts), value_dims(ends)
    static = []
    for a, b, e, s in zip(axes, begin, end, steps):
        if isinstance(e, DimRef) and e.expr is data.expr and e.axis == a and s > 0:
            e = INT_MAX
        static.append((a, b, e, s))
    out = data
    if all(isinstance(b, int) and isinstance(e, int) for _, b, e, _ in static):
        if not static:
            return [data]
        out = ctx.emit("strided_slice", data, begin=tuple(b for _, b, _, _ in static),
                       end=tuple(e for _, _, e, _ in static), strides=tuple(s for *_, s in static),
                       axes=tuple(a for a, *_ in static))
        if data.dims is not None and rank == 1 and not out.is_const:
            _, b, e, s = static[0]
            out = with_dims(out, data.dims[slice(b, e, s)])
        return [out]
    for i, (a, b, e, s) in enumerate(static):
        out = _runtime_slice(ctx, out, a, _scalar_at(ctx, starts, b, i), _scalar_at(ctx, ends, e, i), s)
    return [out]


def _scalar_at(ctx, v: Value, known, i: int) -> Value:
    if isinstance(known, int):
        return const_value(np.array(known, np.int64))
    if isinstance(known, DimRef):
        return ctx.emit("take", ctx.emit("shape_of", Value(known.expr, _type_of(ctx, known.expr))),
                        np.array(known.axis, np.int64), axis=0)
    return ctx.emit("take", ctx.emit("cast", v, dtype="int64"), np.array(i, np.int64), axis=0)


def _runtime_slice(ctx, data, axis, start, end, step):
    """data[start:end:step] along axis with run-time bounds (and step): clamp like ONNX, then take an arange."""
    if isinstance(step, int) and step == 0:
        raise ConversionError("a Slice step is 0")
    dim_t = data.shape[axis]
    dim = (const_value(np.array(dim_t, np.int64)) if isinstance(dim_t, int)
           else ctx.emit("take", ctx.emit("shape_of", data), np.array(axis, np.int64), axis=0))
    if isinstance(step, int):
        lo, hi = ((np.array(0, np.int64), dim) if step > 0 else
                  (np.array(-1, np.int64), ctx.emit("subtract", dim, np.array(1, np.int64))))
        step = np.array(step, np.int64)
    else:  # a run-time step: the clamp range depends on its sign
        forward = ctx.emit("greater", step, np.array(0, np.int64))
        lo = ctx.emit("where", forward, np.array(0, np.int64), np.array(-1, np.int64))
        hi = ctx.emit("where", forward, dim, ctx.emit("subtract", dim, np.array(1, np.int64)))

    def clamp(v):
        v = ctx.emit("where", ctx.emit("less", v, np.array(0, np.int64)), ctx.emit("add", v, dim), v)
        return ctx.emit("maximum", ctx.emit("minimum", v, hi), lo)

    idx = ctx.emit("arange", clamp(start), clamp(end), step, dtype="int64")
    return ctx.emit("take", data, idx, axis=axis, mode="clip")


@converter("GatherElements")
def gather_elements(ctx, node, inputs, attrs):
    """data[..., index, ...] elementwise along `axis`: a `take` from the flattened data at computed offsets."""
    data, index = inputs
    rank = data.ndim
    axis = axis_in(attrs.get("axis", 0), rank)
    index = ctx.emit("cast", index, dtype="int64") if index.dtype != "int64" else index

    def dim(v, k):
        d = v.shape[k]
        if isinstance(d, int):
            return const_value(np.array(d, np.int64))
        return ctx.emit("take", ctx.emit("shape_of", v), np.array(k, np.int64), axis=0)

    flat, stride = None, const_value(np.array(1, np.int64))
    for k in reversed(range(rank)):
        if k == axis:
            coord = ctx.emit("where", ctx.emit("less", index, np.array(0, np.int64)),
                             ctx.emit("add", index, dim(data, k)), index)
        else:
            span = ctx.emit("arange", np.array(0, np.int64), dim(index, k), np.array(1, np.int64), dtype="int64")
            coord = ctx.emit("reshape", span, newshape=tuple(-1 if j == k else 1 for j in range(rank)))
        term = ctx.emit("multiply", coord, stride)
        flat = term if flat is None else ctx.emit("add", flat, term)
        stride = ctx.emit("multiply", stride, dim(data, k))
    if flat.shape != index.shape:  # broadcast to the index's shape
        flat = ctx.emit("add", flat, ctx.emit("multiply", index, np.array(0, np.int64)))
    return [ctx.emit("take", ctx.emit("reshape", data, newshape=(-1,)), flat, axis=0, mode="clip")]


@converter("TopK")
def topk(ctx, node, inputs, attrs):
    """Values and int64 indices of the k largest / smallest along `axis`; k may be a run-time input. One ``topk``
    call (one kernel) gives both."""
    from ..ir.expr import Attrs, Call, Op
    from ..ir.types import TensorType
    from ..ops.registry import get_op

    x, k = inputs[:2]
    if x.ndim == 0:
        raise ConversionError("TopK needs an input of rank >= 1, got a scalar")
    axis = axis_in(attrs.get("axis", -1), x.ndim)
    common = dict(axis=axis, largest=bool(attrs.get("largest", 1)), sorted=bool(attrs.get("sorted", 1)))
    if x.is_const and k.is_const:  # folded
        return [ctx.emit(op, x, k, **common) for op in ("topk_values", "topk_indices")]
    out_dim = None
    if k.is_const:  # a static k gives a static dim
        count = int(np.asarray(k.const).reshape(-1)[0])
        dim = x.shape[axis]
        if isinstance(dim, int) and not 0 <= count <= dim:
            raise ConversionError(f"k = {count} is out of range for axis {axis} of size {dim}")
        out_dim = count
    inferred = get_op("topk").infer([x.type, k.type], common).fields
    shape = tuple(x.shape[:axis]) + (out_dim if out_dim is not None else inferred[0].shape[axis],) + tuple(
        x.shape[axis + 1:])
    types = [TensorType(shape, x.dtype), TensorType(shape, "int64")]
    call = Call(Op("topk"), (ctx.plain_expr(x), ctx.plain_expr(k)), Attrs.of(common))
    return ctx.tuple_fields(call, types, "topk")
