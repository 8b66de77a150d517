"""te computes of the operators that make tensors or read shapes: zeros, ones, full (static and runtime shape),
arange, nonzero and shape_of. Runtime shapes come from the caller's out_shapes; the shape inputs are not read."""
from __future__ import annotations

from .. import te
from ..te.expr import IntImm, as_expr, is_float
from .compute import register_compute, stage_name, unravel
from .compute_elementwise import cast_value


def _out_shape(out_shapes) -> tuple:
    return tuple(as_expr(d) for d in out_shapes[0])


def _fill(name: str, value: int, static: bool):
    def compute(inputs, attrs, out_shapes):
        shape = tuple(IntImm(int(d)) for d in attrs["shape"]) if static else _out_shape(out_shapes)
        return te.compute(shape, lambda *i: te.const(value, attrs["dtype"]), name=stage_name(name))

    return compute


for _value, _name in ((0, "zeros"), (1, "ones")):
    register_compute(_name)(_fill(_name, _value, static=True))
    register_compute(f"dyn.{_name}")(_fill(f"dyn.{_name}", _value, static=False))


def _full_of(fill: te.Tensor, shape: tuple, name: str) -> te.Tensor:
    return te.compute(shape, lambda *i: fill[()], name=name)


@register_compute("full")
def _full(inputs, attrs, out_shapes):
    return _full_of(inputs[0], tuple(IntImm(int(d)) for d in attrs["shape"]), "full")


@register_compute("dyn.full")
def _dyn_full(inputs, attrs, out_shapes):
    return _full_of(inputs[0], _out_shape(out_shapes), "dyn_full")


@register_compute("arange")
def _arange(inputs, attrs, out_shapes):
    """start + i * step in int64, or in float64 with numpy's step (start + step) - start; the length is the
    caller's out_shapes[0]."""
    start, stop, step = inputs
    in_float = any(is_float(t.dtype) for t in inputs)
    wide = "float64" if in_float else "int64"
    first = te.cast(wide, start[()])
    delta = (first + te.cast(wide, step[()])) - first if in_float else te.cast(wide, step[()])
    return te.compute(_out_shape(out_shapes), lambda i: cast_value(first + te.cast(wide, i) * delta, attrs["dtype"]),
                      name="arange")


@register_compute("dim_arange")
def _dim_arange(inputs, attrs, out_shapes):
    (x,) = inputs
    axis = attrs["axis"] % len(x.shape)
    return te.compute((x.shape[axis],), lambda i: cast_value(te.cast("int64", i), attrs["dtype"]), name="dim_arange")


@register_compute("nonzero")
def _nonzero(inputs, attrs, out_shapes):
    """O(size^2) te: each element's count of non-zeros before it, then column k holds the coordinates of the
    element whose count is k. out_shapes[0] is (rank, columns); columns past the real count (a larger output
    buffer than the shape function's) hold -1."""
    (x,) = inputs
    size = IntImm(1)
    for d in x.shape:
        size = size * d

    def nonzero_at(flat):
        v = x[unravel(flat, x.shape)]
        return te.ne(v, te.const(0, v.dtype))

    j = te.reduce_axis(size, "j")
    before = te.compute((size,), lambda i: te.sum(te.select(te.all_(j.var < i, nonzero_at(j.var)), 1, 0), axis=j),
                        name="nonzero_before")
    t = te.reduce_axis(size, "t")
    total = te.compute((), lambda: te.sum(te.select(nonzero_at(t.var), 1, 0), axis=t), name="nonzero_count")
    r = te.reduce_axis(size, "r")

    def body(d, k):
        hit = te.all_(nonzero_at(r.var), te.eq(before[r.var], k))
        return te.sum(te.select(hit, _coordinate(r.var, x.shape, d), 0), axis=r)

    columns = te.compute(_out_shape(out_shapes), body, name="nonzero_columns")
    return te.compute(columns.shape, lambda d, k: te.select(k < total[()], columns[d, k], -1), name="nonzero")


def _coordinate(flat, shape: tuple, d):
    """Coordinate number d (a te index) of element `flat` of a tensor of `shape`: a select over the axes."""
    coords = unravel(flat, shape)
    out = coords[-1]
    for axis in range(len(shape) - 2, -1, -1):
        out = te.select(te.eq(d, axis), coords[axis], out)
    return out


@register_compute("shape_of")
def _shape_of(inputs, attrs, out_shapes):
    (x,) = inputs

    def body(i):
        out = te.const(0, "int64")
        for axis in range(x.ndim - 1, -1, -1):
            out = te.select(te.eq(i, axis), x.shape[axis], out)
        return te.cast(attrs["dtype"], out)

    return te.compute((IntImm(x.ndim),), body, name="shape_of")
