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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import llvmlite.ir as ir

from ..dispatch.table import DispatchEntry
from ..errors import NimbleError
from . import bytecode as bc
from . import native_layout as L
from .executable import HostFuncEntry, KernelEntry
from .native_ir import I1, I32, I64, NULL, PTR, VOID, FnPtr, alloca, at, c32, c64, const_array, declare, elem, function, load, store
from .native_runtime import RuntimeRef, runtime_library

SHAPE_STATUS = 1 << 20


class NativeUnsupported(NimbleError):
    """The executable uses something the native VM cannot run (the Python VM runs it)."""


@dataclass
class ProgramLayout:
    """What Python must know about a generated program: the kernel-pointer table, immediates,
    dispatch tables' histogram rows and the opcode numbering of the instruction counters."""

    kernel_symbols: list = field(default_factory=list)  # (packed index, KernelEntry, symbol) per table slot
    immediates: list = field(default_factory=list)  # values of LoadConsti beyond 0..255 (index 256 + k)
    hist_rows: dict = field(default_factory=dict)  # packed index of a dispatch table -> histogram row
    prof_kinds: tuple = ()  # an instrumented program's timed kinds (``native_profile``), else empty


def _dtype_code(name: str) -> int:
    code = L.DTYPE_CODE.get(str(name))
    if code is None:
        raise NativeUnsupported(f"dtype {name!r} has no native VM code")
    return code


class ProgramBuilder:
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
        n_kernels = sum(len(k.variants) for p in exe.packed for k in _kernels_of(p))
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
            for k in _kernels_of(p):
                for dt, nd in zip(k.arg_dtypes, k.arg_ndims):
                    _dtype_code(dt)
                    if nd > L.MAX_RANK:
                        raise NativeUnsupported(f"kernel {k.name} takes a rank-{nd} tensor (native limit {L.MAX_RANK})")
            if isinstance(p, HostFuncEntry) and p.kind not in ("shape_expr", "op_shape", "shape_func"):
                raise NativeUnsupported(f"host function kind {p.kind!r}")
        for f in self.exe.functions:
            for ins in f.instructions:
                if isinstance(ins, (bc.AllocTensor, bc.AllocTensorReg)):
                    _dtype_code(ins.dtype)
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
        clock, cb = function(m, "nvm_prof_cycles", I64, [], internal=False)
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

    # ------------------------------------------------------------ packed functions
    def _packed(self, index: int, p):
        """``i32 @pk<p>(ctx, argv, nargs, nout)``: 0, or a status after leaving an error in ctx."""
        fn, b = function(self.module, f"pkb{index}", I32, [PTR, PTR, I32, I32])
        ctx, argv, nargs, nout = fn.args
        if isinstance(p, KernelEntry):
            b.ret(self._kernel_call(b, ctx, argv, index, p, tuple(range(len(p.arg_dtypes)))))
        elif isinstance(p, DispatchEntry):
            self._dispatch(b, fn, ctx, argv, index, p)
        elif isinstance(p, HostFuncEntry) and p.kind == "shape_expr":
            self._shape_expr(b, ctx, argv, b.sub(nargs, nout), p)
        else:
            cb = FnPtr(load(b, ctx, L.C_HOST_CB, PTR), ir.FunctionType(I32, [PTR, I32, PTR, I32, I32]))
            self.tick(b, ctx, "host callback")
            status = b.call(cb, [ctx, c32(index), argv, nargs, nout])
            self.tick(b, ctx, "invoke_packed", 0)
            b.ret(status)
        return self._packed_wrapper(index, p, fn)

    def _packed_wrapper(self, index: int, p, body):
        """``pk<p>``: argument checks, the call count, profiling time, errors that keep the arguments."""
        rt = self.rt
        fn, b = function(self.module, f"pk{index}", I32, [PTR, PTR, I32, I32], inline=False)
        ctx, argv, nargs, nout = fn.args
        want = expected_args(p)

        def fail_keeping_args(code, status):
            b.call(rt.keep_args, [ctx, argv, b.zext(nargs, I64)])
            store(b, c32(code), ctx, L.C_ERR_CODE)
            store(b, status, ctx, L.C_ERR_STATUS)
            store(b, c32(index), ctx, L.C_ERR_PACKED)
            b.ret(c32(1))

        if want is not None:
            bad = b.call(rt.check_args, [argv, b.zext(nargs, I64), self.arg_table(index, want), c64(len(want))])
            with b.if_then(b.icmp_signed(">=", bad, c32(0)), likely=False):
                fail_keeping_args(L.E_ARG, c32(100))
        calls = load(b, ctx, L.C_CALLS, PTR)
        slot = elem(b, calls, index, I64)
        b.store(b.add(b.load(slot, typ=I64), c64(1)), slot)
        prof = b.icmp_signed("!=", load(b, ctx, L.C_PROFILING, I32), c32(0))
        t0 = alloca(b, I64)
        ts = alloca(b, ir.ArrayType(I64, 2))
        with b.if_then(prof, likely=False):
            b.store(self.clock(b, ts), t0)
        status = b.call(body, [ctx, argv, nargs, nout])
        with b.if_then(prof, likely=False):
            tslot = elem(b, load(b, ctx, L.C_PROF_TIME, PTR), index, I64)
            b.store(b.add(b.load(tslot, typ=I64), b.sub(self.clock(b, ts), b.load(t0, typ=I64))), tslot)
        if isinstance(p, (KernelEntry, DispatchEntry)):
            with b.if_then(b.icmp_signed("!=", status, c32(0)), likely=False):
                fail_keeping_args(L.E_KERNEL, status)
        b.ret(status)
        return fn

    def _kernel_call(self, b, ctx, argv, index: int, k: KernelEntry, amap: tuple):
        """Call kernel ``k`` on ``argv[amap[j]]``: shape variables, residue variant, raw entry."""
        args = [b.load(elem(b, argv, a), typ=PTR) for a in amap]

        def dim(a, d):
            return load(b, args[a], L.T_SHAPE + 8 * d, I64)

        svals = [dim(a, d) for a, d in k.shape_vars]
        nthreads = load(b, ctx, L.C_NTHREADS, I32)
        fnty = ir.FunctionType(I32, [PTR] * len(args) + [I64] * len(svals) + [I32])
        slots = []
        for _, symbol in k.variants:
            slots.append(len(self.layout.kernel_symbols))
            self.layout.kernel_symbols.append((index, k, symbol))
        fn = b.function
        result = alloca(b, I32)
        done = fn.append_basic_block("called")
        for (conds, _), slot in zip(k.variants, slots):
            test = ir.Constant(I1, 1)
            for a, d, f in conds:
                test = b.and_(test, b.icmp_signed("==", b.srem(dim(a, d), c64(f)), c64(0)))
            call_b, next_b = fn.append_basic_block("variant"), fn.append_basic_block("next")
            b.cbranch(test, call_b, next_b)
            b.position_at_end(call_b)
            ptr = FnPtr(b.load(b.gep(self.kfn, [c32(0), c32(slot)]), typ=PTR), fnty)
            self.tick(b, ctx, "kernel")
            b.store(b.call(ptr, args + svals + [nthreads]), result)
            self.tick(b, ctx, "invoke_packed", 0)
            b.branch(done)
            b.position_at_end(next_b)
        b.store(c32(-1), result)  # unreachable: the last variant has no conditions
        b.branch(done)
        b.position_at_end(done)
        return b.load(result, typ=I32)

    def _dispatch(self, b, fn, ctx, argv, index: int, d: DispatchEntry) -> None:
        arg, axis = d.dim
        n = load(b, b.load(elem(b, argv, arg), typ=PTR), L.T_SHAPE + 8 * axis, I64)
        ranges = d.ranges
        sel = c64(0)
        for k in range(1, len(ranges)):
            sel = b.select(b.icmp_signed(">=", n, c64(ranges[k].lo)), c64(k), sel)
        los = const_array(self.module, f"pk{index}_lo", I64, [r.lo for r in ranges] + [0])
        his = const_array(self.module, f"pk{index}_hi", I64, [r.hi for r in ranges] + [0])
        lo = b.load(b.gep(los, [c64(0), sel]), typ=I64)
        hi = b.load(b.gep(his, [c64(0), sel]), typ=I64)
        inside = b.and_(b.icmp_signed("<=", lo, n), b.icmp_signed("<=", n, hi))
        nxt = b.add(sel, c64(1))
        next_lo = b.load(b.gep(los, [c64(0), nxt]), typ=I64)
        closer = b.and_(b.icmp_signed("<", nxt, c64(len(ranges))),
                        b.icmp_signed("<", b.sub(next_lo, n), b.sub(n, hi)))
        sel = b.select(b.and_(b.not_(inside), closer), nxt, sel)
        row = len(self.layout.hist_rows)
        self.layout.hist_rows[index] = row
        hist = load(b, ctx, L.C_HIST, PTR)
        binned = b.select(b.and_(b.icmp_signed(">=", n, c64(0)), b.icmp_signed("<", n, c64(L.HIST_BINS))), n,
                          c64(L.HIST_BINS))
        slot = elem(b, hist, b.add(c64(row * (L.HIST_BINS + 1)), binned), I64)
        b.store(b.add(b.load(slot, typ=I64), c64(1)), slot)
        bad = fn.append_basic_block("no_range")
        sw = b.switch(sel, bad)
        for k, (kernel, amap) in enumerate(zip(d.kernels, d.arg_maps)):
            blk = fn.append_basic_block(f"range{k}")
            sw.add_case(c64(k), blk)
            b.position_at_end(blk)
            b.ret(self._kernel_call(b, ctx, argv, index, kernel, tuple(amap)))
        b.position_at_end(bad)
        b.ret(c32(-1))

    def _shape_expr(self, b, ctx, argv, n_in_value, p: HostFuncEntry) -> None:
        """Output shapes from expressions of the input dims, written to (shape, bytes) registers."""
        shapes, itemsizes = p.attrs["shapes"], p.attrs["itemsizes"]
        n_in = None
        refs = set()

        def collect(j):
            if isinstance(j, list):
                if j[0] == "dim":
                    refs.add((int(j[1]), int(j[2])))
                else:
                    collect(j[1])
                    collect(j[2])

        for s in shapes:
            for dexpr in s:
                collect(dexpr)
        n_in = max([i for i, _ in refs], default=-1) + 1
        fn = b.function
        for i in range(n_in):
            t = b.load(elem(b, argv, i), typ=PTR)
            need = max([ax for j, ax in refs if j == i], default=-1) + 1
            with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
                self.rt.set_error(b, ctx, L.E_ARG, 6)
                b.ret(c32(-1))
            kind_ok = b.icmp_signed("==", load(b, t, L.KIND, I32), c32(L.KIND_TENSOR))
            rank_ok = b.icmp_signed(">=", load(b, t, L.T_NDIM, I32), c32(need))
            with b.if_then(b.not_(b.and_(kind_ok, rank_ok)), likely=False):
                self.rt.set_error(b, ctx, L.E_ARG, 6)
                b.ret(c32(-1))
        bad = fn.append_basic_block("bad_shape")
        smul = self.rt.smul

        def value(j):
            if isinstance(j, int):
                return c64(j)
            if j[0] == "dim":
                return load(b, b.load(elem(b, argv, int(j[1])), typ=PTR), L.T_SHAPE + 8 * int(j[2]), I64)
            x, y = value(j[1]), value(j[2])
            op = j[0]
            if op == "+":
                return b.add(x, y)
            if op == "-":
                return b.sub(x, y)
            if op == "*":
                return b.mul(x, y)
            if op == "min":
                return b.select(b.icmp_signed("<", x, y), x, y)
            if op == "max":
                return b.select(b.icmp_signed(">", x, y), x, y)
            if op in ("//", "%"):
                zero = fn.append_basic_block("nonzero")
                b.cbranch(b.icmp_signed("==", y, c64(0)), bad, zero)
                b.position_at_end(zero)
                q, r = b.sdiv(x, y), b.srem(x, y)
                adjust = b.and_(b.icmp_signed("!=", r, c64(0)),
                                b.icmp_signed("<", b.xor(r, y), c64(0)))  # signs differ: floor
                if op == "//":
                    return b.select(adjust, b.sub(q, c64(1)), q)
                return b.select(adjust, b.add(r, y), r)
            raise NativeUnsupported(f"shape expression operator {op!r}")

        out0 = b.zext(n_in_value, I64)
        for k, (s, itemsize) in enumerate(zip(shapes, itemsizes)):
            shape_t = b.load(elem(b, argv, b.add(out0, c64(2 * k))), typ=PTR)
            size_t = b.load(elem(b, argv, b.add(out0, c64(2 * k + 1))), typ=PTR)
            total = c64(int(itemsize))
            overflow = ir.Constant(I1, 0)
            data = load(b, shape_t, L.T_DATA, PTR)
            for axis, dexpr in enumerate(s):
                v = value(dexpr)
                overflow = b.or_(overflow, b.icmp_signed("<", v, c64(0)))
                prod = b.call(smul, [total, v])
                overflow = b.or_(overflow, b.extract_value(prod, 1))
                total = b.extract_value(prod, 0)
                b.store(v, elem(b, data, axis, I64))
            with b.if_then(overflow, likely=False):
                self.rt.set_error(b, ctx, L.E_SHAPE, 7)
                self.rt.set_detail(b, ctx, 0, c64(k))
                b.ret(c32(-1))
            b.store(total, load(b, size_t, L.T_DATA, PTR))
        b.ret(c32(0))
        b.position_at_end(bad)
        self.rt.set_error(b, ctx, L.E_SHAPE, 8)
        b.ret(c32(-1))

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


def _kernels_of(p) -> list:
    if isinstance(p, KernelEntry):
        return [p]
    if isinstance(p, DispatchEntry):
        return list(p.kernels)
    return []


def expected_args(p) -> list | None:
    """(dtype code, rank) each call argument of a kernel or dispatch entry must have."""
    if isinstance(p, KernelEntry):
        return [(_dtype_code(dt), nd) for dt, nd in zip(p.arg_dtypes, p.arg_ndims)]
    if isinstance(p, DispatchEntry):
        want: dict = {}
        for k, amap in zip(p.kernels, p.arg_maps):
            for j, a in enumerate(amap):
                want.setdefault(a, (_dtype_code(k.arg_dtypes[j]), k.arg_ndims[j]))
        return [want.get(a) for a in range(max(want) + 1)] if want else []
    return None


class FunctionEmitter:
    """Emits one VM function."""

    def __init__(self, pb: ProgramBuilder, index: int, func: bc.VMFunction):
        self.pb, self.rt, self.index, self.f = pb, pb.rt, index, func
        self.fn = pb.funcs[index]
        self._analyse()

    # ------------------------------------------------------------ analysis
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

    # ------------------------------------------------------------ emission
    def emit(self) -> None:
        fn, f = self.fn, self.f
        rt = self.rt
        entry = fn.append_basic_block("entry")
        b = self.b = ir.IRBuilder(entry)
        self.ctx = fn.args[0]
        self.pb.tick(b, self.ctx, "function entry")
        n = max(f.register_count, 1)
        # the frame escapes into nvm_release_frame, so registers stay in memory: code and compile
        # time grow linearly with the function, never with (registers x exits)
        self.frame = alloca(b, PTR, c32(n), name="frame")
        b.call(rt.memset, [self.frame, ir.Constant(ir.IntType(8), 0), c64(8 * n), ir.Constant(I1, 0)])
        self.regs = [elem(b, self.frame, r) for r in range(f.register_count)]
        self.argv = alloca(b, PTR, c32(self.argv_size), name="argv")
        self.errpc = alloca(b, I32, name="errpc")
        self.retslot = alloca(b, PTR, name="result")
        for r in range(len(f.params)):
            b.store(fn.args[1 + r], self.regs[r])
        self.blocks = [fn.append_basic_block(f"pc{pc}") for pc in range(len(f.instructions))]
        self.err = fn.append_basic_block("error")
        self.exit = fn.append_basic_block("exit")
        frame = declare(self.pb.module, "llvm.frameaddress.p0", PTR, [I32])
        sp = b.ptrtoint(b.call(frame, [c32(0)]), I64)
        floor = load(b, self.ctx, L.C_STACK_FLOOR, I64)
        depth = b.add(load(b, self.ctx, L.C_DEPTH, I32), c32(1))
        store(b, depth, self.ctx, L.C_DEPTH)
        too_deep = b.or_(b.icmp_unsigned("<", sp, floor), b.icmp_signed(">", depth, load(b, self.ctx, L.C_MAX_DEPTH, I32)))
        deep = fn.append_basic_block("too_deep")
        b.cbranch(too_deep, deep, self.blocks[0])
        b.position_at_end(deep)
        rt.set_error(b, self.ctx, L.E_DEPTH)
        rt.set_detail(b, self.ctx, 0, b.zext(depth, I64))
        self.pc = 0
        self.fail()
        for pc, ins in enumerate(f.instructions):
            b.position_at_end(self.blocks[pc])
            self.pc = pc
            self.pb.tick(b, self.ctx, ins.opname)
            self.instruction(pc, ins)
            if not b.block.is_terminated:
                self.release_dead(pc)
                b.branch(self.blocks[pc + 1] if pc + 1 < len(self.blocks) else self.err)
        self._emit_error_block()

    def _emit_error_block(self) -> None:
        b, ctx = self.b, self.ctx
        b.position_at_end(self.err)
        b.unreachable()
        b.position_at_end(self.exit)
        self.pb.tick(b, ctx, "function exit")
        store(b, b.sub(load(b, self.ctx, L.C_DEPTH, I32), c32(1)), self.ctx, L.C_DEPTH)
        self._release_all()
        b.ret(b.load(self.retslot, typ=PTR))

    def _release_all(self) -> None:
        self.b.call(self.rt.release_frame, [self.ctx, self.frame, c64(len(self.regs))])

    def fail(self, code: int | None = None, status: int = 0) -> None:
        """Leave ``code`` (unless a callee already did) and unwind from the current pc."""
        b = self.b
        if code is not None:
            self.rt.set_error(b, self.ctx, code, status)
        b.call(self.rt.unwind, [self.ctx, self.frame, c64(len(self.regs)), c64((self.index << 32) | self.pc)])
        b.ret(NULL)

    def check(self, ok, code: int | None = None, status: int = 0) -> None:
        """Continue where ``ok`` holds, else fail."""
        b = self.b
        good = self.fn.append_basic_block(f"pc{self.pc}.ok")
        bad = self.fn.append_basic_block(f"pc{self.pc}.fail")
        b.cbranch(ok, good, bad)
        b.position_at_end(bad)
        self.fail(code, status)
        b.position_at_end(good)

    def read(self, r: int):
        return self.b.load(self.regs[r], typ=PTR)

    def write(self, r: int, value) -> None:
        b = self.b
        if r in self.fresh:  # written once, never a parameter: nothing to release
            b.store(value, self.regs[r])
            return
        old = b.load(self.regs[r], typ=PTR)
        b.store(value, self.regs[r])
        b.call(self.rt.decref, [self.ctx, old])

    def owned(self, r: int):
        """The value of ``r`` with a new reference."""
        v = self.read(r)
        with self.b.if_then(self.b.icmp_unsigned("!=", v, NULL)):
            self.b.call(self.rt.incref, [v])
        return v

    def release_dead(self, pc: int) -> None:
        """Drop the registers the liveness metadata says are dead after ``pc`` (folded ones hold nothing)."""
        b = self.b
        live = [r for r in self.dead[pc] if r not in self.consti and r not in self.tags]
        if live:
            self.pb.tick(b, self.ctx, "release dead registers")
        for r in live:
            old = b.load(self.regs[r], typ=PTR)
            b.store(NULL, self.regs[r])
            b.call(self.rt.decref, [self.ctx, old])

    def nonnull(self, v):
        return self.b.icmp_unsigned("!=", v, NULL)

    # ------------------------------------------------------------ instructions
    def instruction(self, pc: int, ins) -> None:
        b, rt, ctx = self.b, self.rt, self.ctx
        match ins:
            case bc.Move(src, dst):
                if src != dst:
                    self.write(dst, self.owned(src))
            case bc.Ret(result):
                b.store(self.read(result), self.retslot)
                b.store(NULL, self.regs[result])
                b.branch(self.exit)
            case bc.Invoke(callee, args, dst):
                vals = [self.owned(a) for a in args]
                if callee == self.index and self.tail_call(pc):
                    self._release_all()
                    for r, v in enumerate(vals):
                        b.store(v, self.regs[r])

                    b.branch(self.blocks[0])
                    return
                res = b.call(self.pb.funcs[callee], [ctx] + vals)
                self.pb.tick(b, ctx, "invoke", 0)
                self.check(self.nonnull(res))
                self.write(dst, res)
            case bc.InvokeClosure(clo, args, dst):
                self._invoke_closure(clo, args, dst)
            case bc.InvokePacked(index, args, n_out):
                self._invoke_packed(index, args, n_out)
            case bc.AllocStorage(size, align, _, dst):
                if size in self.consti:
                    s = b.call(rt.alloc_storage_n, [ctx, c64(self.consti[size]), c64(align)])
                else:
                    t = self.read(size)
                    iv, fv = alloca(b, I64), alloca(b, ir.DoubleType())
                    kind = b.call(rt.read_scalar, [t, iv, fv])
                    self.check(b.icmp_signed("==", kind, c32(0)), L.E_SCALAR, 1)
                    s = b.call(rt.alloc_storage_n, [ctx, b.load(iv, typ=I64), c64(align)])
                self.check(self.nonnull(s))
                self.write(dst, s)
            case bc.AllocTensor(storage, offset, shape, dtype, dst):
                g = const_array(self.pb.module, f"shape.f{self.index}.{pc}", I64, list(shape) or [0])
                t = b.call(rt.tensor_in, [ctx, self.read(storage), c64(offset), c32(_dtype_code(dtype)),
                                          c64(_itemsize(dtype)), c32(len(shape)), b.bitcast(g, PTR)])
                self.check(self.nonnull(t))
                self.write(dst, t)
            case bc.AllocTensorReg(storage, offset, shape_reg, dtype, dst):
                t = b.call(rt.tensor_in_reg, [ctx, self.read(storage), c64(offset), c32(_dtype_code(dtype)),
                                              c64(_itemsize(dtype)), self.read(shape_reg)])
                self.check(self.nonnull(t))
                self.write(dst, t)
            case bc.AllocADT(tag, fields, dst):
                self.write(dst, self._compound(L.KIND_ADT, tag, fields))
            case bc.AllocClosure(callee, captured, dst):
                self.write(dst, self._compound(L.KIND_CLOSURE, callee, captured))
            case bc.GetField(obj, index, dst):
                o = self.read(obj)
                nn = self.nonnull(o)
                safe = b.select(nn, o, ctx)
                ok = b.and_(nn, b.icmp_signed("==", load(b, safe, L.KIND, I32), c32(L.KIND_ADT)))
                ok = b.and_(ok, b.icmp_signed(">", load(b, safe, L.O_COUNT, I64), c64(index)))
                self.check(ok, L.E_FIELD, index)
                v = b.load(elem(b, at(b, o, L.O_FIELDS), index), typ=PTR)
                with b.if_then(self.nonnull(v)):
                    b.call(rt.incref, [v])
                self.write(dst, v)
            case bc.GetTag(obj, dst):
                if dst in self.tags:
                    return
                o = self._adt(obj)
                tag = b.zext(load(b, o, L.AUX, I32), I64)
                self.write(dst, self._int_value(tag))
            case bc.If(test, target, t, f):
                eq = self._equal(test, target)
                self.release_dead(pc)
                b.cbranch(eq, self.blocks[pc + t], self.blocks[pc + f])
            case bc.Goto(offset):
                b.branch(self.blocks[pc + offset])
            case bc.LoadConst(index, dst):
                v = b.load(elem(b, load(b, ctx, L.C_CONSTANTS, PTR), index), typ=PTR)
                b.call(rt.incref, [v])
                self.write(dst, v)
            case bc.LoadConsti(value, dst):
                if dst in self.consti:
                    return
                v = b.load(elem(b, load(b, ctx, L.C_IMMEDIATES, PTR), self.pb.immediate(value)), typ=PTR)
                b.call(rt.incref, [v])
                self.write(dst, v)
            case bc.DeviceCopy(src, _, _, dst):
                t = b.call(rt.copy, [ctx, self.read(src)])
                self.check(self.nonnull(t))
                self.write(dst, t)
            case bc.ShapeOf(tensor, dst):
                t = b.call(rt.shape_of, [ctx, self.read(tensor)])
                self.check(self.nonnull(t))
                self.write(dst, t)
            case bc.ReshapeTensor(tensor, newshape, dst):
                t = b.call(rt.reshape, [ctx, self.read(tensor), self.read(newshape)])
                self.check(self.nonnull(t))
                self.write(dst, t)
            case bc.KillRegister(reg):
                if reg in self.consti or reg in self.tags:
                    return
                old = b.load(self.regs[reg], typ=PTR)
                b.store(NULL, self.regs[reg])
                b.call(rt.decref, [ctx, old])
            case bc.Fatal(_):
                self.fail(L.E_FATAL)
            case _:
                raise NativeUnsupported(f"instruction {ins!r}")

    def _adt(self, obj: int):
        b = self.b
        o = self.read(obj)
        nn = self.nonnull(o)
        kind = b.select(nn, load(b, b.select(nn, o, self.ctx), L.KIND, I32), c32(0))
        ok = b.icmp_signed("==", kind, c32(L.KIND_ADT))
        good = self.fn.append_basic_block(f"pc{self.pc}.ok")
        bad = self.fn.append_basic_block(f"pc{self.pc}.fail")
        b.cbranch(ok, good, bad)
        b.position_at_end(bad)
        self.rt.set_detail(b, self.ctx, 0, b.zext(kind, I64))
        self.rt.set_detail(b, self.ctx, 1, c64(obj))
        self.fail(L.E_TAG)
        b.position_at_end(good)
        return o

    def _int_value(self, v):
        """A 0-d int64 tensor of ``v`` (shared small ints, else a new one)."""
        b, ctx = self.b, self.ctx
        small = b.icmp_unsigned("<", v, c64(256))
        slot = alloca(b, PTR)
        with b.if_else(small) as (then, other):
            with then:
                t = b.load(elem(b, load(b, ctx, L.C_IMMEDIATES, PTR), v), typ=PTR)
                b.call(self.rt.incref, [t])
                b.store(t, slot)
            with other:
                b.store(b.call(self.rt.int_scalar, [ctx, v]), slot)
        t = b.load(slot, typ=PTR)
        self.check(self.nonnull(t))
        return t

    def _equal(self, x: int, y: int):
        """i1: the values of registers x and y are equal (folded immediates and tags compared directly)."""
        b = self.b
        known = {}
        for r in (x, y):
            if r in self.consti:
                known[r] = c64(self.consti[r])
            elif r in self.tags:
                known[r] = b.zext(load(b, self._adt(self.tags[r]), L.AUX, I32), I64)
        if x in known and y in known:
            return b.icmp_signed("==", known[x], known[y])
        if known:
            r, other = (x, y) if x in known else (y, x)
            iv, fv = alloca(b, I64), alloca(b, ir.DoubleType())
            kind = b.call(self.rt.read_scalar, [self.read(other), iv, fv])
            self.check(b.icmp_signed(">=", kind, c32(0)), L.E_SCALAR)
            as_int = b.icmp_signed("==", b.load(iv, typ=I64), known[r])
            as_float = b.fcmp_ordered("==", b.load(fv, typ=ir.DoubleType()), b.sitofp(known[r], ir.DoubleType()))
            return b.select(b.icmp_signed("==", kind, c32(0)), as_int, as_float)
        eq = b.call(self.rt.scalar_eq, [self.ctx, self.read(x), self.read(y)])
        self.check(b.icmp_signed(">=", eq, c32(0)))
        return b.icmp_signed("==", eq, c32(1))

    def _compound(self, kind: int, aux: int, regs: tuple):
        b = self.b
        for k, r in enumerate(regs):
            b.store(self.read(r), elem(b, self.argv, k))
        o = b.call(self.rt.compound, [self.ctx, c32(kind), c32(aux), c64(len(regs)), self.argv])
        self.check(self.nonnull(o))
        return o

    def _invoke_closure(self, clo: int, args: tuple, dst: int) -> None:
        b, ctx, rt = self.b, self.ctx, self.rt
        c = self.read(clo)
        nn = self.nonnull(c)
        safe = b.select(nn, c, ctx)
        ok = b.and_(nn, b.icmp_signed("==", load(b, safe, L.KIND, I32), c32(L.KIND_CLOSURE)))
        func = load(b, safe, L.AUX, I32)
        ok = b.and_(ok, b.icmp_unsigned("<", func, c32(len(self.pb.funcs))))
        self.check(ok, L.E_CLOSURE)
        n_cap = load(b, c, L.O_COUNT, I64)
        total = b.add(n_cap, c64(len(args)))
        buf = b.call(rt.malloc, [b.mul(b.add(total, c64(1)), c64(8))])
        self.check(self.nonnull(buf), L.E_ALLOC)
        from .native_ir import loop

        def cap(b, i):
            v = b.load(elem(b, at(b, c, L.O_FIELDS), i), typ=PTR)
            with b.if_then(b.icmp_unsigned("!=", v, NULL)):
                b.call(rt.incref, [v])
            b.store(v, elem(b, buf, i))

        loop(b, n_cap, cap, "cap")
        for k, a in enumerate(args):
            b.store(self.owned(a), elem(b, buf, b.add(n_cap, c64(k))))
        g = FnPtr(b.load(b.gep(self.pb.gtable, [c32(0), func]), typ=PTR), self.pb.generic[0].function_type)
        res = b.call(g, [ctx, buf, total])
        self.pb.tick(b, ctx, "invoke_closure", 0)
        b.call(rt.free, [buf])
        self.check(self.nonnull(res))
        self.write(dst, res)

    def _invoke_packed(self, index: int, args: tuple, n_out: int) -> None:
        b, ctx, rt = self.b, self.ctx, self.rt
        p = self.pb.exe.packed[index]
        for k, a in enumerate(args):
            b.store(self.read(a), elem(b, self.argv, k))
        want = expected_args(p)
        if want is not None and len(want) != len(args):
            raise NativeUnsupported(f"@{self.f.name}[{self.pc}]: {len(args)} arguments to {p.name}, "
                                    f"which takes {len(want)}")
        status = b.call(self.pb.packed_fns[index], [ctx, self.argv, c32(len(args)), c32(n_out)])
        self.check(b.icmp_signed("==", status, c32(0)))


def _itemsize(dtype: str) -> int:
    return L.ITEMSIZE_OF_CODE[_dtype_code(dtype)]


def _reads(ins) -> list:
    from .liveness import _reads as reads

    return reads(ins) + ([ins.reg] if isinstance(ins, bc.KillRegister) else [])


def _other(ins: bc.If, r: int) -> int:
    return ins.target if ins.test == r else ins.test


def build_program(exe, profile: bool = False) -> tuple:
    """(LLVM IR text, ProgramLayout) of the native program of ``exe`` (``profile``: instrumented,
    every instruction timed by kind; see ``native_profile``)."""
    pb = ProgramBuilder(exe, profile)
    return str(pb.module), pb.layout
