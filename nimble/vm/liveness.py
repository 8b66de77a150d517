"""Register liveness in bytecode: ``KillRegister`` after a register's last read.

A kill drops the frame's reference, so a tensor's storage returns to the pool as soon as no
register or view holds it, and the next allocation of that size reuses it.
"""
from __future__ import annotations

from . import bytecode as bc


def _reads(instr) -> list:
    """Registers an instruction reads."""
    if isinstance(instr, bc.Move):
        return [instr.src]
    if isinstance(instr, bc.Ret):
        return [instr.result]
    if isinstance(instr, (bc.Invoke, bc.InvokePacked)):
        return list(instr.args)
    if isinstance(instr, bc.InvokeClosure):
        return [instr.closure, *instr.args]
    if isinstance(instr, bc.AllocStorage):
        return [instr.size]
    if isinstance(instr, bc.AllocTensor):
        return [instr.storage]
    if isinstance(instr, bc.AllocTensorReg):
        return [instr.storage, instr.shape_reg]
    if isinstance(instr, bc.AllocADT):
        return list(instr.fields)
    if isinstance(instr, bc.AllocClosure):
        return list(instr.captured)
    if isinstance(instr, (bc.GetField, bc.GetTag)):
        return [instr.obj]
    if isinstance(instr, bc.If):
        return [instr.test, instr.target]
    if isinstance(instr, (bc.ShapeOf,)):
        return [instr.tensor]
    if isinstance(instr, bc.ReshapeTensor):
        return [instr.tensor, instr.newshape]
    if isinstance(instr, bc.DeviceCopy):
        return [instr.src]
    return []


def insert_kills(instrs: list, nparams: int) -> list:
    """KillRegister after the last read of a register in straight-line code (no jump in between).

    Jumps are relative, so inserting instructions shifts them: kills are only inserted in
    blocks that no jump crosses; offsets of jumps are recomputed for the others."""
    n = len(instrs)
    block_of = [0] * n
    block = 0
    starts = {0}
    for i, ins in enumerate(instrs):
        if isinstance(ins, bc.If):
            starts.update((i + 1, i + ins.true_offset, i + ins.false_offset))
        elif isinstance(ins, bc.Goto):
            starts.update((i + 1, i + ins.offset))
        elif isinstance(ins, (bc.Ret, bc.Fatal)):
            starts.add(i + 1)
    for i in range(n):
        if i in starts:
            block += 1
        block_of[i] = block
    defined_in: dict = {}
    last_read: dict = {}
    for i, ins in enumerate(instrs):
        for r in _reads(ins):
            last_read[r] = i
        dst = getattr(ins, "dst", None)
        if dst is not None and dst not in defined_in:
            defined_in[dst] = i
    kills_after: dict = {}
    moved_into = {ins.dst for ins in instrs if isinstance(ins, bc.Move)}
    for r, i in last_read.items():
        if r < nparams or r in moved_into or r not in defined_in:
            continue
        if block_of[defined_in[r]] != block_of[i] or isinstance(instrs[i], bc.Ret):
            continue
        if any(getattr(instrs[j], "dst", None) == r for j in range(defined_in[r] + 1, i + 1)):
            continue
        kills_after.setdefault(i, []).append(r)
    out, new_index = [], []
    for i, ins in enumerate(instrs):
        new_index.append(len(out))
        out.append(ins)
        for r in kills_after.get(i, ()):
            out.append(bc.KillRegister(r))
    new_index.append(len(out))
    for i, ins in enumerate(instrs):
        at = new_index[i]
        if isinstance(ins, bc.If):
            out[at] = bc.If(ins.test, ins.target, new_index[i + ins.true_offset] - at,
                            new_index[i + ins.false_offset] - at)
        elif isinstance(ins, bc.Goto):
            out[at] = bc.Goto(new_index[i + ins.offset] - at)
    return out
