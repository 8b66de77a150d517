"""te computes of the neural-network operators: dense, matmul, batch_matmul (plain te reductions, replaced by the
tuned templates), softmax, log_softmax, layer_norm and batch_norm (several stages)."""
from __future__ import annotations

from .. import te
from ..te.expr import IntImm
from .compute import broadcast_dims, broadcast_index, checker, dim_checks, normalize_axis, register_compute


@register_compute("dense")
def _dense(inputs, attrs, out_shapes):
    x, w = inputs
    k = te.reduce_axis(x.shape[-1], "k")
    checks = dim_checks("dense", [(x.shape[-1], w.shape[1], "x's columns and weight's columns")])
    return te.compute(
        x.shape[:-1] + (w.shape[0],), lambda *i: te.sum(x[i[:-1] + (k.var,)] * w[i[-1], k.var], axis=k),
        name="dense", checks=checker(checks),
    )


def batched_product(op: str, a: te.Tensor, b: te.Tensor, b_kn: bool) -> te.Tensor:
    """a (..., n, k) times b (..., k, m) (b_kn) or b (..., m, k) transposed; batch dims broadcast."""
    batch, checks = broadcast_dims(op, [a.shape[:-2], b.shape[:-2]], ["a's batch", "b's batch"])
    kb, m = (b.shape[-2], b.shape[-1]) if b_kn else (b.shape[-1], b.shape[-2])
    checks += dim_checks(op, [(a.shape[-1], kb, "a's columns and b's rows")])
    k = te.reduce_axis(a.shape[-1], "k")
    nb = len(batch)

    def body(*i):
        bi, row, col = i[:nb], i[nb], i[nb + 1]
        ia = broadcast_index(a.shape[:-2], batch, bi) + (row, k.var)
        ib = broadcast_index(b.shape[:-2], batch, bi) + ((k.var, col) if b_kn else (col, k.var))
        return te.sum(a[ia] * b[ib], axis=k)

    return te.compute(batch + (a.shape[-2], m), body, name=op, checks=checker(checks))


@register_compute("matmul")
def _matmul(inputs, attrs, out_shapes):
    a, b = inputs
    return batched_product("matmul", a, b, b_kn=True)


@register_compute("batch_matmul")
def _batch_matmul(inputs, attrs, out_shapes):
    x, y = inputs
    return batched_product("batch_matmul", x, y, b_kn=not attrs["transpose_b"])


def _along(x: te.Tensor, axis: int, name: str, reducer, value=None):
    """reducer(value(x)) along `axis`, keeping it as 1: shape x.shape with axis -> 1."""
    r = te.reduce_axis(x.shape[axis], "r")
    shape = x.shape[:axis] + (IntImm(1),) + x.shape[axis + 1:]
    value = value or (lambda e, i: e)

    def body(*i):
        idx = i[:axis] + (r.var,) + i[axis + 1:]
        return reducer(value(x[idx], idx), axis=r)

    return te.compute(shape, body, name=name)


def _row(i: tuple, axis: int) -> tuple:
    return i[:axis] + (0,) + i[axis + 1:]


def _softmax_stages(op: str, x: te.Tensor, axis: int):
    """The max along axis and the sum of exp(x - max)."""
    mx = _along(x, axis, f"{op}_max", te.max)
    total = _along(x, axis, f"{op}_sum", te.sum, lambda e, idx: te.exp(e - mx[_row(idx, axis)]))
    return mx, total


@register_compute("softmax")
def _softmax(inputs, attrs, out_shapes):
    (x,) = inputs
    axis = normalize_axis("softmax", attrs["axis"], x.ndim)
    mx, total = _softmax_stages("softmax", x, axis)
    return te.compute(
        x.shape, lambda *i: te.exp(x[i] - mx[_row(i, axis)]) / total[_row(i, axis)], name="softmax"
    )


@register_compute("log_softmax")
def _log_softmax(inputs, attrs, out_shapes):
    (x,) = inputs
    axis = normalize_axis("log_softmax", attrs["axis"], x.ndim)
    mx, total = _softmax_stages("log_softmax", x, axis)
    return te.compute(
        x.shape, lambda *i: x[i] - mx[_row(i, axis)] - te.log(total[_row(i, axis)]), name="log_softmax"
    )


def _f64(e):
    return te.cast("float64", e)


@register_compute("layer_norm")
def _layer_norm(inputs, attrs, out_shapes):
    x, gamma, beta = inputs
    axis = normalize_axis("layer_norm", attrs["axis"], x.ndim)
    n = _f64(x.shape[axis])
    total = _along(x, axis, "layer_norm_sum", te.sum, lambda e, idx: _f64(e))
    mean = te.compute(total.shape, lambda *i: total[i] / n, name="layer_norm_mean")
    sq = _along(x, axis, "layer_norm_sq", te.sum, lambda e, idx: (_f64(e) - mean[_row(idx, axis)]) * (
        _f64(e) - mean[_row(idx, axis)]))
    checks = dim_checks("layer_norm", [(x.shape[axis], p.shape[0], f"x's axis {axis} and {name}'s length")
                                       for p, name in ((gamma, "gamma"), (beta, "beta"))])

    def body(*i):
        row = _row(i, axis)
        scale = te.sqrt(sq[row] / n + attrs["epsilon"])
        y = (_f64(x[i]) - mean[row]) / scale * _f64(gamma[i[axis]]) + _f64(beta[i[axis]])
        return te.cast(x.dtype, y)

    return te.compute(x.shape, body, name="layer_norm", checks=checker(checks))


@register_compute("batch_norm")
def _batch_norm(inputs, attrs, out_shapes):
    x, gamma, beta, moving_mean, moving_var = inputs
    axis = normalize_axis("batch_norm", attrs["axis"], x.ndim)
    named = (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean), ("moving_var", moving_var))
    checks = dim_checks("batch_norm", [(x.shape[axis], t.shape[0], f"x's channels and {name}'s length")
                                       for name, t in named])

    def body(*i):
        c = i[axis]
        scale = _f64(gamma[c]) / te.sqrt(_f64(moving_var[c]) + attrs["epsilon"])
        return te.cast(x.dtype, _f64(x[i] - moving_mean[c]) * scale + _f64(beta[c]))

    return te.compute(x.shape, body, name="batch_norm", checks=checker(checks))
