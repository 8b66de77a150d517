"""te computes of the shape-changing operators: reshape, dyn.reshape, transpose, expand_dims, squeeze,
concatenate, split, strided_slice and take."""
from __future__ import annotations

from .. import te
from ..errors import ShapeError
from ..te.expr import IntImm, as_expr
from .compute import (
    checker, clamp, dim_checks, is_one, normalize_axis, product, ravel, register_compute, stage_name, unravel,
)


def reshaped(x: te.Tensor, shape: tuple, name: str) -> te.Tensor:
    """x's elements in row-major order laid out in `shape` (checked to hold as many)."""
    checks = dim_checks(name, [(product(x.shape), product(shape), "the input and output sizes")])
    return te.compute(shape, lambda *i: x[unravel(ravel(i, shape), x.shape)], name=name, checks=checker(checks))


@register_compute("reshape")
def _reshape(inputs, attrs, out_shapes):
    """Static newshape; its -1 is the input size over the other dims."""
    (x,) = inputs
    newshape = tuple(int(d) for d in attrs["newshape"])
    if sum(d == -1 for d in newshape) > 1:
        raise ShapeError(f"reshape: newshape {newshape} may hold only one -1")
    known = product(IntImm(d) for d in newshape if d != -1)
    shape = tuple(product(x.shape) // known if d == -1 else IntImm(d) for d in newshape)
    return reshaped(x, shape, "reshape")


@register_compute("dyn.reshape")
def _dyn_reshape(inputs, attrs, out_shapes):
    """The output shape is a runtime value: the caller's out_shapes[0]."""
    return reshaped(inputs[0], tuple(as_expr(d) for d in out_shapes[0]), "dyn_reshape")


@register_compute("reshape_like")
def _reshape_like(inputs, attrs, out_shapes):
    """x laid out in the shape of `like` (not read)."""
    return reshaped(inputs[0], tuple(inputs[1].shape), "reshape_like")


@register_compute("transpose")
def _transpose(inputs, attrs, out_shapes):
    (x,) = inputs
    given = attrs["axes"]
    axes = tuple(reversed(range(x.ndim))) if given is None else tuple(
        normalize_axis("transpose", a, x.ndim) for a in given)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {given} is not a permutation of 0..{x.ndim - 1}")

    def body(*i):
        index = [None] * x.ndim
        for out_axis, in_axis in enumerate(axes):
            index[in_axis] = i[out_axis]
        return x[tuple(index)]

    return te.compute(tuple(x.shape[a] for a in axes), body, name="transpose")


@register_compute("expand_dims")
def _expand_dims(inputs, attrs, out_shapes):
    (x,) = inputs
    ax, count = normalize_axis("expand_dims", attrs["axis"], x.ndim + 1), attrs["num_newaxis"]
    shape = x.shape[:ax] + (IntImm(1),) * count + x.shape[ax:]
    return te.compute(shape, lambda *i: x[i[:ax] + i[ax + count:]], name="expand_dims")


@register_compute("squeeze")
def _squeeze(inputs, attrs, out_shapes):
    """axis=None drops the static 1s (the type relation asks for static dims then)."""
    (x,) = inputs
    if attrs["axis"] is None:
        axes = tuple(a for a, d in enumerate(x.shape) if is_one(d))
    else:
        axes = tuple(normalize_axis("squeeze", a, x.ndim) for a in (
            (attrs["axis"],) if isinstance(attrs["axis"], int) else attrs["axis"]))
    checks = dim_checks("squeeze", [(x.shape[a], 1, f"axis {a}") for a in axes])
    kept = [a for a in range(x.ndim) if a not in axes]

    def body(*i):
        index = [IntImm(0)] * x.ndim
        for k, a in enumerate(kept):
            index[a] = i[k]
        return x[tuple(index)]

    return te.compute(tuple(x.shape[a] for a in kept), body, name="squeeze", checks=checker(checks))


@register_compute("concatenate")
def _concatenate(inputs, attrs, out_shapes):
    """A select chain over the fields; each read's index on ``axis`` is clamped (0 where the field is not read).
    The other axes need no clamp (every field has the output's extent there), so the reads stay contiguous along
    them and vectorize."""
    first = inputs[0]
    ax = normalize_axis("concatenate", attrs["axis"], first.ndim)
    pairs, offsets, total = [], [], IntImm(0)
    for k, t in enumerate(inputs):
        if t.ndim != first.ndim:
            raise ShapeError(f"concatenate: field 0 has rank {first.ndim}, field {k} has rank {t.ndim}")
        pairs += [(first.shape[a], t.shape[a], f"dim {a} of field 0 and field {k}") for a in range(t.ndim) if a != ax]
        offsets.append(total)
        total = total + t.shape[ax]
    shape = first.shape[:ax] + (total,) + first.shape[ax + 1:]

    def body(*i):
        out = None
        for t, off in reversed(list(zip(inputs, offsets))):
            inside = te.all_(i[ax] >= off, i[ax] < off + t.shape[ax])
            index = tuple(te.select(inside, i[a] - off, 0) if a == ax else i[a] for a in range(t.ndim))
            out = t[index] if out is None else te.select(inside, t[index], out)
        return out

    return te.compute(shape, body, name="concatenate", checks=checker(dim_checks("concatenate", pairs)))


@register_compute("split")
def _split(inputs, attrs, out_shapes):
    """A tuple of slices; equal sections take dim // sections each (the shape function checks divisibility)."""
    (x,) = inputs
    ax = normalize_axis("split", attrs["axis"], x.ndim)
    dim, parts = x.shape[ax], attrs["indices_or_sections"]
    if isinstance(parts, int):
        if parts <= 0:
            raise ShapeError(f"split: indices_or_sections must be positive, got {parts}")
        if isinstance(dim, IntImm) and dim.value % parts:
            raise ShapeError(f"split: dim {dim.value} does not divide into {parts} equal sections")
        step = dim // parts
        bounds = [(step * k, step) for k in range(parts)]
    else:
        cuts = [te.min_(IntImm(int(c)), dim) for c in parts]
        begins, ends = [IntImm(0)] + cuts, cuts + [dim]
        bounds = [(b, te.max_(e - b, 0)) for b, e in zip(begins, ends)]
    outs = []
    for k, (begin, size) in enumerate(bounds):
        shape = x.shape[:ax] + (size,) + x.shape[ax + 1:]
        outs.append(te.compute(shape, lambda *i, b=begin: x[i[:ax] + (i[ax] + b,) + i[ax + 1:]],
                               name=f"split_{k}"))
    return tuple(outs)


def slice_axis(dim, begin, end, stride: int):
    """(first index, length) of python's slice(begin, end, stride) over a (symbolic) dim."""
    if stride == 0:
        raise ShapeError("strided_slice: a stride is 0")

    def bound(v, default, lo, hi):
        if v is None:
            return default
        v = int(v)
        return clamp(dim + v, lo, hi) if v < 0 else te.min_(IntImm(v), hi)

    if stride > 0:
        b, e = bound(begin, IntImm(0), 0, dim), bound(end, dim, 0, dim)
        return b, te.max_((e - b + (stride - 1)) // stride, 0)
    b, e = bound(begin, dim - 1, -1, dim - 1), bound(end, IntImm(-1), -1, dim - 1)
    return b, te.max_((b - e + (-stride - 1)) // -stride, 0)


@register_compute("strided_slice")
def _strided_slice(inputs, attrs, out_shapes):
    (x,) = inputs
    begin, end = tuple(attrs["begin"]), tuple(attrs["end"])
    axes = tuple(range(len(begin))) if attrs["axes"] is None else tuple(attrs["axes"])
    strides = (1,) * len(axes) if attrs["strides"] is None else tuple(attrs["strides"])
    if not len(begin) == len(end) == len(strides) == len(axes):
        raise ShapeError(
            f"strided_slice: begin, end, strides and axes differ in length: {begin} {end} {strides} {axes}"
        )
    first = [IntImm(0)] * x.ndim
    step = [1] * x.ndim
    shape = list(x.shape)
    for a, b, e, s in zip(axes, begin, end, strides):
        a = normalize_axis("strided_slice", a, x.ndim)
        first[a], shape[a] = slice_axis(x.shape[a], b, e, int(s))
        step[a] = int(s)
    return te.compute(tuple(shape), lambda *i: x[tuple(f + k * s for f, k, s in zip(first, i, step))],
                      name="strided_slice")


def _take_position(op: str, idx, n, mode: str, out_size=None):
    """(read position, checks) of index value idx along an axis of length n (``out_size``: the output's
    element count; an empty output takes nothing, so an empty axis is then no error)."""
    idx = te.cast("int64", idx)
    nonempty = (n > 0 if out_size is None else te.any_(n > 0, te.eq(out_size, 0)),
                f"{op}: cannot take from an empty axis")
    if mode == "clip":
        return clamp(idx, 0, n - 1), [nonempty]
    if mode == "wrap":
        return idx % te.max_(n, 1), [nonempty]
    if mode == "raise":
        inside = te.all_(idx >= -n, idx < n)
        pos = clamp(te.select(idx < 0, idx + n, idx), 0, n - 1)
        return pos, [(inside, f"{op}: an index is out of range for an axis of length {n}")]
    raise ShapeError(f"{op}: mode must be 'clip', 'wrap' or 'raise', got {mode!r}")


@register_compute("take")
def _take(inputs, attrs, out_shapes):
    data, indices = inputs
    axis, mode = attrs["axis"], attrs["mode"]
    ni = indices.ndim
    if axis is None:
        shape = indices.shape

        def locate(i):
            return _take_position("take", indices[i], product(data.shape), mode, product(shape))

        def body(*i):
            pos, _ = locate(i)
            return data[unravel(pos, data.shape)]
    else:
        ax = normalize_axis("take", axis, data.ndim)
        shape = data.shape[:ax] + indices.shape + data.shape[ax + 1:]

        def locate(i):
            return _take_position("take", indices[i[ax:ax + ni]], data.shape[ax], mode, product(shape))

        def body(*i):
            pos, _ = locate(i)
            return data[i[:ax] + (pos,) + i[ax + ni:]]

    return te.compute(shape, body, name=stage_name("take"), checks=lambda *i: locate(i)[1])
