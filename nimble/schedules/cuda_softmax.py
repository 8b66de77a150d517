"""softmax over the last axis on CUDA: one thread per row.

Rows (the leading axes, fused) are split into blocks of ``threads`` rows (blockIdx.x /
threadIdx.x). Each thread computes its row's max and the sum of ``exp(x - max)`` into
registers ("local" reduction stages computed at the thread loop; the max twice, once for the
sum and once for the output, as a stage computed at one consumer may not be read by another),
then writes ``exp(x - max) * (1 / sum)`` for the row, the row loop unrolled by ``unroll``. It
is correct for any row length but reads each row four times from one thread: fast for the many short
rows of attention scores (seq <= 128), slow for a few long rows, where a block per row with a
warp-shuffle reduction (not built yet) is the right kernel.

Knobs: threads (32, 64, 128, 256), unroll (1, 4).

Fallback (documented heuristic): 128 threads (4 warps; a 64-row batch of attention scores still
fills a block), unroll 4 when the representative row length is a multiple of 4, else 1.
"""
from __future__ import annotations

from .. import te
from .cuda_template import CudaTemplate
from .base import Instance, TemplateError
from .softmax import Softmax, last_axis_input
from .space import ConfigSpace


class CudaSoftmax(CudaTemplate):
    reference = Softmax.reference
    flops = Softmax.flops

    def space(self, sig):
        if len(last_axis_input(sig, "softmax")) < 2:
            raise TemplateError("softmax (cuda): x must have rank >= 2 (rows to spread over threads)")
        s = ConfigSpace("softmax.cuda")
        s.define_knob("threads", (32, 64, 128, 256))
        s.define_knob("unroll", (1, 4))
        return s

    def fallback(self, sig, space, hints=None):
        m = last_axis_input(sig, "softmax")[-1]
        m = (hints or {}).get(m, 1) if isinstance(m, str) else m
        return space.config(threads=128, unroll=4 if m % 4 == 0 else 1)

    def instantiate(self, sig, cfg) -> Instance:
        last_axis_input(sig, "softmax")
        (x,), dims = sig.placeholders(["x"])
        rows, m = x.shape[:-1], x.shape[-1]
        k0, k1, k2 = (te.reduce_axis((0, m), f"k{q}") for q in range(3))
        # the row max twice: a stage computed at one consumer may not be read by another
        mx_sum = te.compute(rows, lambda *r: te.max(x[(*r, k0)], axis=k0), name="mx_sum")
        mx = te.compute(rows, lambda *r: te.max(x[(*r, k1)], axis=k1), name="mx")
        total = te.compute(rows, lambda *r: te.sum(te.exp(x[(*r, k2)] - mx_sum[r]), axis=k2), name="total")
        out = te.compute(x.shape, lambda *i: te.exp(x[i] - mx[i[:-1]]) * (1.0 / total[i[:-1]]), name="out")
        s = te.create_schedule(out)
        so = s[out]
        *lead, last = so.axis
        row = lead[0]  # rank >= 2 (checked by space)
        for ax in lead[1:]:
            row = so.fuse(row, ax)
        bx, attach = so.split(row, cfg["threads"])
        so.bind(bx, "blockIdx.x")
        so.bind(attach, "threadIdx.x")
        if cfg["unroll"] > 1:
            _, li = so.split(last, cfg["unroll"])
            so.unroll(li)
        for t in (mx, total, mx_sum):
            s[t].scope = "local"
        s[mx].compute_at(so, attach)
        s[total].compute_at(so, attach)
        s[mx_sum].compute_at(s[total], s[total].axis[-1])
        return Instance(s, [x, out], dims)
