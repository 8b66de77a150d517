"""topk (values and indices), topk_values, topk_indices as a hand-written loop-IR kernel: a heap or a partial sort.

te cannot express a sort, so this module writes the loop IR itself (``nimble.tir``: loops, a ``While`` for the
heap's sift-down, local buffers) and compiles it with ``codegen.build.build_func``; the kernel then has the ABI,
the ``.pyarrays`` entry (shape checks before memory is touched) and the parallel runtime of every other kernel.

The kernel ``(data, k, *outs)``: ``data`` of any rank, ``k`` the op's k tensor (not read: the length ``kk`` of
the outputs' axis is k, which the op's shape function checked), ``outs`` the values and / or the int64 indices
(one kernel writes both for the ``topk`` op). A row is
``data[o, :, i]`` with ``o`` over the dims before the axis and ``i`` over those after. Per row, when
``kk * SORT_RATIO <= n`` (a bounded heap, O(n log k)):

1. the first kk elements fill a heap of (value, index) pairs whose root is the *worst* kept element; heapify;
2. each later element that beats the root replaces it and sifts down (its index is larger than every kept one,
   so it beats the root only on a strictly better value): O(n) compares, O(log k) per replacement;
3. the root is popped kk times into the output from the back: best first.

Otherwise (a large k, where a heap of k elements misses the caches on every level) a partial quicksort of the
row's (value, index) pairs: median-of-3 Lomuto partitions, only ranges that start before kk are sorted further,
insertion sort below ``SMALL`` elements, and heapsort for a range once the partition depth passes 2 log2(n)
(introsort's guard): O(n + k log k) expected, O(n log n) at worst. The pairs are all distinct (ties go by index),
so the order is total and the result is the same either way.

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

ZERO, ONE = IntImm(0), IntImm(1)
POS, GO, SP, STORE, J, DEPTH_LIMIT, POWER = range(7)  # slots of the local int64 registers

CHUNKS = 64
SORT_RATIO = 32  # the heap serves k <= n / SORT_RATIO (where the two cross on Zen 1)
SMALL = 16  # insertion sort below this many elements
STACK = 66  # quicksort ranges pending (the smaller range is taken first: at most log2(n) + 1)
DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
OUTPUTS = ("values", "indices")
MSG_K = "topk: k (the outputs' axis length) exceeds the length of the axis"


def _greater(a, b, fl: bool):
    """a > b with NaN above every number."""
    return te.any_(b < a, te.all_(te.ne(a, a), te.eq(b, b))) if fl else b < a


def _equal(a, b, fl: bool):
    """a == b with NaN equal to NaN (-0.0 == 0.0)."""
    return te.any_(te.eq(a, b), te.all_(te.ne(a, a), te.ne(b, b))) if fl else te.eq(a, b)


def _better(a, b, largest: bool, fl: bool):
    """Value a strictly before value b in the output's order."""
    return _greater(a, b, fl) if largest else _greater(b, a, fl)


class _Row:
    """Statements over the (value, index) pairs of one row in ``vb`` / ``ib``, slots addressed from 0."""

    def __init__(self, vb: Buffer, ib: Buffer, reg: Buffer, stack: Buffer, largest: bool, fl: bool, max_depth):
        self.vb, self.ib, self.reg, self.stack = vb, ib, reg, stack
        self.largest, self.fl, self.max_depth = largest, fl, max_depth

    def get(self, slot: int):
        return Load(self.reg, IntImm(slot))

    def set(self, slot: int, value):
        return Store(self.reg, IntImm(slot), as_expr(value))

    def before(self, av, ai, bv, bi):
        """Pair a strictly before pair b in the output's order."""
        return te.any_(_better(av, bv, self.largest, self.fl), te.all_(_equal(av, bv, self.fl), ai < bi))

    def pair(self, s):
        return Load(self.vb, s), Load(self.ib, s)

    def slot_before(self, a, b):
        return self.before(*self.pair(a), *self.pair(b))

    def swap(self, a, b):
        tv, ti = Var("swap_value", self.vb.dtype), Var("swap_index")
        return LetStmt(tv, Load(self.vb, a), LetStmt(ti, Load(self.ib, a), seq(
            Store(self.vb, a, Load(self.vb, b)), Store(self.ib, a, Load(self.ib, b)),
            Store(self.vb, b, tv), Store(self.ib, b, ti))))

    def sift_down(self, base, start, size):
        """In the heap at slots base .. base + size - 1 (root: the worst pair), move the pair at ``start``
        down until no child is worse."""
        vb, ib = self.vb, self.ib
        xv, xi = Var("x_value", vb.dtype), Var("x_index")
        pos, c, child = Var("pos"), Var("c"), Var("child")
        step = LetStmt(pos, self.get(POS), LetStmt(c, pos * 2 + 1, IfThenElse(
            c < size,
            LetStmt(child, Select(te.all_(c + 1 < size, self.slot_before(base + c, base + c + 1)), c + 1, c),
                    IfThenElse(self.before(xv, xi, *self.pair(base + child)),
                               seq(Store(vb, base + pos, Load(vb, base + child)),
                                   Store(ib, base + pos, Load(ib, base + child)), self.set(POS, child)),
                               self.set(GO, ZERO))),
            self.set(GO, ZERO))))
        return LetStmt(xv, Load(vb, base + start), LetStmt(xi, Load(ib, base + start), seq(
            self.set(POS, start), self.set(GO, ONE), While(te.ne(self.get(GO), ZERO), step),
            Store(vb, base + self.get(POS), xv), Store(ib, base + self.get(POS), xi))))

    def heapify(self, base, size):
        t = Var("h")
        half = simplify(size // 2)
        return For(t, ZERO, half, "serial", self.sift_down(base, half - 1 - t, size))

    def heapsort(self, lo, hi):
        """Sort slots lo .. hi best first."""
        size, t = Var("hs_size"), Var("hs")
        last = size - 1 - t
        return LetStmt(size, hi - lo + 1, seq(self.heapify(lo, size), For(t, ZERO, size, "serial", seq(
            self.swap(lo, lo + last), self.sift_down(lo, ZERO, last)))))

    def insertion_sort(self, lo, hi):
        vb, ib = self.vb, self.ib
        t, j = Var("ins"), Var("j")
        xv, xi = Var("ins_value", vb.dtype), Var("ins_index")
        prev = te.max_(self.get(J) - 1, lo)  # in range even when the condition's first half fails
        shift = LetStmt(j, self.get(J), seq(Store(vb, j, Load(vb, j - 1)), Store(ib, j, Load(ib, j - 1)),
                                            self.set(J, j - 1)))
        return For(t, lo + 1, hi - lo, "serial", LetStmt(xv, Load(vb, t), LetStmt(xi, Load(ib, t), seq(
            self.set(J, t), While(te.all_(lo < self.get(J), self.before(xv, xi, *self.pair(prev))), shift),
            Store(vb, self.get(J), xv), Store(ib, self.get(J), xi)))))

    def partition(self, lo, hi):
        """Median-of-3 Lomuto partition of slots lo .. hi; the pivot's final slot ends in reg[STORE]."""
        mid, j, pv, pi, s = Var("mid"), Var("pj"), Var("pivot_value", self.vb.dtype), Var("pivot_index"), Var("s")

        def cswap(a, b):
            return IfThenElse(self.slot_before(b, a), self.swap(a, b))

        # branch-free (the comparison is a coin flip on random data): always swap slot j with the first slot not
        # before the pivot, then advance that slot when j's pair was before it
        xv, xi = Var("pj_value", self.vb.dtype), Var("pj_index")
        scan = For(j, lo, hi - lo, "serial", LetStmt(s, self.get(STORE), LetStmt(xv, Load(self.vb, j), LetStmt(
            xi, Load(self.ib, j), seq(
                Store(self.vb, j, Load(self.vb, s)), Store(self.ib, j, Load(self.ib, s)),
                Store(self.vb, s, xv), Store(self.ib, s, xi),
                self.set(STORE, s + Select(self.before(xv, xi, pv, pi), ONE, ZERO)))))))
        return LetStmt(mid, lo + (hi - lo) // 2, seq(
            cswap(lo, mid), cswap(mid, hi), cswap(lo, mid), self.swap(mid, hi),
            LetStmt(pv, Load(self.vb, hi), LetStmt(pi, Load(self.ib, hi), seq(
                self.set(STORE, lo), scan, LetStmt(s, self.get(STORE), self.swap(s, hi)))))))

    def push(self, lo, hi, depth):
        sp = Var("sp")
        return LetStmt(sp, self.get(SP), seq(
            Store(self.stack, sp * 3, lo), Store(self.stack, sp * 3 + 1, hi), Store(self.stack, sp * 3 + 2, depth),
            self.set(SP, sp + 1)))

    def partial_sort(self, n, kk):
        """Slots 0 .. kk - 1 end holding the best kk of slots 0 .. n - 1, best first."""
        sp, lo, hi, depth, p = Var("qs_sp"), Var("lo"), Var("hi"), Var("depth"), Var("p")
        log2 = self.set(DEPTH_LIMIT, IntImm(self.max_depth)) if self.max_depth is not None else seq(
            self.set(POWER, ONE), self.set(DEPTH_LIMIT, ZERO), While(
                self.get(POWER) < n, seq(self.set(POWER, self.get(POWER) * 2),
                                         self.set(DEPTH_LIMIT, self.get(DEPTH_LIMIT) + 2))))
        split = LetStmt(p, self.get(STORE), IfThenElse(
            hi - p < p - lo,  # the larger range first: the smaller is taken next
            seq(self.push(lo, p - 1, depth + 1), self.push(p + 1, hi, depth + 1)),
            seq(self.push(p + 1, hi, depth + 1), self.push(lo, p - 1, depth + 1))))
        step = LetStmt(sp, self.get(SP) - 1, seq(self.set(SP, sp), LetStmt(
            lo, Load(self.stack, sp * 3), LetStmt(hi, Load(self.stack, sp * 3 + 1), LetStmt(
                depth, Load(self.stack, sp * 3 + 2), IfThenElse(te.all_(lo < kk, lo < hi), IfThenElse(
                    hi - lo < SMALL, self.insertion_sort(lo, hi), IfThenElse(
                        self.get(DEPTH_LIMIT) < depth, self.heapsort(lo, hi),
                        seq(self.partition(lo, hi), split)))))))))
        return seq(log2, self.set(SP, ZERO), self.push(ZERO, n - 1, ZERO), While(ZERO < self.get(SP), step))


def topk_func(name: str, shape: tuple, dtype: str, k_shape: tuple, k_dtype: str, axis: int, largest: bool,
              outputs: tuple = OUTPUTS, out_k=None, sort_ratio: int = SORT_RATIO, max_depth: int | None = None) -> PrimFunc:
    """The loop IR of topk over ``data`` of ``shape`` (ints and te vars) along ``axis`` (>= 0), writing
    ``outputs`` (parameters after data and k, in that order: "values", "indices" or both); ``out_k``: the
    output's axis length (an int, or None for a fresh shape variable). ``sort_ratio``: the partial sort serves
    ``k * sort_ratio > n`` (0: never); ``max_depth``: the partition depth after which a range is heapsorted
    (None: 2 log2(n)). Both change the speed only."""
    if dtype not in DTYPES:
        raise ShapeError(f"topk: data dtype must be one of {DTYPES}, got {dtype}")
    if not 0 <= axis < len(shape):
        raise ShapeError(f"topk: axis {axis} is out of range for rank {len(shape)}")
    outputs = tuple(outputs)
    if not outputs or len(set(outputs)) != len(outputs) or not set(outputs) <= set(OUTPUTS):
        raise ShapeError(f"topk: outputs must be distinct names among {OUTPUTS}, got {outputs}")
    fl = is_float(dtype)
    shape = tuple(as_expr(d) for d in shape)
    kk = te.var("k") if out_k is None else IntImm(int(out_k))
    out_shape = shape[:axis] + (kk,) + shape[axis + 1:]
    data = Buffer("data", dtype, shape)
    kbuf = Buffer("k", k_dtype, tuple(as_expr(d) for d in k_shape))
    outs = [Buffer(f"out_{o}", "int64" if o == "indices" else dtype, out_shape) for o in outputs]
    n = shape[axis]
    outer, inner = IntImm(1), IntImm(1)
    for d in shape[:axis]:
        outer = outer * d
    for d in shape[axis + 1:]:
        inner = inner * d
    outer, inner = simplify(outer), simplify(inner)
    rows = simplify(outer * inner)
    use_sort = kk * sort_ratio > n
    vb = Buffer("pair_value", dtype, (n + 1,))
    ib = Buffer("pair_index", "int64", (n + 1,))
    reg = Buffer("registers", "int64", (8,), "local")
    stack = Buffer("ranges", "int64", (3 * STACK,), "local")
    row = _Row(vb, ib, reg, stack, largest, fl, max_depth)

    r, t, j, c = Var("row"), Var("t"), Var("j"), Var("chunk")
    base, obase, v = Var("base"), Var("out_base"), Var("value", dtype)
    fill = For(t, ZERO, kk, "serial", seq(Store(vb, t, Load(data, base + t * inner)), Store(ib, t, t)))
    # the root's value, kept in a local scalar (a register after mem2reg) rather than reread from the heap
    root = Buffer("root_value", dtype, (1,), "local")
    scan = seq(Store(root, ZERO, Load(vb, ZERO)), For(j, kk, simplify(n - kk), "serial", LetStmt(
        v, Load(data, base + j * inner), IfThenElse(_better(v, Load(root, ZERO), largest, fl), seq(
            Store(vb, ZERO, v), Store(ib, ZERO, j), row.sift_down(ZERO, ZERO, kk), Store(root, ZERO, Load(vb, ZERO)))))))
    last = simplify(kk - 1 - t)
    def write(slot, src):  # every output's element at ``slot`` of the row, from pair slot ``src``
        return seq(*[Store(o, obase + slot * inner, Load(ib if name == "indices" else vb, src))
                     for o, name in zip(outs, outputs)])

    pop = For(t, ZERO, kk, "serial", seq(
        write(last, ZERO),
        Store(vb, ZERO, Load(vb, last)), Store(ib, ZERO, Load(ib, last)), row.sift_down(ZERO, ZERO, last)))
    heap_path = seq(fill, row.heapify(ZERO, kk), scan, pop)
    copy = For(t, ZERO, n, "serial", seq(Store(vb, t, Load(data, base + t * inner)), Store(ib, t, t)))
    emit = For(t, ZERO, kk, "serial", write(t, t))
    sort_path = seq(copy, row.partial_sort(n, kk), emit)
    row_body = LetStmt(base, (r // inner) * n * inner + r % inner, LetStmt(
        obase, (r // inner) * kk * inner + r % inner, IfThenElse(use_sort, sort_path, heap_path)))
    chunks = simplify(te.min_(rows, IntImm(CHUNKS)))
    lo, hi_row = Var("lo"), Var("hi")
    capacity = simplify(Select(use_sort, n, kk) + 1)
    chunk = LetStmt(lo, c * rows // chunks, LetStmt(hi_row, (c + 1) * rows // chunks, Allocate(
        vb, capacity, Allocate(ib, capacity, Allocate(reg, IntImm(8), Allocate(stack, IntImm(3 * STACK), Allocate(root, ONE, For(
            r, lo, hi_row - lo, "serial", row_body))))))))
    body = Assert(kk <= n, 2, IfThenElse(kk > 0, For(c, ZERO, chunks, "parallel", chunk)))
    shape_vars = []
    for buf in (data, kbuf, *outs):
        for d in buf.shape:
            if isinstance(d, Var) and d not in shape_vars:
                shape_vars.append(d)
    return PrimFunc(name, (data, kbuf, *outs), tuple(shape_vars), body, {"assert_messages": (MSG_K,)})


def build_topk(name: str, shape: tuple, dtype: str, k_shape: tuple, k_dtype: str, axis: int, largest: bool,
               outputs: tuple = OUTPUTS, out_k=None, **tuning) -> Kernel:
    """The compiled topk kernel ``(data, k, *outputs)`` (see ``topk_func``; ``tuning``: its sort_ratio,
    max_depth)."""
    func = topk_func(name, shape, dtype, k_shape, k_dtype, axis, largest, outputs, out_k, **tuning)
    return build_func(func, outputs=tuple(range(2, len(func.params))))
