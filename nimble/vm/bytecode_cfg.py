"""The bytecode in a form passes rewrite easily, and the analyses they share.

Jumps become absolute (``AbsIf``, ``AbsGoto``: targets are indices into the list being rewritten);
``rebuild`` replaces instructions by lists of instructions and moves jump targets along;
``dead_after`` is the liveness analysis behind ``VMFunction.dead_after``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from . import bytecode as bc
from .liveness import _reads as _instr_reads

READ_FIELDS = ("src", "result", "args", "closure", "size", "storage", "shape_reg", "fields", "captured", "obj",
               "test", "target", "tensor", "newshape")


@dataclass(frozen=True, slots=True)
class AbsIf:
    """``bc.If`` with absolute targets (indices into the code list being rewritten)."""

    test: int
    target: int
    on_true: int
    on_false: int


@dataclass(frozen=True, slots=True)
class AbsGoto:
    to: int


def absolute(instrs) -> list:
    out = []
    for pc, ins in enumerate(instrs):
        if isinstance(ins, bc.If):
            out.append(AbsIf(ins.test, ins.target, pc + ins.true_offset, pc + ins.false_offset))
        elif isinstance(ins, bc.Goto):
            out.append(AbsGoto(pc + ins.offset))
        else:
            out.append(ins)
    return out


def relative(code: list) -> tuple:
    out = []
    for pc, ins in enumerate(code):
        if isinstance(ins, AbsIf):
            out.append(bc.If(ins.test, ins.target, ins.on_true - pc, ins.on_false - pc))
        elif isinstance(ins, AbsGoto):
            out.append(bc.Goto(ins.to - pc))
        else:
            out.append(ins)
    return tuple(out)


def rebuild(code: list, pieces: dict) -> list:
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
        if isinstance(ins, AbsIf):
            out[k] = AbsIf(ins.test, ins.target, target(ins.on_true), target(ins.on_false))
        elif isinstance(ins, AbsGoto):
            out[k] = AbsGoto(target(ins.to))
    return out


def reads(ins) -> list:
    if isinstance(ins, AbsIf):
        return [ins.test, ins.target]
    if isinstance(ins, (AbsGoto, bc.KillRegister)):
        return []
    return _instr_reads(ins)


def dst_of(ins):
    return getattr(ins, "dst", None)


def successors(code: list, pc: int) -> tuple:
    ins = code[pc]
    if isinstance(ins, AbsIf):
        return (ins.on_true, ins.on_false)
    if isinstance(ins, AbsGoto):
        return (ins.to,)
    if isinstance(ins, (bc.Ret, bc.Fatal)):
        return ()
    return (pc + 1,) if pc + 1 < len(code) else ()


def write_counts(code: list) -> dict:
    writes: dict = {}
    for ins in code:
        d = dst_of(ins)
        if d is not None:
            writes[d] = writes.get(d, 0) + 1
    return writes


def uses_of(code: list) -> dict:
    uses: dict = {}
    for pc, ins in enumerate(code):
        for r in reads(ins):
            uses.setdefault(r, []).append(pc)
    return uses


def is_dag(code: list) -> bool:
    return all(s > pc for pc in range(len(code)) for s in successors(code, pc) if s != pc + 1)


def rename_reads(ins, rename: dict):
    """``ins`` reading ``rename[r]`` wherever it read ``r``."""
    if isinstance(ins, AbsIf):
        return AbsIf(rename.get(ins.test, ins.test), rename.get(ins.target, ins.target), ins.on_true, ins.on_false)
    changes = {}
    for f in fields(ins):
        if f.name not in READ_FIELDS:
            continue
        v = getattr(ins, f.name)
        new = tuple(rename.get(r, r) for r in v) if isinstance(v, tuple) else rename.get(v, v)
        if new != v:
            changes[f.name] = new
    return replace(ins, **changes) if changes else ins


def single_def(r: int, writes: dict, nparams: int) -> bool:
    """``r`` holds one value for the whole function: a parameter never written, or written once."""
    return writes.get(r, 0) == 0 if r < nparams else writes.get(r, 0) == 1


def dead_after(code: list) -> tuple:
    """Per instruction, the registers it reads or writes that no path from it reads again before
    writing them (sorted). Calls keep their destination (written when the callee returns);
    ``ret`` and ``fatal`` end the frame and list nothing."""
    n = len(code)
    succ = [successors(code, pc) for pc in range(n)]
    read_sets = [set(reads(ins)) for ins in code]
    defs = [{dst_of(ins)} - {None} for ins in code]
    live_in = [set() for _ in range(n)]
    changed = True
    while changed:
        changed = False
        for pc in range(n - 1, -1, -1):
            out = set().union(*(live_in[s] for s in succ[pc])) if succ[pc] else set()
            new = read_sets[pc] | (out - defs[pc])
            if new != live_in[pc]:
                live_in[pc] = new
                changed = True
    result = []
    for pc, ins in enumerate(code):
        if isinstance(ins, (bc.Ret, bc.Fatal)):
            result.append(())
            continue
        out = set().union(*(live_in[s] for s in succ[pc])) if succ[pc] else set()
        dead = (read_sets[pc] | defs[pc]) - out
        if isinstance(ins, (bc.Invoke, bc.InvokeClosure)):
            dead.discard(ins.dst)
        result.append(tuple(sorted(dead)))
    return tuple(result)
