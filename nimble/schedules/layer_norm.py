"""layer_norm over the last axis: out = (x - mean) / sqrt(var + eps) * gamma + beta.

``passes="one"``: one pass over each row takes the sums of ``d = x - x[row, 0]`` and of
``d * d`` (shifting by the row's first element keeps ``E[d^2] - E[d]^2`` accurate when
|mean| >> std), then writes the output while the row is in L1: a single parallel row loop.
``passes="two"``: a first row loop stores the means, the second sums ``(x - mean)^2`` and
writes the output (the textbook two-pass variance).

Knobs: lanes (accumulator width of the lane sums: 16, 32, 64), vec (vector width of the
output loop), passes, sum_method ("lanes" or "plain": one reduction LLVM vectorizes),
parallel ("rows" or "none"). attrs: eps (default 1e-5; BERT uses 1e-12).

Fallback (documented heuristic): two passes with plain sums (LLVM vectorizes them; measured
fastest at (1536, 128) and (128, 768), ~9x numpy); lanes 32 when the representative row
length is >= 64 else 16 (used by lane sums only); vec 32; rows in parallel.
"""
from __future__ import annotations

import numpy as np

from .. import te
from .base import Instance, Signature, Template, TemplateError
from .rowwise import fuse_rows, row_len_hint, row_reduction, schedule_rows
from .softmax import element_count, last_axis_input
from .space import ConfigSpace


def _check(sig: Signature):
    shape = last_axis_input(sig, "layer_norm", n_args=3)
    for pos, name in ((1, "gamma"), (2, "beta")):
        pshape, pdt = sig.args[pos]
        if tuple(pshape) != (shape[-1],) or pdt != "float32":
            raise TemplateError(f"layer_norm: {name} must be float32 of shape ({shape[-1]},), got {pdt} {pshape}")
    return shape


class LayerNorm(Template):
    def space(self, sig):
        _check(sig)
        s = ConfigSpace("layer_norm")
        s.define_knob("lanes", (16, 32, 64))
        s.define_knob("vec", (16, 32, 64))
        s.define_knob("passes", ("one", "two"))
        s.define_knob("sum_method", ("lanes", "plain"))
        s.define_annotate("parallel", ("rows", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        m = row_len_hint(_check(sig)[-1], hints)
        return space.config(lanes=32 if m >= 64 else 16, vec=32, passes="two", sum_method="plain", parallel="rows")

    def instantiate(self, sig, cfg) -> Instance:
        _check(sig)
        (x, gamma, beta), dims = sig.placeholders(["x", "gamma", "beta"])
        rows_shape, m = x.shape[:-1], x.shape[-1]
        L, method, par = cfg["lanes"], cfg["sum_method"], cfg["parallel"] == "rows"
        eps = float(sig.attr("eps", 1e-5))
        inv_m = 1.0 / te.max_(m, 1).astype("float32")
        if cfg["passes"] == "one":
            def shifted(r, k):
                return x[(*r, k)] - x[(*r, 0)]

            s1 = row_reduction(method, "s1", rows_shape, m, lambda r, _, k: shifted(r, k), "sum", L)
            s2 = row_reduction(method, "s2", rows_shape, m, lambda r, _, k: shifted(r, k) * shifted(r, k), "sum", L)

            def out_fn(*i):
                r = i[:-1]
                d_mean = s1.value(*r) * inv_m
                var = te.max_(s2.value(*r) * inv_m - d_mean * d_mean, 0.0)
                return (x[i] - x[(*r, 0)] - d_mean) * (1.0 / te.sqrt(var + eps)) * gamma[i[-1]] + beta[i[-1]]

            out = te.compute(x.shape, out_fn, name="out")
            reds = (s1, s2)
            s = te.create_schedule(out)
        else:
            total = row_reduction(method, "s1", rows_shape, m, lambda r, _, k: x[(*r, k)], "sum", L)
            mean = te.compute(rows_shape, lambda *r: total.value(*r) * inv_m, name="mean")

            def dev(r, k):
                return (x[(*r, k)] - mean[r]) * (x[(*r, k)] - mean[r])

            s2 = row_reduction(method, "s2", rows_shape, m, lambda r, _, k: dev(r, k), "sum", L)
            out = te.compute(x.shape, lambda *i: (x[i] - mean[i[:-1]]) * (1.0 / te.sqrt(s2.value(*i[:-1]) * inv_m + eps))
                             * gamma[i[-1]] + beta[i[-1]], name="out")
            reds = (s2,)
            s = te.create_schedule(out)
            mrow = fuse_rows(s[mean], list(s[mean].axis))
            if par and mrow is not None:
                s[mean].parallel(mrow)
            total.schedule(s, s[mean] if mrow is not None else None, mrow)
        row = schedule_rows(s[out], cfg["vec"], par)
        for red in reds:
            red.schedule(s, s[out] if row is not None else None, row)
        return Instance(s, [x, gamma, beta, out], dims)

    def reference(self, sig, inputs):
        x, gamma, beta = (a.astype("float64") for a in inputs)
        eps = float(sig.attr("eps", 1e-5))
        if x.size == 0:
            return [inputs[0].copy()]
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return [((x - mean) / np.sqrt(var + eps) * gamma + beta).astype(inputs[0].dtype)]

    def flops(self, sig, dims):
        """Two adds and a multiply for the sums, four multiply-adds for the output, per element."""
        return 7 * element_count(sig.args[0][0], dims)

    def bytes_moved(self, sig, dims):
        return 8 * element_count(sig.args[0][0], dims)


def layer_norm_signature(shape, eps: float = 1e-5, dtype: str = "float32") -> Signature:
    """layer_norm over the last axis of x of ``shape``; gamma and beta have the last dim."""
    return Signature.make([(tuple(shape), dtype), ((shape[-1],), dtype), ((shape[-1],), dtype)], axis=-1, eps=eps)
