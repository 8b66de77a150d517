"""Bytecode optimisations that help both VMs: ``optimize_bytecode(functions) -> functions``.

Applied to every compiled ``VMFunction`` (after ``insert_kills``), in this order:

1. ``kill`` instructions are dropped (liveness is recomputed at the end, step 6);
2. ``tuples``: a tuple built only to be taken apart (``alloc_adt`` whose every use is a
   ``get_field``) is never built: its readers read the field registers directly;
3. ``memory`` (static memory planning, the paper's): tensors of a static shape whose storage is
   used by that tensor alone and that never escape the function (read only by kernel calls,
   comparisons and shape reads) get byte ranges of one arena per function, chosen at compile time
   (``plan_offsets``) so that tensors live at the same time never share a byte; one
   ``alloc_storage`` of the arena replaces one per tensor;
4. ``loops``: a self call in tail position becomes moves into the parameter registers and a jump
   back (the Python VM no longer pushes a frame per step; the native VM already did this);
   constant loads and the arena's allocation are hoisted in front of the loop;
5. dead pure instructions (loads, moves, allocations nobody reads) are removed;
6. liveness: ``VMFunction.dead_after[pc]`` lists the registers whose last use (on every path)
   is ``pc``; both VMs drop them after running ``pc``, as ``kill`` instructions did.

Every step is a function of the bytecode alone; ``NIMBLE_BYTECODE_OPT=0`` switches all of them off
(the compiler then keeps ``insert_kills``' kill instructions).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace

import numpy as np

from ..errors import NimbleError
from . import bytecode as bc
from .liveness import _reads as _instr_reads

PASSES = ("tuples", "memory", "loops")
ARENA_ALIGNMENT = 64
_READ_FIELDS = ("src", "result", "args", "closure", "size", "storage", "shape_reg", "fields", "captured", "obj",
                "test", "target", "tensor", "newshape")
_PURE = (bc.LoadConst, bc.LoadConsti, bc.Move, bc.AllocADT, bc.AllocClosure, bc.AllocStorage, bc.AllocTensor,
         bc.ShapeOf)


def bytecode_opt_enabled() -> bool:
    """``NIMBLE_BYTECODE_OPT`` (default 1): 0 keeps the compiler's bytecode as it is."""
    value = os.environ.get("NIMBLE_BYTECODE_OPT", "1")
    if value not in ("0", "1"):
        raise NimbleError(f"NIMBLE_BYTECODE_OPT: expected 0 or 1, got {value!r}")
    return value == "1"


# ---------------------------------------------------------------- absolute-jump form

@dataclass(frozen=True, slots=True)
class _If:
    """``bc.If`` with absolute targets (indices into the code list being rewritten)."""

    test: int
    target: int
    on_true: int
    on_false: int


@dataclass(frozen=True, slots=True)
class _Goto:
    to: int


def _absolute(instrs) -> list:
    out = []
    for pc, ins in enumerate(instrs):
        if isinstance(ins, bc.If):
            out.append(_If(ins.test, ins.target, pc + ins.true_offset, pc + ins.false_offset))
        elif isinstance(ins, bc.Goto):
            out.append(_Goto(pc + ins.offset))
        else:
            out.append(ins)
    return out


def _relative(code: list) -> tuple:
    out = []
    for pc, ins in enumerate(code):
        if isinstance(ins, _If):
            out.append(bc.If(ins.test, ins.target, ins.on_true - pc, ins.on_false - pc))
        elif isinstance(ins, _Goto):
            out.append(bc.Goto(ins.to - pc))
        else:
            out.append(ins)
    return tuple(out)


def _rebuild(code: list, pieces: dict) -> list:
    """``code`` with instruction ``i`` replaced by the list ``pieces[i]`` (possibly empty). Jump
    targets (old indices, in ``code`` and in the pieces) move to the first instruction emitted for
    their target, or the next one emitted after it."""
    out, first = [], []
    for i, ins in enumerate(code):
        first.append(len(out))
        out.extend(pieces.get(i, (ins,)))
    first.append(len(out))

    def target(t: int) -> int:
        return first[t]

    for k, ins in enumerate(out):
        if isinstance(ins, _If):
            out[k] = _If(ins.test, ins.target, target(ins.on_true), target(ins.on_false))
        elif isinstance(ins, _Goto):
            out[k] = _Goto(target(ins.to))
    return out


def _reads(ins) -> list:
    if isinstance(ins, _If):
        return [ins.test, ins.target]
    if isinstance(ins, (_Goto, bc.KillRegister)):
        return []
    return _instr_reads(ins)


def _dst(ins):
    return getattr(ins, "dst", None)


def _successors(code: list, pc: int) -> tuple:
    ins = code[pc]
    if isinstance(ins, _If):
        return (ins.on_true, ins.on_false)
    if isinstance(ins, _Goto):
        return (ins.to,)
    if isinstance(ins, (bc.Ret, bc.Fatal)):
        return ()
    return (pc + 1,) if pc + 1 < len(code) else ()


def _write_counts(code: list) -> dict:
    writes: dict = {}
    for ins in code:
        d = _dst(ins)
        if d is not None:
            writes[d] = writes.get(d, 0) + 1
    return writes


def _uses(code: list) -> dict:
    uses: dict = {}
    for pc, ins in enumerate(code):
        for r in _reads(ins):
            uses.setdefault(r, []).append(pc)
    return uses


def _is_dag(code: list) -> bool:
    return all(s > pc for pc in range(len(code)) for s in _successors(code, pc) if s != pc + 1)


def _rename_reads(ins, rename: dict):
    """``ins`` reading ``rename[r]`` wherever it read ``r``."""
    if isinstance(ins, _If):
        return _If(rename.get(ins.test, ins.test), rename.get(ins.target, ins.target), ins.on_true, ins.on_false)
    changes = {}
    for f in fields(ins):
        if f.name not in _READ_FIELDS:
            continue
        v = getattr(ins, f.name)
        new = tuple(rename.get(r, r) for r in v) if isinstance(v, tuple) else rename.get(v, v)
        if new != v:
            changes[f.name] = new
    return replace(ins, **changes) if changes else ins


def _single_def(r: int, writes: dict, nparams: int) -> bool:
    """``r`` holds one value for the whole function: a parameter never written, or written once."""
    return writes.get(r, 0) == 0 if r < nparams else writes.get(r, 0) == 1


# ---------------------------------------------------------------- 2. tuples built to be taken apart

def eliminate_tuple_unpack(code: list, nparams: int) -> list:
    """``alloc_adt $t <- [...]`` whose every use is ``get_field $d <- $t[i]``: the tuple is not
    built; reads of ``$d`` read the field's register (a ``move`` where either is written twice)."""
    writes, uses = _write_counts(code), _uses(code)
    pieces: dict = {}
    rename: dict = {}
    for pc, ins in enumerate(code):
        if not isinstance(ins, bc.AllocADT) or not _single_def(ins.dst, writes, nparams) or ins.dst < nparams:
            continue
        users = uses.get(ins.dst, [])
        if not users or not all(isinstance(code[u], bc.GetField) and code[u].obj == ins.dst
                                and code[u].index < len(ins.fields) for u in users):
            continue
        pieces[pc] = []
        for u in users:
            g = code[u]
            src = ins.fields[g.index]
            if g.dst >= nparams and _single_def(g.dst, writes, nparams) and _single_def(src, writes, nparams):
                rename[g.dst] = src
                pieces[u] = []
            else:
                pieces[u] = [bc.Move(src, g.dst)]

    def resolve(r):
        seen = set()
        while r in rename and r not in seen:
            seen.add(r)
            r = rename[r]
        return r

    rename = {r: resolve(r) for r in rename}
    code = _rebuild(code, pieces)
    return [_rename_reads(ins, rename) for ins in code] if rename else code


# ---------------------------------------------------------------- 3. static memory planning

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


_ESCAPE_FREE = {bc.InvokePacked: ("args",), _If: ("test", "target"), bc.ShapeOf: ("tensor",),
                bc.AllocStorage: ("size",), bc.AllocTensorReg: ("shape_reg",), bc.DeviceCopy: ("src",)}


def _stays_inside(code: list, r: int, users: list) -> bool:
    """Every read of ``r`` uses its value there and then (no move, return, call, ADT, view)."""
    for u in users:
        ins = code[u]
        allowed = _ESCAPE_FREE.get(type(ins), ())
        for f in fields(ins):
            if f.name in _READ_FIELDS and f.name not in allowed:
                v = getattr(ins, f.name)
                if r in (v if isinstance(v, tuple) else (v,)):
                    return False
    return True


def plan_memory(code: list, nparams: int, nregs: int) -> tuple:
    """Static memory planning (see the module docstring): ``(code, register count, arena registers)``."""
    if not _is_dag(code):
        return code, nregs, set()
    writes, uses = _write_counts(code), _uses(code)
    where = {_dst(ins): pc for pc, ins in enumerate(code) if isinstance(ins, bc.AllocStorage)}
    found = []  # (alloc_storage pc, alloc_tensor pc, last use pc, nbytes)
    for pc, ins in enumerate(code):
        if not isinstance(ins, bc.AllocTensor) or ins.offset != 0 or ins.storage not in where:
            continue
        st, t = ins.storage, ins.dst
        if not (_single_def(st, writes, nparams) and st >= nparams and uses.get(st) == [pc]):
            continue
        if not (t >= nparams and _single_def(t, writes, nparams) and uses.get(t)):
            continue
        if code[where[st]].alignment > ARENA_ALIGNMENT or not _stays_inside(code, t, uses[t]):
            continue
        nbytes = math.prod(ins.shape) * np.dtype(ins.dtype).itemsize
        found.append((where[st], pc, max(uses[t]), nbytes))
    if len(found) < 2:
        return code, nregs, set()
    offsets, total = plan_offsets([(a, last, n) for _, a, last, n in found])
    size_reg, arena = nregs, nregs + 1
    first = min(s for s, *_ in found)
    jumps = [(pc, s) for pc in range(len(code)) for s in _successors(code, pc) if s != pc + 1]
    at = next(p for p in range(first, -1, -1) if not any(u < p < v for u, v in jumps))
    pieces: dict = {}
    for (s, a, _, _), off in zip(found, offsets):
        pieces[s] = []
        t = code[a]
        pieces[a] = [bc.AllocTensor(arena, off, t.shape, t.dtype, t.dst)]
    pieces[at] = [bc.LoadConsti(max(total, 1), size_reg), bc.AllocStorage(size_reg, ARENA_ALIGNMENT, 0, arena),
                  *pieces.get(at, (code[at],))]
    return _rebuild(code, pieces), nregs + 2, {arena}


# ---------------------------------------------------------------- 4. tail self calls -> loops, hoisting

def _is_tail(code: list, pc: int) -> bool:
    cur, k, seen = code[pc].dst, pc + 1, set()
    while 0 <= k < len(code) and k not in seen:
        seen.add(k)
        ins = code[k]
        if isinstance(ins, bc.Move) and ins.src == cur:
            cur, k = ins.dst, k + 1
        elif isinstance(ins, _Goto):
            k = ins.to
        elif isinstance(ins, bc.Ret):
            return ins.result == cur
        else:
            return False
    return False


def _parallel_move(moves: dict, scratch: int) -> list:
    """Moves making ``dst = src`` for every ``dst: src`` at once (``scratch`` breaks cycles)."""
    pending = {d: s for d, s in moves.items() if d != s}
    out = []
    while pending:
        ready = [d for d in pending if d not in pending.values()]
        if ready:
            for d in ready:
                out.append(bc.Move(pending.pop(d), d))
            continue
        d, s = next(iter(pending.items()))  # a cycle: park one source
        out.append(bc.Move(s, scratch))
        pending[d] = scratch
        for k, v in list(pending.items()):
            if v == s and k != d:
                pending[k] = scratch
        out.append(bc.Move(pending.pop(d), d))
    return out


def loops_from_tail_calls(code: list, index: int, nparams: int, nregs: int, hoistable: set) -> tuple:
    """Self calls of function ``index`` in tail position become moves into the parameters and a jump
    back; then constant loads and the allocations of ``hoistable`` registers (written once) move in
    front of the loop. ``(code, register count)``."""
    tails = [pc for pc, ins in enumerate(code)
             if isinstance(ins, bc.Invoke) and ins.func_index == index and _is_tail(code, pc)]
    if not tails:
        return code, nregs
    scratch = nregs
    pieces = {pc: _parallel_move(dict(enumerate(code[pc].args)), scratch) + [_Goto(0)] for pc in tails}
    code = _rebuild(code, pieces)
    writes = _write_counts(code)
    lifted = {}
    for pc, ins in enumerate(code):
        if isinstance(ins, (bc.LoadConst, bc.LoadConsti)) and ins.dst >= nparams and writes[ins.dst] == 1:
            lifted[pc] = ins
    for pc, ins in enumerate(code):
        if isinstance(ins, bc.AllocStorage) and ins.dst in hoistable and writes[ins.dst] == 1 \
                and any(isinstance(h, bc.LoadConsti) and h.dst == ins.size for h in lifted.values()):
            lifted[pc] = ins
    body = _rebuild(code, {pc: [] for pc in lifted})
    k = len(lifted)
    shifted = [_If(i.test, i.target, i.on_true + k, i.on_false + k) if isinstance(i, _If)
               else _Goto(i.to + k) if isinstance(i, _Goto) else i for i in body]
    return [lifted[pc] for pc in sorted(lifted)] + shifted, nregs + 1


# ---------------------------------------------------------------- 5. dead code, 6. liveness

def remove_dead_code(code: list) -> list:
    """Drop instructions no path from the entry reaches, pure instructions whose destination
    nobody reads (until none is left) and self-moves."""
    reached, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc not in reached and pc < len(code):
            reached.add(pc)
            todo.extend(_successors(code, pc))
    if len(reached) < len(code):
        code = _rebuild(code, {pc: [] for pc in range(len(code)) if pc not in reached})
    while True:
        read = {r for ins in code for r in _reads(ins)}
        drop = {pc: [] for pc, ins in enumerate(code)
                if (isinstance(ins, _PURE) and ins.dst not in read)
                or (isinstance(ins, bc.Move) and ins.src == ins.dst)}
        if not drop:
            return code
        code = _rebuild(code, drop)


def dead_after(code: list) -> tuple:
    """Per instruction, the registers it reads or writes that no path from it reads again before
    writing them (sorted). Calls keep their destination (written when the callee returns);
    ``ret`` and ``fatal`` end the frame and list nothing."""
    n = len(code)
    succ = [_successors(code, pc) for pc in range(n)]
    reads = [set(_reads(ins)) for ins in code]
    defs = [{_dst(ins)} - {None} for ins in code]
    live_in = [set() for _ in range(n)]
    changed = True
    while changed:
        changed = False
        for pc in range(n - 1, -1, -1):
            out = set().union(*(live_in[s] for s in succ[pc])) if succ[pc] else set()
            new = reads[pc] | (out - defs[pc])
            if new != live_in[pc]:
                live_in[pc] = new
                changed = True
    result = []
    for pc, ins in enumerate(code):
        if isinstance(ins, (bc.Ret, bc.Fatal)):
            result.append(())
            continue
        out = set().union(*(live_in[s] for s in succ[pc])) if succ[pc] else set()
        dead = (reads[pc] | defs[pc]) - out
        if isinstance(ins, (bc.Invoke, bc.InvokeClosure)):
            dead.discard(ins.dst)
        result.append(tuple(sorted(dead)))
    return tuple(result)


# ---------------------------------------------------------------- driver

def optimize_function(func: bc.VMFunction, index: int, passes=PASSES) -> bc.VMFunction:
    """One function through the steps of the module docstring (``passes``: a subset of ``PASSES``)."""
    unknown = set(passes) - set(PASSES)
    if unknown:
        raise NimbleError(f"optimize_bytecode: unknown passes {sorted(unknown)}; known: {PASSES}")
    nparams, nregs = len(func.params), func.register_count
    code = _absolute(func.instructions)
    code = _rebuild(code, {pc: [] for pc, ins in enumerate(code) if isinstance(ins, bc.KillRegister)})
    if "tuples" in passes:
        code = remove_dead_code(eliminate_tuple_unpack(code, nparams))
    arenas: set = set()
    if "memory" in passes:
        code, nregs, arenas = plan_memory(remove_dead_code(code), nparams, nregs)
    if "loops" in passes:
        code, nregs = loops_from_tail_calls(code, index, nparams, nregs, arenas)
    code = remove_dead_code(code)
    return bc.VMFunction(func.name, func.params, _relative(code), nregs, dead_after(code))


def optimize_bytecode(functions, passes=PASSES) -> tuple:
    """The bytecode optimisations of this module over a program's ``VMFunction``s (in their
    executable order: function ``i`` calls itself as ``invoke`` of index ``i``), as a tuple.
    A pass of the form ``functions -> functions`` for the compiler's pipeline."""
    return tuple(optimize_function(f, i, passes) for i, f in enumerate(functions))
