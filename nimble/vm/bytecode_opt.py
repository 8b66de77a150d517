"""Bytecode optimisations that help both VMs: ``optimize_bytecode(functions) -> functions``.

Applied to every compiled ``VMFunction`` (after ``insert_kills``), in this order:

1. ``kill`` instructions are dropped (liveness is recomputed at the end, step 6);
2. ``tuples``: a tuple built only to be taken apart (``alloc_adt`` whose every use is a
   ``get_field``) is never built: its readers read the field registers directly;
3. ``memory`` (static memory planning, the paper's): tensors of a static shape whose storage is
   used by that tensor alone and that never escape the function (read only by kernel calls,
   comparisons and shape reads) get byte ranges of one arena per function, chosen at compile time
   (``memory_plan.plan_offsets``) so that tensors live at the same time never share a byte; one
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


from ..errors import NimbleError
from . import bytecode as bc
from .bytecode_cfg import (
    AbsGoto, AbsIf, absolute, dead_after, rebuild, reads, relative, rename_reads, single_def, successors, uses_of,
    write_counts,
)
from .memory_plan import plan_memory, plan_offsets  # noqa: F401 - plan_offsets re-exported

PASSES = ("tuples", "memory", "loops")
_PURE = (bc.LoadConst, bc.LoadConsti, bc.Move, bc.AllocADT, bc.AllocClosure, bc.AllocStorage, bc.AllocTensor,
         bc.ShapeOf)


def bytecode_opt_enabled() -> bool:
    """``NIMBLE_BYTECODE_OPT`` (``nimble.settings``; default on): off keeps the compiler's bytecode as it is."""
    from .. import settings

    return settings.current().bytecode_opt


# ---------------------------------------------------------------- 2. tuples built to be taken apart

def eliminate_tuple_unpack(code: list, nparams: int) -> list:
    """``alloc_adt $t <- [...]`` whose every use is ``get_field $d <- $t[i]``: the tuple is not
    built; reads of ``$d`` read the field's register (a ``move`` where either is written twice)."""
    writes, uses = write_counts(code), uses_of(code)
    pieces: dict = {}
    rename: dict = {}
    for pc, ins in enumerate(code):
        if not isinstance(ins, bc.AllocADT) or not single_def(ins.dst, writes, nparams) or ins.dst < nparams:
            continue
        users = uses.get(ins.dst, [])
        if not users or not all(isinstance(code[u], bc.GetField) and code[u].obj == ins.dst
                                and code[u].index < len(ins.fields) for u in users):
            continue
        pieces[pc] = []
        for u in users:
            g = code[u]
            src = ins.fields[g.index]
            if g.dst >= nparams and single_def(g.dst, writes, nparams) and single_def(src, writes, nparams):
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
    code = rebuild(code, pieces)
    return [rename_reads(ins, rename) for ins in code] if rename else code


# ---------------------------------------------------------------- 4. tail self calls -> loops, hoisting

def _is_tail(code: list, pc: int) -> bool:
    cur, k, seen = code[pc].dst, pc + 1, set()
    while 0 <= k < len(code) and k not in seen:
        seen.add(k)
        ins = code[k]
        if isinstance(ins, bc.Move) and ins.src == cur:
            cur, k = ins.dst, k + 1
        elif isinstance(ins, AbsGoto):
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
    pieces = {pc: _parallel_move(dict(enumerate(code[pc].args)), scratch) + [AbsGoto(0)] for pc in tails}
    code = rebuild(code, pieces)
    writes = write_counts(code)
    lifted = {}
    for pc, ins in enumerate(code):
        if isinstance(ins, (bc.LoadConst, bc.LoadConsti)) and ins.dst >= nparams and writes[ins.dst] == 1:
            lifted[pc] = ins
    for pc, ins in enumerate(code):
        if isinstance(ins, bc.AllocStorage) and ins.dst in hoistable and writes[ins.dst] == 1 \
                and any(isinstance(h, bc.LoadConsti) and h.dst == ins.size for h in lifted.values()):
            lifted[pc] = ins
    body = rebuild(code, {pc: [] for pc in lifted})
    k = len(lifted)
    shifted = [AbsIf(i.test, i.target, i.on_true + k, i.on_false + k) if isinstance(i, AbsIf)
               else AbsGoto(i.to + k) if isinstance(i, AbsGoto) else i for i in body]
    return [lifted[pc] for pc in sorted(lifted)] + shifted, nregs + 1


# ---------------------------------------------------------------- 5. dead code

def remove_dead_code(code: list) -> list:
    """Drop instructions no path from the entry reaches, pure instructions whose destination
    nobody reads (until none is left) and self-moves."""
    reached, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc not in reached and pc < len(code):
            reached.add(pc)
            todo.extend(successors(code, pc))
    if len(reached) < len(code):
        code = rebuild(code, {pc: [] for pc in range(len(code)) if pc not in reached})
    while True:
        read = {r for ins in code for r in reads(ins)}
        drop = {pc: [] for pc, ins in enumerate(code)
                if (isinstance(ins, _PURE) and ins.dst not in read)
                or (isinstance(ins, bc.Move) and ins.src == ins.dst)}
        if not drop:
            return code
        code = rebuild(code, drop)


# ---------------------------------------------------------------- driver

def optimize_function(func: bc.VMFunction, index: int, passes=PASSES) -> bc.VMFunction:
    """One function through the steps of the module docstring (``passes``: a subset of ``PASSES``)."""
    unknown = set(passes) - set(PASSES)
    if unknown:
        raise NimbleError(f"optimize_bytecode: unknown passes {sorted(unknown)}; known: {PASSES}")
    nparams, nregs = len(func.params), func.register_count
    code = absolute(func.instructions)
    code = rebuild(code, {pc: [] for pc, ins in enumerate(code) if isinstance(ins, bc.KillRegister)})
    if "tuples" in passes:
        code = remove_dead_code(eliminate_tuple_unpack(code, nparams))
    arenas: set = set()
    if "memory" in passes:
        code, nregs, arenas = plan_memory(remove_dead_code(code), nparams, nregs)
    if "loops" in passes:
        code, nregs = loops_from_tail_calls(code, index, nparams, nregs, arenas)
    code = remove_dead_code(code)
    return bc.VMFunction(func.name, func.params, relative(code), nregs, dead_after(code))


def optimize_bytecode(functions, passes=PASSES) -> tuple:
    """The bytecode optimisations of this module over a program's ``VMFunction``s (in their
    executable order: function ``i`` calls itself as ``invoke`` of index ``i``), as a tuple.
    A pass of the form ``functions -> functions`` for the compiler's pipeline."""
    return tuple(optimize_function(f, i, passes) for i, f in enumerate(functions))
