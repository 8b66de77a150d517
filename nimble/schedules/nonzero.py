"""nonzero as a hand-written loop-IR kernel: one pass over the data, O(size).

te has no running counter (its compute is O(size^2): each element counts the non-zeros before it), so this
module writes the loop IR itself and compiles it with ``codegen.build.build_func``, like ``topk.py``.

The kernel ``(x, out)``: ``x`` of any rank r >= 1 and dtype, ``out`` (r, count) int64 with ``count`` the
number of non-zero elements, which the op's shape function counted. Elements are visited in C order; the
k-th non-zero one writes its coordinates to column k (a coordinate is ``flat // stride % dim``). Zero is
``x == 0``: -0.0 is zero, NaN is not. A column past ``count`` (data that changed between the count and the
kernel, or a wrong count) is never written: the kernel stops with an error instead, as it does when it
finds fewer than ``count`` non-zeros.
"""
from __future__ import annotations

from .. import te
from ..codegen.build import Kernel, build_func
from ..errors import ShapeError
from ..te.expr import IntImm, Var, as_expr
from ..te.simplify import simplify
from ..tir.nodes import Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Store, seq

ZERO = IntImm(0)
MESSAGES = ("nonzero: more non-zero elements than the shape function counted (count)",
            "nonzero: fewer non-zero elements than the shape function counted (count)")


def nonzero_func(name: str, shape: tuple, dtype: str) -> PrimFunc:
    """The loop IR of nonzero over ``x`` of ``shape`` (ints and te vars, rank >= 1) and ``dtype``."""
    if not shape:
        raise ShapeError("nonzero: x must have rank >= 1 (a 0-d tensor has no coordinates)")
    shape = tuple(as_expr(d) for d in shape)
    rank = len(shape)
    count = te.var("count")
    x = Buffer("x", dtype, shape)
    out = Buffer("out", "int64", (IntImm(rank), count))
    found = Buffer("found", "int64", (1,), "local")
    size = IntImm(1)
    for d in shape:
        size = size * d
    size = simplify(size)
    strides = []
    acc = IntImm(1)
    for d in reversed(shape):
        strides.append(simplify(acc))
        acc = acc * d
    strides.reverse()
    flat, k, v = Var("flat"), Var("k"), Var("value", dtype)
    write = seq(*[Store(out, IntImm(a) * count + k, simplify((flat // strides[a]) % shape[a])) for a in range(rank)])
    hit = LetStmt(k, Load(found, ZERO), Assert(k < count, 2, seq(write, Store(found, ZERO, k + 1))))
    scan = For(flat, ZERO, size, "serial", LetStmt(v, Load(x, flat), IfThenElse(
        te.ne(v, te.const(0, dtype)), hit)))
    body = Allocate(found, IntImm(1), seq(Store(found, ZERO, ZERO), scan,
                                          Assert(te.eq(Load(found, ZERO), count), 3, seq())))
    shape_vars = [d for d in shape if isinstance(d, Var)]
    shape_vars = list(dict.fromkeys(shape_vars)) + [count]
    return PrimFunc(name, (x, out), tuple(shape_vars), body, {"assert_messages": MESSAGES})


def build_nonzero(name: str, shape: tuple, dtype: str) -> Kernel:
    """The compiled nonzero kernel ``(x, out)`` (see ``nonzero_func``)."""
    return build_func(nonzero_func(name, shape, dtype), outputs=(1,))
