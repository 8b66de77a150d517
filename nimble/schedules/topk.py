"""topk_values / topk_indices as a hand-written loop-IR kernel: a bounded heap per row, O(n log k).

te cannot express a sort, so this module writes the loop IR itself (``nimble.tir``: loops, a ``While`` for the
heap's sift-down, local buffers) and compiles it with ``codegen.build.build_func``; the kernel then has the ABI,
the ``.pyarrays`` entry (shape checks before memory is touched) and the parallel runtime of every other kernel.

The kernel ``(data, k, out)``: ``data`` of any rank, ``k`` the op's k tensor (not read: the length ``kk`` of
``out``'s axis is k, which the op's shape function checked), ``out`` the values or the int64 indices. A row is
``data[o, :, i]`` with ``o`` over the dims before the axis and ``i`` over those after. Per row:

1. the first kk elements fill a heap of (value, index) pairs whose root is the *worst* kept element; heapify;
2. each later element that beats the root replaces it and sifts down (its index is larger than every kept one,
   so it beats the root only on a strictly better value): O(n) compares, O(log k) per replacement;
3. the root is popped kk times into the output from the back: best first.

The order (ONNX Runtime's, checked against it in the tests): larger (``largest``) or smaller value first, equal
values by lower index, ``-0.0 == 0.0``, and NaN greater than every number (so first when ``largest``, last
otherwise), NaNs in index order. Rows run in parallel, in up to ``CHUNKS`` chunks (one heap allocation each).
"""
from __future__ import annotations

from .. import te
from ..codegen.build import Kernel, build_func
from ..errors import ShapeError
from ..te.expr import IntImm, Select, Var, as_expr, is_float
from ..te.simplify import simplify
from ..tir.nodes import Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Store, While, seq

CHUNKS = 64
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int32", "int64")
MSG_K = "topk: k (the output's axis length) exceeds the length of the axis"


def _greater(a, b, fl: bool):
    """a > b with NaN above every number."""
    return te.any_(b < a, te.all_(te.ne(a, a), te.eq(b, b))) if fl else b < a


def _equal(a, b, fl: bool):
    """a == b with NaN equal to NaN (-0.0 == 0.0)."""
    return te.any_(te.eq(a, b), te.all_(te.ne(a, a), te.ne(b, b))) if fl else te.eq(a, b)


def _better(a, b, largest: bool, fl: bool):
    """Value a strictly before value b in the output's order."""
    return _greater(a, b, fl) if largest else _greater(b, a, fl)


def topk_func(name: str, shape: tuple, dtype: str, k_shape: tuple, k_dtype: str, axis: int, largest: bool,
              indices: bool, out_k=None) -> PrimFunc:
    """The loop IR of topk over ``data`` of ``shape`` (ints and te vars) along ``axis`` (>= 0); ``out_k``: the
    output's axis length (an int, or None for a fresh shape variable)."""
    if dtype not in DTYPES:
        raise ShapeError(f"topk: data dtype must be one of {DTYPES}, got {dtype}")
    if not 0 <= axis < len(shape):
        raise ShapeError(f"topk: axis {axis} is out of range for rank {len(shape)}")
    fl = is_float(dtype)
    shape = tuple(as_expr(d) for d in shape)
    kk = te.var("k") if out_k is None else IntImm(int(out_k))
    out_shape = shape[:axis] + (kk,) + shape[axis + 1:]
    data = Buffer("data", dtype, shape)
    kbuf = Buffer("k", k_dtype, tuple(as_expr(d) for d in k_shape))
    out = Buffer("out", "int64" if indices else dtype, out_shape)
    n = shape[axis]
    outer, inner = IntImm(1), IntImm(1)
    for d in shape[:axis]:
        outer = outer * d
    for d in shape[axis + 1:]:
        inner = inner * d
    outer, inner = simplify(outer), simplify(inner)
    rows = simplify(outer * inner)

    hv = Buffer("heap_value", dtype, (kk + 1,))
    hi = Buffer("heap_index", "int64", (kk + 1,))
    state = Buffer("sift_state", "int64", (2,), "local")  # [position of the hole, still sifting]

    def worse(c, xv, xi):
        """Heap slot c is worse than (xv, xi): the sift-down moves it up past it."""
        cv, ci = Load(hv, c), Load(hi, c)
        return te.any_(_better(xv, cv, largest, fl), te.all_(_equal(xv, cv, fl), xi < ci))

    def sift_down(start, size):
        """Move the pair at slot ``start`` down a heap of ``size`` slots until no child is worse."""
        xv, xi = Var("x_value", dtype), Var("x_index")
        pos, c, child = Var("pos"), Var("c"), Var("child")
        step = LetStmt(pos, Load(state, IntImm(0)), LetStmt(c, pos * 2 + 1, IfThenElse(
            c < size,
            LetStmt(child, Select(te.all_(c + 1 < size, worse(c + 1, Load(hv, c), Load(hi, c))), c + 1, c),
                    IfThenElse(worse(child, xv, xi),
                               seq(Store(hv, pos, Load(hv, child)), Store(hi, pos, Load(hi, child)),
                                   Store(state, IntImm(0), child)),
                               Store(state, IntImm(1), IntImm(0)))),
            Store(state, IntImm(1), IntImm(0)))))
        return LetStmt(xv, Load(hv, start), LetStmt(xi, Load(hi, start), seq(
            Store(state, IntImm(0), start), Store(state, IntImm(1), IntImm(1)),
            While(te.ne(Load(state, IntImm(1)), IntImm(0)), step),
            Store(hv, Load(state, IntImm(0)), xv), Store(hi, Load(state, IntImm(0)), xi))))

    r, t, j, c = Var("row"), Var("t"), Var("j"), Var("chunk")
    base, obase, v = Var("base"), Var("out_base"), Var("value", dtype)
    fill = For(t, IntImm(0), kk, "serial", seq(Store(hv, t, Load(data, base + t * inner)), Store(hi, t, t)))
    half = simplify(kk // 2)
    heapify = For(t, IntImm(0), half, "serial", sift_down(half - 1 - t, kk))
    scan = For(j, kk, simplify(n - kk), "serial", LetStmt(v, Load(data, base + j * inner), IfThenElse(
        _better(v, Load(hv, IntImm(0)), largest, fl),
        seq(Store(hv, IntImm(0), v), Store(hi, IntImm(0), j), sift_down(IntImm(0), kk)))))
    last = simplify(kk - 1 - t)
    pop = For(t, IntImm(0), kk, "serial", seq(
        Store(out, obase + last * inner, Load(hi if indices else hv, IntImm(0))),
        Store(hv, IntImm(0), Load(hv, last)), Store(hi, IntImm(0), Load(hi, last)),
        sift_down(IntImm(0), last)))
    row_body = LetStmt(base, (r // inner) * n * inner + r % inner,
                       LetStmt(obase, (r // inner) * kk * inner + r % inner, seq(fill, heapify, scan, pop)))
    chunks = simplify(te.min_(rows, IntImm(CHUNKS)))
    lo, hi_row = Var("lo"), Var("hi")
    chunk = LetStmt(lo, c * rows // chunks, LetStmt(hi_row, (c + 1) * rows // chunks, Allocate(
        hv, simplify(kk + 1), Allocate(hi, simplify(kk + 1), Allocate(state, IntImm(2), For(
            r, lo, hi_row - lo, "serial", row_body))))))
    body = Assert(kk <= n, 2, IfThenElse(kk > 0, For(c, IntImm(0), chunks, "parallel", chunk)))
    shape_vars = []
    for buf in (data, kbuf, out):
        for d in buf.shape:
            if isinstance(d, Var) and d not in shape_vars:
                shape_vars.append(d)
    return PrimFunc(name, (data, kbuf, out), tuple(shape_vars), body, {"assert_messages": (MSG_K,)})


def build_topk(name: str, shape: tuple, dtype: str, k_shape: tuple, k_dtype: str, axis: int, largest: bool,
               indices: bool, out_k=None) -> Kernel:
    """The compiled topk kernel ``(data, k, out)`` (see ``topk_func``)."""
    return build_func(topk_func(name, shape, dtype, k_shape, k_dtype, axis, largest, indices, out_k), outputs=(2,))
