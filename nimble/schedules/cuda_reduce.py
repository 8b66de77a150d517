"""reduce on CUDA (sum / mean / max / min over ``axes``): one thread per output element.

The output's axes are fused and split into blocks of ``threads`` elements (blockIdx.x /
threadIdx.x); each thread runs the reduction loops serially into a register (a "local"
stage computed at the thread loop), the innermost reduced axis split by ``unroll`` and
unrolled, and the mean's scale is applied when the value is stored. When the last axis is kept
(an "outer" reduction) consecutive threads read consecutive floats: coalesced. When it is
reduced, each thread walks its own row: right for many short rows; a block per row with a
warp-shuffle tree (not built yet) is the kernel for few long rows, and for a reduction to a
scalar, which this template refuses.

Knobs: threads (32, 64, 128, 256), unroll (1, 4).

Fallback (documented heuristic): 128 threads (4 warps per block, so that a few hundred
outputs still spread over many SMs); unroll 4 when the representative innermost reduced extent
is a multiple of 4, else 1.
"""
from __future__ import annotations

from .. import te
from .cuda_template import CudaTemplate
from .reduce import Reduce, _check
from .base import Instance, TemplateError
from .rowwise import REDUCER
from .space import ConfigSpace


class CudaReduce(CudaTemplate):
    reference = Reduce.reference
    flops = Reduce.flops

    def space(self, sig):
        shape, _, axes, _ = _check(sig)
        if len(axes) == len(shape):
            raise TemplateError("reduce (cuda): a reduction to a scalar needs a cross-thread tree, not built yet")
        s = ConfigSpace("reduce.cuda")
        s.define_knob("threads", (32, 64, 128, 256))
        s.define_knob("unroll", (1, 4))
        return s

    def fallback(self, sig, space, hints=None):
        shape, _, axes, _ = _check(sig)
        inner = shape[axes[-1]]
        inner = (hints or {}).get(inner, 1) if isinstance(inner, str) else inner
        return space.config(threads=128, unroll=4 if inner % 4 == 0 else 1)

    def instantiate(self, sig, cfg) -> Instance:
        shape, op, axes, keepdims = _check(sig)
        (x,), dims = sig.placeholders(["x"])
        rank = len(shape)
        kept = [d for d in range(rank) if d not in axes]
        red_axes = [te.reduce_axis(x.shape[d], f"r{d}") for d in axes]
        reducer = REDUCER["sum" if op == "mean" else op]

        def at(rows):
            r, q = iter(rows), iter(a.var for a in red_axes)
            return tuple(next(q) if d in axes else next(r) for d in range(rank))

        rows_shape = tuple(x.shape[d] for d in kept)
        acc = te.compute(rows_shape, lambda *r: reducer(x[at(r)], axis=red_axes), name="acc")
        scale = None
        if op == "mean":
            count = te.const(1)
            for d in axes:
                count = count * x.shape[d]
            scale = 1.0 / te.max_(count, 1).astype("float32")
        out_shape = tuple(x.shape[d] if d in kept else 1 for d in range(rank)) if keepdims else rows_shape

        def body(*i):
            v = acc[tuple(i[d] for d in kept) if keepdims else i]
            return v * scale if scale is not None else v

        out = te.compute(out_shape, body, name="out")
        s = te.create_schedule(out)
        so = s[out]
        flat = so.axis[0]
        for ax in so.axis[1:]:
            flat = so.fuse(flat, ax)
        bx, tx = so.split(flat, cfg["threads"])
        so.bind(bx, "blockIdx.x")
        so.bind(tx, "threadIdx.x")
        sa = s[acc]
        sa.scope = "local"
        sa.compute_at(so, tx)
        if cfg["unroll"] > 1:
            _, ri = sa.split(sa.reduce_axis[-1], cfg["unroll"])
            sa.unroll(ri)
        return Instance(s, [x, out], dims)
