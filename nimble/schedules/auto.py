"""A generic schedule for any te graph: what a fused primitive function gets when no template fits.

Rules: elementwise intermediate stages are inlined into their consumers; every other stage
(reductions, and the outputs) is computed at the root with its outermost spatial axes fused
and run in parallel and, when its last axis is a static extent of at least 16 or a symbolic
one, that axis split by 16 with the inner part vectorized (a symbolic extent gets a
guard-free main loop and a tail). A reduction keeps its reduction loops innermost (LLVM
vectorizes sum reductions over a contiguous axis).

A transposing stage (an input's contiguous last dim indexed by an output axis other than the last, while the
output's last axis indexes another dim of it) runs in 16 x 16 tiles: that axis is split by 16 too and its inner
part runs just outside the vector loop, so each tile's 16 input lines are read once from memory and used 16 times
from L1. Row by row, a (112 x 112, 64) -> (64, 112 x 112) transpose re-read every line 16 times from L3: 4.4 ms,
as numpy's copy.
"""
from __future__ import annotations

from ..te.expr import IntImm
from ..te.simplify import simplify
from ..te.visit import collect_loads, free_vars, substitute
from ..te.schedule import create_schedule
from ..te.tensor import ComputeOp

VECTOR = 16
TILE_TRANSPOSES = True


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
            partner = _transposed_axis(s, st) if len(axes) >= 2 and TILE_TRANSPOSES else None
            lo, li = st.split(last, VECTOR)
            if partner is not None:
                po, pi = st.split(partner, VECTOR)
                leaf = list(st.leaf_iter_vars)
                leaf.remove(pi)
                leaf.insert(leaf.index(li), pi)
                st.reorder(*leaf)
                axes[axes.index(partner)] = po
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


def _transposed_axis(s, st):
    """The output axis that indexes the contiguous last dim of an input read by the stage (through inlined
    stages) when the output's last axis indexes another dim of that input; else None."""
    axes = [iv.var for iv in st.op.axis]
    last = axes[-1]
    for tensor, indices in _placeholder_reads(s, st.op.body, {}):
        if len(indices) < 2:
            continue
        inner = indices[-1]
        if inner in axes and inner is not last and any(last in free_vars(i) for i in indices[:-1]):
            iv = st.op.axis[axes.index(inner)]
            if not isinstance(iv.extent, IntImm) or iv.extent.value >= VECTOR:
                return iv
    return None


def _placeholder_reads(s, expr, mapping: dict):
    """(tensor, index expressions over the stage's axes) of each read of a non-inlined tensor in ``expr``."""
    for load in collect_loads(expr):
        indices = tuple(simplify(substitute(i, mapping)) for i in load.indices)
        op = load.tensor.op
        stage = s.stages_by_op.get(op) if hasattr(s, "stages_by_op") else _stage_of(s, op)
        if isinstance(op, ComputeOp) and stage is not None and stage.attach == "inline":
            inner = {iv.var: idx for iv, idx in zip(op.axis, indices)}
            yield from _placeholder_reads(s, op.body, inner)
        else:
            yield load.tensor, indices


def _stage_of(s, op):
    for st in s.stages:
        if st.op is op:
            return st
    return None
