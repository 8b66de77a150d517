"""A generic schedule for any te graph: what a fused primitive function gets when no template fits.

Rules: elementwise intermediate stages are inlined into their consumers; every other stage
(reductions, and the outputs) is computed at the root with its outermost spatial axes fused
and run in parallel and, when its last axis is a static extent of at least 16 or a symbolic
one, that axis split by 16 with the inner part vectorized (a symbolic extent gets a
guard-free main loop and a tail). A reduction keeps its reduction loops innermost (LLVM
vectorizes sum reductions over a contiguous axis).
"""
from __future__ import annotations

from ..te.expr import IntImm
from ..te.schedule import create_schedule
from ..te.tensor import ComputeOp

VECTOR = 16


def auto_schedule(outputs: list, keep: tuple = ()):
    """A schedule of ``outputs`` by the rules above; ``keep`` lists tensors never to inline."""
    s = create_schedule(outputs)
    for st in s.stages:
        op = st.op
        is_output = st.tensor in outputs or st.tensor in keep
        if not is_output and not op.reduce_axis and _inlinable(op):
            st.compute_inline()
    for st in s.stages:
        if st.attach == "inline":
            continue
        axes = list(st.op.axis)
        if not axes:
            continue
        last = axes[-1]
        ext = last.extent
        if not st.op.reduce_axis and (not isinstance(ext, IntImm) or ext.value >= VECTOR):
            lo, li = st.split(last, VECTOR)
            st.vectorize(li)
            axes[-1] = lo
        outer = axes[0]
        small = not isinstance(outer.extent, IntImm) or outer.extent.value < 8  # a batch of 1 is common
        if len(axes) >= 2 and small:
            outer = st.fuse(axes[0], axes[1])
        st.parallel(outer)
    return s


def _inlinable(op: ComputeOp) -> bool:
    """Inlining is safe for any injective stage; stages with value checks stay (they assert)."""
    return not op.checks
