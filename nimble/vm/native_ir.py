"""Small helpers for emitting the native VM's LLVM IR with llvmlite (opaque pointers)."""
from __future__ import annotations

import llvmlite.ir as ir

from ..codegen.parallel import FnPtr  # noqa: F401 (re-exported for the VM codegen's indirect calls)

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
NULL = ir.Constant(PTR, None)


def c64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def c32(v: int) -> ir.Constant:
    return ir.Constant(I32, int(v))


def at(b: ir.IRBuilder, p, offset):
    """``p + offset`` bytes (offset: an int or an i64 value)."""
    if isinstance(offset, int):
        if offset == 0:
            return p
        offset = c64(offset)
    return b.gep(p, [offset], source_etype=I8)


def load(b: ir.IRBuilder, p, offset, ty):
    return b.load(at(b, p, offset), typ=ty)


def store(b: ir.IRBuilder, value, p, offset) -> None:
    b.store(value, at(b, p, offset))


def elem(b: ir.IRBuilder, p, index, ty=PTR):
    """Address of element ``index`` of an array of ``ty`` at ``p``."""
    idx = c64(index) if isinstance(index, int) else index
    return b.gep(p, [idx], source_etype=ty)


def function(module: ir.Module, name: str, ret, args, internal: bool = True, inline: bool | None = None):
    """A new function with an entry block; returns (function, builder)."""
    fn = ir.Function(module, ir.FunctionType(ret, list(args)), name=name)
    if internal:
        fn.linkage = "internal"
    fn.attributes.add("nounwind")
    if inline is True:
        fn.attributes.add("alwaysinline")
    elif inline is False:
        fn.attributes.add("noinline")
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def declare(module: ir.Module, name: str, ret, args, var_arg: bool = False):
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, list(args), var_arg=var_arg), name=name)


def const_array(module: ir.Module, name: str, ty, values) -> ir.GlobalVariable:
    arr_t = ir.ArrayType(ty, len(values))
    g = ir.GlobalVariable(module, arr_t, name=name)
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_t, [ir.Constant(ty, v) if not isinstance(v, ir.Constant) else v for v in values])
    return g


def alloca(b: ir.IRBuilder, ty, count=None, name: str = ""):
    """A stack slot in the function's entry block (never a dynamic allocation inside a loop)."""
    with b.goto_block(b.function.entry_basic_block):
        return b.alloca(ty, count, name=name)


def loop(b: ir.IRBuilder, count, body, name: str = "i") -> None:
    """``for i in range(count): body(b, i)`` (count: an i64 value); the builder continues after it."""
    fn = b.function
    head, blk, done = fn.append_basic_block(f"{name}.head"), fn.append_basic_block(f"{name}.body"), \
        fn.append_basic_block(f"{name}.done")
    pre = b.block
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(c64(0), pre)
    b.cbranch(b.icmp_signed("<", i, count), blk, done)
    b.position_at_end(blk)
    body(b, i)
    i.add_incoming(b.add(i, c64(1)), b.block)
    b.branch(head)
    b.position_at_end(done)
