"""Static memory planning (the Nimble paper's): statically sized tensors that never escape their
function share one arena, at offsets chosen at compile time so that tensors live at the same time
never share a byte (``plan_offsets``); one ``alloc_storage`` of the arena replaces one per tensor.
"""
from __future__ import annotations

import math
from dataclasses import fields

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import NimbleError
from . import bytecode as bc
from .bytecode_cfg import (
    READ_FIELDS, AbsIf, dst_of, is_dag, rebuild, single_def, successors, uses_of, write_counts,
)

ARENA_ALIGNMENT = 64


def plan_offsets(intervals: list, alignment: int = ARENA_ALIGNMENT) -> tuple:
    """Byte offsets in one arena for ``intervals`` of ``(first pc, last pc, nbytes)``: two whose pc
    ranges overlap (inclusive) never share a byte. Largest first, each at the lowest aligned offset
    free of the ranges of those already placed that overlap it in time. ``(offsets, arena bytes)``."""
    order = sorted(range(len(intervals)), key=lambda k: (-intervals[k][2], intervals[k][0], k))
    placed: list = []  # (start, end, offset, nbytes)
    offsets = [0] * len(intervals)
    for k in order:
        start, end, nbytes = intervals[k]
        if nbytes < 0 or end < start:
            raise NimbleError(f"plan_offsets: interval {k} {intervals[k]} is not (first <= last, nbytes >= 0)")
        busy = sorted((o, o + n) for s, e, o, n in placed if s <= end and start <= e and n > 0)
        offset = 0
        for lo, hi in busy:
            if offset + nbytes <= lo or nbytes == 0:
                break
            offset = max(offset, -(-hi // alignment) * alignment)
        offsets[k] = offset
        placed.append((start, end, offset, nbytes))
    total = max((o + n for _, _, o, n in placed), default=0)
    return offsets, total


_ESCAPE_FREE = {bc.InvokePacked: ("args",), AbsIf: ("test", "target"), bc.ShapeOf: ("tensor",),
                bc.AllocStorage: ("size",), bc.AllocTensorReg: ("shape_reg",), bc.DeviceCopy: ("src",)}


def _stays_inside(code: list, r: int, users: list) -> bool:
    """Every read of ``r`` uses its value there and then (no move, return, call, ADT, view)."""
    for u in users:
        ins = code[u]
        allowed = _ESCAPE_FREE.get(type(ins), ())
        for f in fields(ins):
            if f.name in READ_FIELDS and f.name not in allowed:
                v = getattr(ins, f.name)
                if r in (v if isinstance(v, tuple) else (v,)):
                    return False
    return True


def plan_memory(code: list, nparams: int, nregs: int) -> tuple:
    """Static memory planning (see the module docstring): ``(code, register count, arena registers)``."""
    if not is_dag(code):
        return code, nregs, set()
    writes, uses = write_counts(code), uses_of(code)
    where = {dst_of(ins): pc for pc, ins in enumerate(code) if isinstance(ins, bc.AllocStorage)}
    found = []  # (alloc_storage pc, alloc_tensor pc, last use pc, nbytes)
    for pc, ins in enumerate(code):
        if not isinstance(ins, bc.AllocTensor) or ins.offset != 0 or ins.storage not in where:
            continue
        st, t = ins.storage, ins.dst
        if not (single_def(st, writes, nparams) and st >= nparams and uses.get(st) == [pc]):
            continue
        if not (t >= nparams and single_def(t, writes, nparams) and uses.get(t)):
            continue
        if code[where[st]].alignment > ARENA_ALIGNMENT or not _stays_inside(code, t, uses[t]):
            continue
        nbytes = math.prod(ins.shape) * numpy_dtype(ins.dtype).itemsize
        found.append((where[st], pc, max(uses[t]), nbytes))
    if len(found) < 2:
        return code, nregs, set()
    offsets, total = plan_offsets([(a, last, n) for _, a, last, n in found])
    size_reg, arena = nregs, nregs + 1
    first = min(s for s, *_ in found)
    jumps = [(pc, s) for pc in range(len(code)) for s in successors(code, pc) if s != pc + 1]
    at = next(p for p in range(first, -1, -1) if not any(u < p < v for u, v in jumps))
    pieces: dict = {}
    for (s, a, _, _), off in zip(found, offsets):
        pieces[s] = []
        t = code[a]
        pieces[a] = [bc.AllocTensor(arena, off, t.shape, t.dtype, t.dst)]
    pieces[at] = [bc.LoadConsti(max(total, 1), size_reg), bc.AllocStorage(size_reg, ARENA_ALIGNMENT, 0, arena),
                  *pieces.get(at, (code[at],))]
    return rebuild(code, pieces), nregs + 2, {arena}
