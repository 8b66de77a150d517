"""One VM function as a native function: ``ptr @vmf<i>(ptr ctx, ptr arg...)`` owns its arguments
and returns its result (owned), or null after leaving an error in ``ctx``. Registers live in a
frame array; writing one releases its old value; ``if``/``goto`` are branches; a self call in
tail position is a jump back to the top."""
from __future__ import annotations

import llvmlite.ir as ir

from . import bytecode as bc
from . import native_layout as L
from .native_analysis import FrameAnalysis
from .native_common import NativeUnsupported, dtype_code, expected_args, itemsize
from .native_ir import (
    I1, I32, I64, NULL, PTR, FnPtr, alloca, at, c32, c64, const_array, declare, elem, load, loop, store,
)


class FunctionEmitter(FrameAnalysis):
    """Emits one VM function."""

    def __init__(self, pb, index: int, func: bc.VMFunction):
        self.pb, self.rt, self.index, self.f = pb, pb.rt, index, func
        self.fn = pb.funcs[index]
        self._analyse()

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
                self.write(dst, self._alloc_tensor(pc, storage, offset, shape, dtype))
            case bc.AllocTensorReg(storage, offset, shape_reg, dtype, dst):
                t = b.call(rt.tensor_in_reg, [ctx, self.read(storage), c64(offset), c32(dtype_code(dtype)),
                                              c64(itemsize(dtype)), self.read(shape_reg)])
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

    def _alloc_tensor(self, pc: int, storage: int, offset: int, shape: tuple, dtype: str):
        """A tensor of a static shape viewing a storage: inline when the storage holds it (the
        runtime's general constructor, with its precise errors, otherwise)."""
        b, ctx, rt = self.b, self.ctx, self.rt
        g = const_array(self.pb.module, f"shape.f{self.index}.{pc}", I64, list(shape) or [0])
        s = self.read(storage)
        nbytes = itemsize(dtype)
        for d in shape:
            nbytes *= d
        nn = self.nonnull(s)
        safe = b.select(nn, s, ctx)
        fits = b.and_(nn, b.icmp_signed("==", load(b, safe, L.KIND, I32), c32(L.KIND_STORAGE)))
        fits = b.and_(fits, b.icmp_signed("<=", c64(offset + nbytes), load(b, safe, L.S_NBYTES, I64)))
        fits = b.and_(fits, ir.Constant(I1, 0 <= offset and min(shape, default=0) >= 0 and len(shape) <= L.MAX_RANK
                                        and nbytes < 2**62))
        slot = alloca(b, PTR)
        with b.if_else(fits, likely=True) as (fast, general):
            with fast:
                t = b.call(rt.malloc, [c64(L.TENSOR_SIZE)])
                b.store(t, slot)
                with b.if_then(b.icmp_unsigned("==", t, NULL), likely=False):
                    rt.set_error(b, ctx, L.E_ALLOC)
                    rt.set_detail(b, ctx, 0, c64(L.TENSOR_SIZE))
                with b.if_then(self.nonnull(t), likely=True):
                    store(b, c64(1), t, L.RC)
                    store(b, c32(L.KIND_TENSOR), t, L.KIND)
                    store(b, c32(dtype_code(dtype)), t, L.AUX)
                    store(b, at(b, load(b, s, L.S_DATA, PTR), c64(offset)), t, L.T_DATA)
                    store(b, c32(len(shape)), t, L.T_NDIM)
                    store(b, c32(0), t, L.T_FLAGS)
                    store(b, at(b, t, L.T_SHAPE), t, L.T_DIMS)
                    store(b, s, t, L.T_STORAGE)
                    store(b, c64(-1), t, L.T_OWNER)
                    for k, d in enumerate(shape):
                        store(b, c64(d), t, L.T_SHAPE + 8 * k)
                    b.call(rt.incref, [s])
            with general:
                b.store(b.call(rt.tensor_in, [ctx, s, c64(offset), c32(dtype_code(dtype)), c64(itemsize(dtype)),
                                              c32(len(shape)), b.bitcast(g, PTR)]), slot)
        t = b.load(slot, typ=PTR)
        self.check(self.nonnull(t))
        return t

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
        b, ctx = self.b, self.ctx
        p = self.pb.exe.packed[index]
        for k, a in enumerate(args):
            b.store(self.read(a), elem(b, self.argv, k))
        want = expected_args(p)
        if want is not None and len(want) != len(args):
            raise NativeUnsupported(f"@{self.f.name}[{self.pc}]: {len(args)} arguments to {p.name}, "
                                    f"which takes {len(want)}")
        status = b.call(self.pb.packed_fns[index], [ctx, self.argv, c32(len(args)), c32(n_out)])
        self.check(b.icmp_signed("==", status, c32(0)))
