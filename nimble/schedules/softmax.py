"""softmax over the last axis: out = exp(x - max(x)) / sum(exp(x - max(x))), rows may be symbolic.

Two passes over the rows, each a parallel row loop with its reductions attached per row:

* ``exp_store="buffer"``: pass 1 takes the row max (a lane reduction, see rowwise.py) and
  writes ``e = exp(x - max)`` to a scratch tensor; pass 2 sums ``e`` and scales it by
  ``1 / sum`` into the output. One exp per element.
* ``exp_store="recompute"``: pass 1 writes only the row maxima; pass 2 sums
  ``exp(x - max)`` and writes ``exp(x - max) / sum``: two exps per element, no scratch.

Knobs: lanes (max accumulator width: 16, 32 or 64 floats), vec (vector width of the
elementwise loops), exp_store, sum_method ("lanes" or "plain": one reduction LLVM
vectorizes), parallel ("rows" or "none").

Fallback (documented heuristic): lanes 32 when the representative row length is >= 64 else
16 (the max update is a compare + blend chain: more lanes, more independent chains); vec four
vector registers wide (64 on AVX-512, 32 on AVX2: several registers per step hide the exp's
latency, measured ~20% faster than 16 on AVX-512), but 16 for rows shorter than 32 (a vector
loop wider than the row runs only its tail: on Zen 3, rows of 32 took 70 us at vec 64 and 25 us at
vec 32, rows of 8 34 us at 64 and 18 us at 16); exp stored in a buffer (exp dominates the time);
plain sums (LLVM vectorizes them); rows in parallel.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..codegen.isa import host_isa
from .base import Instance, Signature, Template, TemplateError
from .rowwise import fuse_rows, row_len_hint, row_reduction, schedule_rows
from .space import ConfigSpace


def last_axis_input(sig: Signature, op: str, n_args: int = 1):
    """The shape of x in a last-axis operator's signature (checks arity, dtype and axis)."""
    if len(sig.args) != n_args:
        raise TemplateError(f"{op}: expected {n_args} argument(s), got {len(sig.args)}")
    shape, dtype = sig.args[0]
    if len(shape) < 1:
        raise TemplateError(f"{op}: x must have rank >= 1, got shape {shape}")
    if dtype != "float32":
        raise TemplateError(f"{op}: x must be float32, got {dtype}")
    axis = sig.attr("axis", -1)
    if axis not in (-1, len(shape) - 1):
        raise TemplateError(f"{op}: only the last axis is supported (axis=-1 or {len(shape) - 1}), got axis={axis}")
    return shape


def element_count(shape, dims: dict) -> int:
    return int(np.prod([dims[d] if isinstance(d, str) else d for d in shape], dtype=np.int64))


class Softmax(Template):
    def space(self, sig: Signature) -> ConfigSpace:
        last_axis_input(sig, "softmax")
        s = ConfigSpace("softmax")
        s.define_knob("lanes", (16, 32, 64))
        s.define_knob("vec", (16, 32, 64))
        s.define_knob("exp_store", ("buffer", "recompute"))
        s.define_knob("sum_method", ("lanes", "plain"))
        s.define_annotate("parallel", ("rows", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        m = row_len_hint(last_axis_input(sig, "softmax")[-1], hints)
        vec = 16 if m < 32 else min(64, 4 * host_isa().f32_lanes)
        return space.config(lanes=32 if m >= 64 else 16, vec=vec, exp_store="buffer", sum_method="plain",
                            parallel="rows")

    def instantiate(self, sig, cfg) -> Instance:
        last_axis_input(sig, "softmax")
        (x,), dims = sig.placeholders(["x"])
        rows_shape, m = x.shape[:-1], x.shape[-1]
        L, vec, par = cfg["lanes"], cfg["vec"], cfg["parallel"] == "rows"
        mx_red = row_reduction("lanes", "max", rows_shape, m, lambda r, _, k: x[(*r, k)], "max", L)
        if cfg["exp_store"] == "buffer":
            e = te.compute(x.shape, lambda *i: te.exp(x[i] - mx_red.value(*i[:-1])), name="e")
            sum_red = row_reduction(cfg["sum_method"], "sum", rows_shape, m, lambda r, _, k: e[(*r, k)], "sum", L)
            out = te.compute(x.shape, lambda *i: e[i] * (1.0 / sum_red.value(*i[:-1])), name="out")
            s = te.create_schedule(out)
            mx_red.schedule(s, s[e], schedule_rows(s[e], vec, par))
        else:
            mx = te.compute(rows_shape, lambda *r: mx_red.value(*r), name="mx")
            sum_red = row_reduction(cfg["sum_method"], "sum", rows_shape, m,
                                    lambda r, _, k: te.exp(x[(*r, k)] - mx[r]), "sum", L)
            out = te.compute(x.shape, lambda *i: te.exp(x[i] - mx[i[:-1]]) * (1.0 / sum_red.value(*i[:-1])),
                             name="out")
            s = te.create_schedule(out)
            row = None
            if rows_shape:
                row = fuse_rows(s[mx], list(s[mx].axis))
                if par:
                    s[mx].parallel(row)
            mx_red.schedule(s, s[mx] if row is not None else None, row)
        row = schedule_rows(s[out], vec, par)
        sum_red.schedule(s, s[out] if row is not None else None, row)
        return Instance(s, [x, out], dims)

    def reference(self, sig, inputs):
        x = inputs[0].astype("float64")
        e = np.exp(x - x.max(axis=-1, keepdims=True)) if x.size else x
        return [(e / e.sum(axis=-1, keepdims=True)).astype(inputs[0].dtype) if x.size else inputs[0].copy()]

    def flops(self, sig, dims):
        """One max, subtract, exp, add and multiply per element."""
        return 5 * element_count(sig.args[0][0], dims)

    def bytes_moved(self, sig, dims):
        return 8 * element_count(sig.args[0][0], dims)


def softmax_signature(shape, dtype: str = "float32") -> Signature:
    """softmax over the last axis of x of ``shape`` (ints and symbolic dim names)."""
    return Signature.make([(tuple(shape), dtype)], axis=-1)
