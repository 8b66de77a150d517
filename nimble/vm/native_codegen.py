"""Bytecode -> LLVM IR: every VM function becomes a native function.

``ptr @vmf<i>(ptr ctx, ptr arg...)`` owns its arguments and returns its result (owned), or
null after leaving an error in ``ctx``. Registers are allocas (LLVM promotes them to SSA
values); writing one releases its old value; ``if``/``goto`` are branches; a self call in tail
position is a jump back to the top (constant stack for loops written as recursion); a kernel
call checks each argument's kind, dtype and rank, then calls a per-packed-function wrapper
``i32 @pk<p>(ctx, argv)`` that reads the shape variables, picks the dispatch range and residue
variant and calls the kernel's raw entry through a table Python fills at link time. Host shape
functions made of dim expressions are native too; operator shape functions (data-dependent,
rare) call back into Python through ``ctx.host_cb``.

Registers that hold an immediate or a constructor tag only to be compared or to size an
allocation are never materialised: the comparison or the size uses the value directly.

This module builds the program (tables, entries, the opt-in profiling ticks); ``native_function``
emits each VM function (``native_analysis`` decides what its registers need), ``native_packed``
the packed-function wrappers, ``native_common`` holds what they share.
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import bytecode as bc
from . import native_layout as L
from .executable import HostFuncEntry
from .native_common import NativeUnsupported, ProgramLayout, dtype_code, expected_args, kernels_of
from .native_function import FunctionEmitter
from .native_ir import I32, I64, NULL, PTR, VOID, FnPtr, c32, c64, const_array, declare, elem, function, load, store
from .native_packed import PackedCodegen
from .native_runtime import RuntimeRef, runtime_library

__all__ = ["NativeUnsupported", "ProgramBuilder", "ProgramLayout", "build_program", "expected_args"]


class ProgramBuilder(PackedCodegen):
    """Builds one LLVM module for an executable: runtime, packed wrappers, VM functions."""

    def __init__(self, exe, profile: bool = False):
        self.exe = exe
        self.module = ir.Module(name="nimble_vm")
        from ..codegen import jit

        h = jit.host()
        self.module.triple = h.triple
        self.module.data_layout = str(jit.target_machine().target_data)
        self.library = runtime_library()
        self.rt = RuntimeRef(self.module, self.library)
        self.layout = ProgramLayout()
        self._imm_index: dict = {}
        self._arg_tables: dict = {}
        m = self.module
        self.now = declare(m, "clock_gettime", I32, [I32, PTR])
        self._tick = self._profile_tick() if profile else None
        self.funcs = [ir.Function(m, ir.FunctionType(PTR, [PTR] + [PTR] * len(f.params)), name=f"vmf{i}")
                      for i, f in enumerate(exe.functions)]
        for fn in self.funcs:
            fn.linkage = "internal"
            fn.attributes.add("nounwind")
        self._check_supported()
        n_kernels = sum(len(k.variants) for p in exe.packed for k in kernels_of(p))
        kt = ir.ArrayType(PTR, max(n_kernels, 1))
        self.kfn = ir.GlobalVariable(m, kt, name="nvm_kfn")
        self.kfn.initializer = ir.Constant(kt, None)
        self.packed_fns = [self._packed(i, p) for i, p in enumerate(exe.packed)]
        self.generic = [self._generic_entry(i, f) for i, f in enumerate(exe.functions)]
        gt = ir.ArrayType(PTR, len(self.generic))
        self.gtable = ir.GlobalVariable(m, gt, name="nvm_gtable")
        self.gtable.global_constant = True
        self.gtable.linkage = "internal"
        self.gtable.initializer = ir.Constant(gt, [g for g in self.generic])
        for i, f in enumerate(exe.functions):
            FunctionEmitter(self, i, f).emit()
        self._run_entry()

    def _check_supported(self) -> None:
        from .interpreter import validate_function

        for f in self.exe.functions:
            validate_function(self.exe, f)
        for p in self.exe.packed:
            for k in kernels_of(p):
                for dt, nd in zip(k.arg_dtypes, k.arg_ndims):
                    dtype_code(dt)
                    if nd > L.MAX_RANK:
                        raise NativeUnsupported(f"kernel {k.name} takes a rank-{nd} tensor (native limit {L.MAX_RANK})")
            if isinstance(p, HostFuncEntry) and p.kind not in ("shape_expr", "op_shape", "shape_func"):
                raise NativeUnsupported(f"host function kind {p.kind!r}")
        for f in self.exe.functions:
            for ins in f.instructions:
                if isinstance(ins, (bc.AllocTensor, bc.AllocTensorReg)):
                    dtype_code(ins.dtype)
                    if isinstance(ins, bc.AllocTensor) and len(ins.shape) > L.MAX_RANK:
                        raise NativeUnsupported(f"@{f.name}: a rank-{len(ins.shape)} tensor")

    def arg_table(self, index: int, want: list):
        """A constant table of (dtype code, rank) per argument of packed function ``index`` (-1: any)."""
        g = self._arg_tables.get(index)
        if g is None:
            flat = [x for w in want for x in (w if w is not None else (-1, -1))]
            g = self._arg_tables[index] = const_array(self.module, f"args{index}", I32, flat or [0])
        return g

    def immediate(self, value: int) -> int:
        """The slot of immediate ``value`` in ``ctx.immediates`` (0..255 are the small ints)."""
        if 0 <= value < 256:
            return value
        if value not in self._imm_index:
            self._imm_index[value] = 256 + len(self.layout.immediates)
            self.layout.immediates.append(value)
        return self._imm_index[value]

    def _profile_tick(self):
        """``prof_tick(ctx, kind, count)``: the cycles since the last tick go to the kind that ran
        since then; ``kind`` runs from now (its count grows by ``count``)."""
        m = self.module
        kinds = tuple(op.opname for op in bc.OPCODES.values()) + L.PROF_EXTRA
        self.layout.prof_kinds = kinds
        self.prof_index = {k: i for i, k in enumerate(kinds)}
        rdtsc = declare(m, "llvm.readcyclecounter", I64, [])
        fn, b = function(m, "prof_tick", VOID, [PTR, I32, I64], inline=True)
        ctx, kind, count = fn.args
        now = b.call(rdtsc, [])
        ops = load(b, ctx, L.C_OPS, PTR)
        prev = b.zext(load(b, ctx, L.C_OP_PREV, I32), I64)
        cycles = elem(b, ops, b.add(b.mul(prev, c64(2)), c64(1)), I64)
        b.store(b.add(b.load(cycles, typ=I64), b.sub(now, load(b, ctx, L.C_OP_LAST, I64))), cycles)
        counter = elem(b, ops, b.mul(b.zext(kind, I64), c64(2)), I64)
        b.store(b.add(b.load(counter, typ=I64), count), counter)
        store(b, kind, ctx, L.C_OP_PREV)
        store(b, b.call(rdtsc, []), ctx, L.C_OP_LAST)  # the tick's own bookkeeping left out
        b.ret_void()
        _, cb = function(m, "nvm_prof_cycles", I64, [], internal=False)
        cb.ret(cb.call(rdtsc, []))
        return fn

    def tick(self, b: ir.IRBuilder, ctx, kind: str, count: int = 1) -> None:
        """In an instrumented program: ``kind`` runs from here (else nothing)."""
        if self._tick is not None:
            b.call(self._tick, [ctx, c32(self.prof_index[kind]), c64(count)])

    def clock(self, b: ir.IRBuilder, ts):
        b.call(self.now, [c32(1), ts])
        sec = b.load(b.gep(ts, [c32(0), c32(0)]), typ=I64)
        nsec = b.load(b.gep(ts, [c32(0), c32(1)]), typ=I64)
        return b.add(b.mul(sec, c64(1_000_000_000)), nsec)

    # ------------------------------------------------------------ entries
    def _generic_entry(self, index: int, f: bc.VMFunction):
        """``ptr @vmg<i>(ctx, argv, argc)``: the arity checked, then the function (closures, Python)."""
        fn, b = function(self.module, f"vmg{index}", PTR, [PTR, PTR, I64], inline=False)
        ctx, argv, argc = fn.args
        n = len(f.params)
        with b.if_then(b.icmp_signed("!=", argc, c64(n)), likely=False):
            from .native_ir import loop

            loop(b, argc, lambda b, i: b.call(self.rt.decref, [ctx, b.load(elem(b, argv, i), typ=PTR)]))
            self.rt.set_error(b, ctx, L.E_ARITY, n)
            self.rt.set_detail(b, ctx, 0, argc)
            self.rt.set_detail(b, ctx, 1, c64(index))
            b.ret(NULL)
        b.ret(b.call(self.funcs[index], [ctx] + [b.load(elem(b, argv, i), typ=PTR) for i in range(n)]))
        return fn

    def _run_entry(self) -> None:
        fn, b = function(self.module, "nvm_run", PTR, [PTR, I32, PTR, I64], internal=False)
        ctx, fi, argv, argc = fn.args
        self.tick(b, ctx, "outside native code", 0)  # (Python zeroes the table and starts the clock)
        b.call(self.rt.pool_drain, [load(b, ctx, L.C_POOL, PTR)])
        g = FnPtr(b.load(b.gep(self.gtable, [c32(0), fi]), typ=PTR), self.generic[0].function_type)
        result = b.call(g, [ctx, argv, argc])
        self.tick(b, ctx, "outside native code", 0)
        b.ret(result)


def build_program(exe, profile: bool = False) -> tuple:
    """(LLVM IR text, ProgramLayout) of the native program of ``exe`` (``profile``: instrumented,
    every instruction timed by kind; see ``native_profile``)."""
    pb = ProgramBuilder(exe, profile)
    return str(pb.module), pb.layout
