"""Code generation of ``te.dot4``: four byte products summed into int32, as a VNNI ``vpdpbusd`` where it applies.

The fast form needs an explicit vector loop over int32 lanes, one side of uint8 and one of int8, and each side's
four bytes at consecutive addresses: either the same four bytes for every lane (a broadcast, read as one 32-bit
load) or four bytes a lane, lanes contiguous (one load of 4 x lanes bytes). Then ``acc + dot4`` is one
``vpdpbusd`` per 16 (or 8, 4) lanes, widest first, on the target's VNNI widths (``isa.dot_widths``). Anything else
is the generic form: the eight operands widened to int32 (as loads widen them), multiplied and added, which LLVM
vectorises like any integer code. Both are exact: ``vpdpbusd`` does not saturate, and the sums wrap in int32 the
same way.
"""
from __future__ import annotations

import llvmlite.binding as llvm
import llvmlite.ir as ir

from ..te.expr import Add, IntImm
from ..te.simplify import linear
from ..tir.nodes import Load
from . import isa

I8, I32 = ir.IntType(8), ir.IntType(32)
# LLVM 21 changed the intrinsic's byte operands from <N x i32> to <4N x i8> (the same registers).
BYTE_OPERANDS = llvm.llvm_version_info >= (21,)


def emit_dot4(cg, acc_expr, call, sub, vector: bool):
    """``acc_expr + call`` (``acc_expr`` None: ``call`` alone) for the LLVM code generator ``cg``."""
    a, w = call.args[:4], call.args[4:]
    lanes = cg.vec[1] if vector else 0
    if vector:
        fast = _vnni(cg, acc_expr, a, w, lanes, sub)
        if fast is not None:
            return fast
    b = cg.b
    total = None
    for x, y in zip(a, w):
        xv, yv = sub(x), sub(y)
        if vector:
            xv, yv = cg._broadcast(xv, lanes), cg._broadcast(yv, lanes)
        p = b.mul(xv, yv)
        total = p if total is None else b.add(total, p)
    if acc_expr is None:
        return total
    acc = sub(acc_expr)
    return b.add(cg._broadcast(acc, lanes) if vector else acc, total)


def _byte_run(loads):
    """(buffer, index of the first) when ``loads`` read four consecutive bytes of one 8-bit buffer; else None."""
    if not all(isinstance(x, Load) for x in loads):
        return None
    buf = loads[0].buffer
    if buf.dtype not in ("int8", "uint8") or any(x.buffer is not buf for x in loads):
        return None
    first = loads[0].index
    if all(isinstance(x.index, Add) and x.index.b == IntImm(t, first.dtype) and x.index.a == first
           for t, x in enumerate(loads[1:], 1)):
        return buf, first  # (as lowering writes it: first + t)
    base = linear(first)
    for t, x in enumerate(loads[1:], 1):
        lin = linear(x.index)
        if lin.const != base.const + t or lin.terms != base.terms:
            return None
    return buf, first


def _bytes(cg, loads, lanes: int):
    """(dtype, <4 lanes x i8> value) of one side, or None when it is not a run the fast form reads."""
    run = _byte_run(loads)
    if run is None:
        return None
    buf, index = run
    b = cg.b
    vec_ty = ir.VectorType(I8, 4 * lanes)
    if not cg._depends(index):  # the same four bytes in every lane
        word = b.load(cg._elem_ptr(buf, cg.expr(index)), typ=I32, align=1)
        return buf.dtype, b.bitcast(cg._broadcast(word, lanes), vec_ty)
    aff = cg._lane_affine(index)
    if aff is None or aff[1] != 4:
        return None
    return buf.dtype, b.load(cg._elem_ptr(buf, cg.expr(aff[0])), typ=vec_ty, align=1)


def _vnni(cg, acc_expr, a, w, lanes: int, sub):
    width = next((x for x in isa.host_dot_widths() if lanes % x == 0), None)
    if width is None:
        return None
    sides = _bytes(cg, a, lanes), _bytes(cg, w, lanes)
    if None in sides or {sides[0][0], sides[1][0]} != {"uint8", "int8"}:
        return None
    (da, va), (_, vw) = sides
    u, s = (va, vw) if da == "uint8" else (vw, va)
    b = cg.b
    acc = cg._broadcast(sub(acc_expr), lanes) if acc_expr is not None else ir.Constant(ir.VectorType(I32, lanes), None)
    fn = _intrinsic(b.module, width)
    parts = []
    for c in range(lanes // width):
        acc_c = _slice(b, acc, c * width, width)
        u_c, s_c = _slice(b, u, 4 * c * width, 4 * width), _slice(b, s, 4 * c * width, 4 * width)
        if not BYTE_OPERANDS:
            u_c, s_c = b.bitcast(u_c, ir.VectorType(I32, width)), b.bitcast(s_c, ir.VectorType(I32, width))
        parts.append(b.call(fn, [acc_c, u_c, s_c]))
    return _concat(b, parts)


def _intrinsic(module, width: int):
    name = f"llvm.x86.avx512.vpdpbusd.{32 * width}"
    fn = module.globals.get(name)
    if fn is None:
        acc_ty = ir.VectorType(I32, width)
        byte_ty = ir.VectorType(I8, 4 * width) if BYTE_OPERANDS else acc_ty
        fn = ir.Function(module, ir.FunctionType(acc_ty, [acc_ty, byte_ty, byte_ty]), name)
    return fn


def _slice(b, v, start: int, count: int):
    if start == 0 and count == v.type.count:
        return v
    mask = ir.Constant(ir.VectorType(I32, count), list(range(start, start + count)))
    return b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), mask)


def _concat(b, parts):
    out = parts[0]
    for p in parts[1:]:
        n, m = out.type.count, p.type.count
        if m < n:  # p's lanes first, the rest unused
            p = b.shuffle_vector(p, ir.Constant(p.type, ir.Undefined),
                                 ir.Constant(ir.VectorType(I32, n), list(range(m)) + [0] * (n - m)))
        out = b.shuffle_vector(out, p, ir.Constant(ir.VectorType(I32, n + m), list(range(n)) + list(range(n, n + m))))
    return out
