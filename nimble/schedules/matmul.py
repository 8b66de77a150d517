"""matmul x(n, k) @ y(k, m) and batch_matmul x(b, n, k) @ y(b, m, k)^T (or y(b, k, m)).

Both use the micro-kernel of ``gemm.py`` (knobs and fallback documented there). Any of n, k,
m and b may be symbolic: attention multiplies (12, n, 64) by (12, n, 64)^T. The y operand is
read directly when its columns are contiguous and a static multiple of tile_cols, and
packed inside the kernel otherwise (or once outside, for a constant matmul weight).
"""
from __future__ import annotations

import numpy as np

from .. import te
from .gemm import GemmOperands, gemm_compute, gemm_fallback, gemm_schedule, gemm_space, pack_columns
from .base import Instance, Signature, Template, TemplateError


def _check(name, sig, batch: bool):
    want = 3 if batch else 2
    if len(sig.args) != 2:
        raise TemplateError(f"{name}: expected two inputs, got {len(sig.args)}")
    (xs, _), (ys, _) = sig.args
    if len(xs) != want or len(ys) != want:
        raise TemplateError(f"{name}: expected {want}-D operands, got {xs} and {ys}")
    trans = batch and sig.attr("transpose_b", True)
    k_y, m = (ys[-1], ys[-2]) if trans else (ys[-2], ys[-1])
    if xs[-1] != k_y:
        raise TemplateError(f"{name}: x has {xs[-1]} columns, y expects {k_y}")
    if batch and xs[0] != ys[0]:
        raise TemplateError(f"{name}: batch sizes differ: {xs[0]} and {ys[0]}")
    return xs[-2], xs[-1], m, trans


def _build(name, sig, cfg, batch):
    n, k, m, trans = _check(name, sig, batch)
    bn = cfg["tile_cols"]
    const = (not batch) and sig.attr("weight", "input") == "const"
    sig_y = sig
    if const:
        if not (isinstance(k, int) and isinstance(m, int)):
            raise TemplateError(f"{name}: a constant weight must have a static shape, got {sig.args[1][0]}")
        sig_y = Signature((sig.args[0], ((-(-m // bn), k, bn), sig.args[1][1])), sig.attrs)
    (x, y), dims = sig_y.placeholders(["x", "y"])
    te_k = x.shape[-1]
    te_m = (y.shape[-2] if trans else y.shape[-1]) if not const else m
    layout = "packed" if const else ("mk" if trans else "km")
    out, D, pack = gemm_compute(GemmOperands(x, te_k, te_m, y, layout), bn)
    s = te.create_schedule(out)
    gemm_schedule(s, out, D, pack, cfg, pack_reads_rows=layout == "km", weight=y)
    residues = [{n: cfg["tile_rows"]}] if isinstance(n, str) and cfg["tile_rows"] > 1 else []
    prepare = None
    if const:
        def prepare(inputs, bn=bn):
            return [inputs[0], pack_columns(inputs[1], bn)]
    return Instance(s, [x, y, out], dims, residues, prepare)


class Matmul(Template):
    def space(self, sig):
        n, k, m, _ = _check("matmul", sig, False)
        return gemm_space("matmul", n, k)

    def fallback(self, sig, space, hints=None):
        n, k, m, _ = _check("matmul", sig, False)
        return gemm_fallback(space, n, k, m, hints, streamed=sig.attr("weight", "input") == "const")

    def instantiate(self, sig, cfg):
        return _build("matmul", sig, cfg, False)

    def reference(self, sig, inputs):
        return [inputs[0] @ inputs[1]]

    def flops(self, sig, dims):
        n, k, m, _ = _check("matmul", sig, False)
        get = lambda d: dims[d] if isinstance(d, str) else d  # noqa: E731
        return 2 * get(n) * get(k) * get(m)


class BatchMatmul(Template):
    def space(self, sig):
        n, k, m, _ = _check("batch_matmul", sig, True)
        return gemm_space("batch_matmul", n, k)

    def fallback(self, sig, space, hints=None):
        n, k, m, _ = _check("batch_matmul", sig, True)
        return gemm_fallback(space, n, k, m, hints)

    def instantiate(self, sig, cfg):
        return _build("batch_matmul", sig, cfg, True)

    def reference(self, sig, inputs):
        x, y = inputs
        return [x @ (np.swapaxes(y, -1, -2) if sig.attr("transpose_b", True) else y)]

    def flops(self, sig, dims):
        n, k, m, _ = _check("batch_matmul", sig, True)
        get = lambda d: dims[d] if isinstance(d, str) else d  # noqa: E731
        return 2 * get(sig.args[0][0][0]) * get(n) * get(k) * get(m)
