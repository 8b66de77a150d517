"""nonzero as a hand-written loop-IR kernel: one pass over the data, O(size), into an upper-bound allocation.

te has no running counter (its compute is O(size^2): each element counts the non-zeros before it), so this
module writes the loop IR itself and compiles it with ``codegen.build.build_func``, like ``topk.py``.

The kernel ``(x, out, shape)``: ``x`` of any rank r >= 1 and dtype; ``out`` (r, size) int64, the upper bound
of the result (every element non-zero), allocated before the count is known; ``shape`` (2,) int64, where the
kernel writes the real shape ``(r, count)``. Elements are visited in C order; the k-th non-zero one writes its
coordinates to column k of the bound's rows (a coordinate is ``flat // stride % dim``). Then row a moves to
``a * count``, so the first ``r * count`` elements of ``out`` are the (r, count) result, C-contiguous: the VM
views them with the written shape (the paper's upper-bound shape function: no second pass to count first).
Zero is ``x == 0``: -0.0 is zero, NaN is not.
"""
from __future__ import annotations

from .. import te
from ..codegen.build import Kernel, build_func
from ..errors import ShapeError
from ..te.expr import IntImm, Var, as_expr
from ..te.simplify import simplify
from ..tir.nodes import Allocate, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Store, seq

ZERO = IntImm(0)


def nonzero_func(name: str, shape: tuple, dtype: str) -> PrimFunc:
    """The loop IR of nonzero over ``x`` of ``shape`` (ints and te vars, rank >= 1) and ``dtype``."""
    if not shape:
        raise ShapeError("nonzero: x must have rank >= 1 (a 0-d tensor has no coordinates)")
    shape = tuple(as_expr(d) for d in shape)
    rank = len(shape)
    size = IntImm(1)
    for d in shape:
        size = size * d
    size = simplify(size)
    x = Buffer("x", dtype, shape)
    out = Buffer("out", "int64", (IntImm(rank), size))
    real = Buffer("shape", "int64", (IntImm(2),))
    found = Buffer("found", "int64", (1,), "local")
    strides = []
    acc = IntImm(1)
    for d in reversed(shape):
        strides.append(simplify(acc))
        acc = acc * d
    strides.reverse()
    flat, k, v, count, a, j = Var("flat"), Var("k"), Var("value", dtype), Var("count"), Var("a"), Var("j")
    write = seq(*[Store(out, IntImm(r) * size + k, simplify((flat // strides[r]) % shape[r])) for r in range(rank)])
    hit = LetStmt(k, Load(found, ZERO), seq(write, Store(found, ZERO, k + 1)))
    scan = For(flat, ZERO, size, "serial", LetStmt(v, Load(x, flat), IfThenElse(te.ne(v, te.const(0, dtype)), hit)))
    # rows 1.. move down to a * count; forward order never overwrites an element not yet moved (count <= size)
    compact = For(a, IntImm(1), IntImm(rank - 1), "serial", For(j, ZERO, count, "serial", Store(
        out, a * count + j, Load(out, a * size + j)))) if rank > 1 else seq()
    finish = LetStmt(count, Load(found, ZERO), seq(compact, Store(real, ZERO, IntImm(rank)),
                                                   Store(real, IntImm(1), count)))
    body = Allocate(found, IntImm(1), seq(Store(found, ZERO, ZERO), scan, finish))
    shape_vars = list(dict.fromkeys(d for d in shape if isinstance(d, Var)))
    return PrimFunc(name, (x, out, real), tuple(shape_vars), body, {})


def build_nonzero(name: str, shape: tuple, dtype: str) -> Kernel:
    """The compiled nonzero kernel ``(x, out, shape)`` (see ``nonzero_func``)."""
    return build_func(nonzero_func(name, shape, dtype), outputs=(1, 2))
