"""reduce: sum / mean / max / min of x over ``axes`` (attrs ``axes``, ``op``, ``keepdims``).

Two loop shapes, chosen by whether the last axis is reduced:

* inner (the last axis is reduced): a row reduction per output element (rowwise.py): lanes
  (``partial[.., l]`` over contiguous vectors, a scalar tail, a tree) or plain (one te
  reduction; LLVM vectorizes sums but not max/min). Other reduced axes loop outside it.
* outer (the last axis is kept): the output's last axis is split by ``vec`` and vectorized
  with the reduction loops outside that vector loop, so every update is a contiguous vector
  load and a vector max/add into the output tile.

Knobs: method ("lanes" or "plain"; inner only), lanes (16, 32, 64: the accumulator width for
inner, the vector width for outer), parallel ("rows": the fused kept axes, or "none").

Fallback (documented heuristic): lanes method; width 32 when the representative reduced
row (or kept last axis) is >= 64 else 16; rows in parallel.
"""
from __future__ import annotations

import numpy as np

from .. import te
from .base import Instance, Signature, Template, TemplateError
from .rowwise import REDUCER, fuse_rows, row_len_hint, row_reduction, schedule_rows
from .softmax import element_count
from .space import ConfigSpace

OPS = ("sum", "mean", "max", "min")


def _check(sig: Signature):
    if len(sig.args) != 1:
        raise TemplateError(f"reduce: expected one argument x, got {len(sig.args)}")
    shape, dtype = sig.args[0]
    if dtype != "float32":
        raise TemplateError(f"reduce: x must be float32, got {dtype}")
    op = sig.attr("op", "sum")
    if op not in OPS:
        raise TemplateError(f"reduce: op must be one of {OPS}, got {op!r}")
    rank = len(shape)
    axes = sig.attr("axes")
    axes = tuple(range(rank)) if axes is None else tuple(axes)
    norm = []
    for a in axes:
        if not -rank <= a < rank:
            raise TemplateError(f"reduce: axis {a} is out of range for x of rank {rank}")
        norm.append(a % rank)
    if not norm or len(set(norm)) != len(norm):
        raise TemplateError(f"reduce: axes must be distinct and non-empty, got {axes}")
    return shape, op, tuple(sorted(norm)), bool(sig.attr("keepdims", False))


class Reduce(Template):
    def space(self, sig):
        _check(sig)
        s = ConfigSpace("reduce")
        s.define_knob("method", ("lanes", "plain"))
        s.define_knob("lanes", (16, 32, 64))
        s.define_annotate("parallel", ("rows", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        shape, _, _, _ = _check(sig)
        m = row_len_hint(shape[-1], hints)
        return space.config(method="lanes", lanes=32 if m >= 64 else 16, parallel="rows")

    def instantiate(self, sig, cfg) -> Instance:
        shape, op, axes, keepdims = _check(sig)
        (x,), dims = sig.placeholders(["x"])
        rank = len(shape)
        kept = [d for d in range(rank) if d not in axes]
        combiner = "sum" if op == "mean" else op
        scale = None
        if op == "mean":
            count = te.const(1)
            for d in axes:
                count = count * x.shape[d]
            scale = 1.0 / count.astype("float32")  # an empty mean is NaN, as numpy's

        def at(rows, red_vars):
            """x's index tuple from the kept-axis and reduced-axis variables."""
            idx, r, q = [], iter(rows), iter(red_vars)
            for d in range(rank):
                idx.append(next(q) if d in axes else next(r))
            return tuple(idx)

        def out_shape_index(i):
            """kept-axis indices from the output's indices (dropping keepdims' 1s)."""
            return [i[d] for d in kept] if keepdims else list(i)

        out_shape = tuple(x.shape[d] if d in kept else 1 for d in range(rank)) if keepdims else \
            tuple(x.shape[d] for d in kept)
        par = cfg["parallel"] == "rows"
        if rank - 1 in axes:  # inner
            rows_shape = tuple(x.shape[d] for d in kept)
            extra = [x.shape[d] for d in axes[:-1]]
            red = row_reduction(cfg["method"], "r", rows_shape, x.shape[-1],
                                lambda r, ev, k: x[at(r, list(ev) + [k])], combiner, cfg["lanes"], extra)

            def body(*i):
                v = red.value(*out_shape_index(i))
                return v * scale if scale is not None else v

            out = te.compute(out_shape, body, name="out")
            s = te.create_schedule(out)
            row = fuse_rows(s[out], list(s[out].axis))
            if par and row is not None:
                s[out].parallel(row)
            red.schedule(s, s[out] if row is not None else None, row)
            return Instance(s, [x, out], dims)
        red_axes = [te.reduce_axis(x.shape[d], f"r{d}") for d in axes]
        reducer = REDUCER[combiner]
        total = te.compute(out_shape, lambda *i: reducer(x[at(out_shape_index(i), [a.var for a in red_axes])],
                                                         axis=red_axes), name="total" if scale is not None else "out")
        out = total if scale is None else te.compute(out_shape, lambda *i: total[i] * scale, name="out")
        s = te.create_schedule(out)
        st = s[total]
        *lead, last = st.axis
        row = fuse_rows(st, list(lead))
        lo, li = st.split(last, cfg["lanes"])
        st.reorder(*([row] if row is not None else []), lo, *st.reduce_axis, li)
        st.vectorize(li)
        if par:
            st.parallel(row if row is not None else lo)
        if scale is not None:
            schedule_rows(s[out], cfg["lanes"], par)
        return Instance(s, [x, out], dims)

    def reference(self, sig, inputs):
        _, op, axes, keepdims = _check(sig)
        x = inputs[0].astype("float64")
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}[op]
        return [np.asarray(fn(x, axis=axes, keepdims=keepdims)).astype(inputs[0].dtype)]

    def flops(self, sig, dims):
        return element_count(sig.args[0][0], dims)

    def bytes_moved(self, sig, dims):
        return 4 * element_count(sig.args[0][0], dims)


def reduce_signature(shape, axes, op: str = "sum", keepdims: bool = False) -> Signature:
    """Reduce x of ``shape`` (ints and dim names) over ``axes`` with ``op``."""
    return Signature.make([(tuple(shape), "float32")], axes=list(axes), op=op, keepdims=keepdims)
