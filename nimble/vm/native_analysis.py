"""The frame analysis of one VM function for the native code generator: which registers hold
an immediate or a constructor tag only to be compared or to size an allocation (never
materialised), which are written once (no old value to release), and which self calls are
in tail position (jumps)."""
from __future__ import annotations

from . import bytecode as bc


class FrameAnalysis:
    """``FunctionEmitter``'s analysis (a mixin: it reads ``self.f``)."""

    def _analyse(self) -> None:
        ins = self.f.instructions
        self.dead = self.f.dead_after or ((),) * len(ins)
        dead = self.dead
        writes: dict = {}
        for i in ins:
            dst = getattr(i, "dst", None)
            if dst is not None:
                writes[dst] = writes.get(dst, 0) + 1
        np_ = len(self.f.params)
        consti = {i.dst: i.value for i in ins if isinstance(i, bc.LoadConsti) and writes[i.dst] == 1 and i.dst >= np_}
        tags = {i.dst: i.obj for i in ins if isinstance(i, bc.GetTag) and writes[i.dst] == 1 and i.dst >= np_}
        folded_c, folded_t = set(consti), set(tags)
        tag_pc = {i.dst: pc for pc, i in enumerate(ins) if isinstance(i, bc.GetTag)}

        targets = set()
        for pc, i in enumerate(ins):
            if isinstance(i, bc.Goto):
                targets.add(pc + i.offset)
            elif isinstance(i, bc.If):
                targets.update((pc + i.true_offset, pc + i.false_offset))

        def tag_still_there(r: int, pc: int) -> bool:  # the tag is read from its object at the `if`
            g, obj = tag_pc[r], tags[r]
            return g < pc and not any(obj in dead[k] for k in range(g, pc)) and not any(g < t <= pc for t in targets) and all(isinstance(x, (bc.LoadConsti, bc.KillRegister)) and getattr(x, "dst", None) != obj
                                  and getattr(x, "reg", None) != obj for x in ins[g + 1:pc])

        changed = True
        while changed:
            changed = False
            for pc, i in enumerate(ins):
                if isinstance(i, bc.If):
                    for r in (i.test, i.target):
                        if r in folded_t and not tag_still_there(r, pc):
                            folded_t.discard(r)
                            changed = True
                for r in _reads(i):
                    if isinstance(i, bc.KillRegister):
                        continue
                    ok_c = isinstance(i, (bc.AllocStorage, bc.If))
                    ok_t = isinstance(i, bc.If) and (_other(i, r) in folded_c or _other(i, r) in folded_t)
                    if r in folded_c and not ok_c:
                        folded_c.discard(r)
                        changed = True
                    if r in folded_t and not ok_t:
                        folded_t.discard(r)
                        changed = True
        self.consti = {r: consti[r] for r in folded_c}
        backward = any(t <= pc for pc, i in enumerate(ins) for t in (
            (pc + i.offset,) if isinstance(i, bc.Goto) else (pc + i.true_offset, pc + i.false_offset)
            if isinstance(i, bc.If) else ()))
        # written once and never reached twice without a release (no backward jump): no old value
        self.fresh = set() if backward else {r for r, n in writes.items() if n == 1 and r >= np_}
        self.tags = {r: tags[r] for r in folded_t}
        self.argv_size = max([len(i.args) for i in ins if isinstance(i, (bc.InvokePacked, bc.InvokeClosure))]
                             + [len(i.fields) for i in ins if isinstance(i, bc.AllocADT)]
                             + [len(i.captured) for i in ins if isinstance(i, bc.AllocClosure)] + [1])

    def tail_call(self, pc: int) -> bool:
        """Is the self-``invoke`` at ``pc`` followed only by kills, moves of its result and a ``ret``?"""
        ins = self.f.instructions
        cur = ins[pc].dst
        seen = set()
        k = pc + 1
        while 0 <= k < len(ins) and k not in seen:
            seen.add(k)
            i = ins[k]
            if isinstance(i, bc.KillRegister):
                if i.reg == cur:
                    return False
                k += 1
            elif isinstance(i, bc.Move) and i.src == cur:
                cur = i.dst
                k += 1
            elif isinstance(i, bc.Goto):
                k += i.offset
            elif isinstance(i, bc.Ret):
                return i.result == cur
            else:
                return False
        return False


def _reads(ins) -> list:
    from .liveness import _reads as reads

    return reads(ins) + ([ins.reg] if isinstance(ins, bc.KillRegister) else [])


def _other(ins: bc.If, r: int) -> int:
    return ins.target if ins.test == r else ins.test
