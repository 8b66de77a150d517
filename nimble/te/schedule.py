"""Schedules: how each compute stage's loops are split, ordered, annotated and placed.

A schedule never changes what is computed, only how (Halide's split of algorithm and
schedule). ``create_schedule(outputs)`` makes one stage per compute op reachable from the
outputs; primitives act on ``s[tensor]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import NimbleError
from .expr import Expr, IntImm, as_expr, ceildiv, var
from .simplify import simplify
from .tensor import ComputeOp, IterVar, PlaceholderOp, Tensor, TensorLoad, compute
from .visit import free_vars, transform, walk


class ScheduleError(NimbleError, ValueError):
    """A schedule primitive was applied where it cannot be."""


@dataclass(frozen=True)
class Split:
    parent: IterVar
    outer: IterVar
    inner: IterVar
    factor: Expr  # inner extent


@dataclass(frozen=True)
class Fuse:
    outer: IterVar
    inner: IterVar
    fused: IterVar


LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled")
# GPU thread bindings: a loop of one of these kinds is not a loop on the device but the index
# of the block or thread that runs the body (CUDA's built-in variables of the same name).
THREAD_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z")


@dataclass(frozen=True)
class IndexedPrefetch:
    """A prefetch at an explicit flat element index: ``index(*axis values)``, ``lines`` cache lines, under
    the condition ``when(*axis values)`` (always when None)."""

    index: Callable
    lines: int
    when: Callable | None = None


class Stage:
    """The loop nest of one compute op."""

    def __init__(self, tensor: Tensor, op: ComputeOp):
        self.tensor = tensor
        self.op = op
        self.scope = "global"
        self.relations: list = []
        self.leaf_iter_vars: list = list(op.axis) + list(op.reduce_axis)
        self.kinds: dict = {}
        self.attach = "root"  # "root" | "inline" | (Stage, IterVar)
        self.overcompute_region = False
        # (tensor, IterVar, offset in iterations or an IndexedPrefetch, cache level)
        self.prefetches: list = []
        self.reversed: dict = {}  # IterVar -> the condition (an Expr) under which it runs backwards

    # --------------------------------------------------------------------------- access
    @property
    def axis(self) -> tuple:
        return self.op.axis

    @property
    def reduce_axis(self) -> tuple:
        return self.op.reduce_axis

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self):
        return f"Stage({self.name})"

    def _check_leaf(self, iv: IterVar, what: str) -> int:
        if self.attach == "inline":
            raise ScheduleError(f"{what}: stage {self.name} is inlined and has no loops")
        for pos, leaf in enumerate(self.leaf_iter_vars):
            if leaf is iv:
                return pos
        raise ScheduleError(f"{what}: {iv!r} is not a current loop of stage {self.name}")

    # ----------------------------------------------------------------------- primitives
    def split(self, iv: IterVar, factor=None, nparts=None) -> tuple:
        """Split ``iv`` into (outer, inner) by the inner ``factor`` or the outer ``nparts``.

        A symbolic extent that the factor may not divide gets a guarded tail: correct for every n.
        """
        pos = self._check_leaf(iv, "split")
        self._not_reversed(iv, "split")
        if (factor is None) == (nparts is None):
            raise ScheduleError("split: give exactly one of factor= or nparts=")
        if factor is not None:
            f = as_expr(factor)
            if isinstance(f, IntImm) and f.value < 1:
                raise ScheduleError(f"split: factor must be >= 1, got {f.value}")
            outer_ext = simplify(ceildiv(iv.extent, f))
        else:
            p = as_expr(nparts)
            if isinstance(p, IntImm) and p.value < 1:
                raise ScheduleError(f"split: nparts must be >= 1, got {p.value}")
            f = simplify(ceildiv(iv.extent, p))
            outer_ext = p
        outer = IterVar(var(iv.var.name + ".o"), outer_ext, iv.kind)
        inner = IterVar(var(iv.var.name + ".i"), simplify(f), iv.kind)
        self.relations.append(Split(iv, outer, inner, simplify(f)))
        self.leaf_iter_vars[pos : pos + 1] = [outer, inner]
        return outer, inner

    def tile(self, x: IterVar, y: IterVar, x_factor, y_factor) -> tuple:
        """Split x and y and order the loops (x.o, y.o, x.i, y.i)."""
        xo, xi = self.split(x, x_factor)
        yo, yi = self.split(y, y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, outer: IterVar, inner: IterVar) -> IterVar:
        """Fuse two adjacent loops (outer immediately enclosing inner) into one."""
        po, pi = self._check_leaf(outer, "fuse"), self._check_leaf(inner, "fuse")
        self._not_reversed(outer, "fuse")
        self._not_reversed(inner, "fuse")
        if pi != po + 1:
            raise ScheduleError(f"fuse: {outer!r} must immediately enclose {inner!r}")
        if outer.kind != inner.kind:
            raise ScheduleError("fuse: cannot fuse a reduction loop with a spatial loop")
        fused = IterVar(var(f"{outer.var.name}.{inner.var.name}.f"), simplify(outer.extent * inner.extent), outer.kind)
        self.relations.append(Fuse(outer, inner, fused))
        self.leaf_iter_vars[po : pi + 1] = [fused]
        return fused

    def reorder(self, *ivs: IterVar) -> None:
        """Put the given loops in this order, in the positions they occupy now."""
        positions = sorted(self._check_leaf(iv, "reorder") for iv in ivs)
        if len(set(positions)) != len(ivs):
            raise ScheduleError("reorder: a loop is named twice")
        for pos, iv in zip(positions, ivs):
            self.leaf_iter_vars[pos] = iv

    def _not_reversed(self, iv: IterVar, what: str) -> None:
        if iv in self.reversed:
            raise ScheduleError(f"{what}: {iv.var.name} runs backwards (reverse); {what} it before reversing it")

    def _annotate(self, iv: IterVar, kind: str) -> None:
        self._check_leaf(iv, kind)
        if kind not in ("parallel", "serial"):
            self._not_reversed(iv, kind)
        if kind in ("parallel", "vectorized") and iv.kind == "reduce":
            raise ScheduleError(f"{kind}: a reduction loop ({iv.var.name}) cannot be {kind}")
        self.kinds[iv] = kind

    def vectorize(self, iv: IterVar) -> None:
        """Emit this loop as LLVM vector code (explicit lanes when its extent is a small constant)."""
        self._annotate(iv, "vectorized")

    def unroll(self, iv: IterVar) -> None:
        """Fully unroll this loop (its extent must be a constant at codegen)."""
        self._annotate(iv, "unrolled")

    def parallel(self, iv: IterVar) -> None:
        """Run the iterations of this loop on the thread pool (small trip counts stay serial)."""
        self._annotate(iv, "parallel")

    def bind(self, iv: IterVar, tag: str) -> None:
        """Run the iterations of this loop as GPU blocks or threads: ``tag`` is one of
        THREAD_TAGS; the loop's extent becomes (part of) the launch grid or block."""
        self._check_leaf(iv, "bind")
        if tag not in THREAD_TAGS:
            raise ScheduleError(f"bind: tag must be one of {THREAD_TAGS}, got {tag!r}")
        if iv.kind == "reduce":
            raise ScheduleError(f"bind: a reduction loop ({iv.var.name}) cannot be bound to {tag}")
        if any(k == tag for other, k in self.kinds.items() if other is not iv):
            raise ScheduleError(f"bind: stage {self.name} already has a loop bound to {tag}")
        self.kinds[iv] = tag

    def prefetch(self, tensor: Tensor, iv: IterVar, offset: int, level: int = 1) -> None:
        """At the top of each iteration of loop ``iv``, prefetch what this stage reads of ``tensor``
        ``offset`` iterations of ``iv`` later (the loops inside ``iv`` at their start; every cache
        line of the span they read when it is contiguous) into cache ``level`` (1: L1 and below,
        2: L2 and below). A hint: results never change, and an address past the tensor's end is
        allowed, so a stream continues into its next block."""
        self._check_leaf(iv, "prefetch")
        if self.kinds.get(iv) == "vectorized":
            raise ScheduleError(f"prefetch: {iv.var.name} is vectorized; prefetch at a loop outside it")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 1:
            raise ScheduleError(f"prefetch: offset must be a positive number of iterations, got {offset!r}")
        if level not in (1, 2):
            raise ScheduleError(f"prefetch: level must be 1 (L1) or 2 (L2), got {level!r}")
        if not any(isinstance(n, TensorLoad) and n.tensor is tensor for n in walk(self.op.body)):
            raise ScheduleError(f"prefetch: stage {self.name} does not read {tensor.name}")
        self.prefetches.append((tensor, iv, offset, level))

    def prefetch_index(self, tensor: Tensor, iv: IterVar, index, lines: int = 1, level: int = 2, when=None) -> None:
        """At the top of each iteration of loop ``iv``, prefetch ``lines`` cache lines of ``tensor``
        from its flat element ``index(*values)`` on, into cache ``level``; ``values`` are this stage's
        axes (spatial, then reduction) where that iteration starts (the loops inside ``iv`` at 0).
        ``when(*values)``, if given, is a condition the prefetch is issued under (e.g. on a shape).
        For streams whose next part is not a fixed distance ahead (a gemm prefetching the next
        weight block across its passes over the current one). A hint: the address may lie anywhere."""
        self._check_leaf(iv, "prefetch_index")
        if self.kinds.get(iv) == "vectorized":
            raise ScheduleError(f"prefetch_index: {iv.var.name} is vectorized; prefetch at a loop outside it")
        if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= 64:
            raise ScheduleError(f"prefetch_index: lines must be an int in 1..64, got {lines!r}")
        if level not in (1, 2):
            raise ScheduleError(f"prefetch_index: level must be 1 (L1) or 2 (L2), got {level!r}")
        if not callable(index) or not (when is None or callable(when)):
            raise ScheduleError(f"prefetch_index: index and when must be functions of the stage's axes, "
                                f"got {index!r}, {when!r}")
        if not any(isinstance(n, TensorLoad) and n.tensor is tensor for n in walk(self.op.body)):
            raise ScheduleError(f"prefetch_index: stage {self.name} does not read {tensor.name}")
        self.prefetches.append((tensor, iv, IndexedPrefetch(index, lines, when), level))

    def reverse(self, iv: IterVar, when=None) -> None:
        """Run the spatial loop ``iv`` from its last iteration to its first wherever ``when`` holds (always
        when None): a condition over shape variables and 0-d inputs, decided once per kernel call. What is
        computed never changes, only the order memory is touched in. A kernel that runs again and again over
        data larger than a cache (an RNN's recurrent weights, one call per time step) finds the part it used
        last still cached when every other call runs the other way; in the same direction it would find none."""
        self._check_leaf(iv, "reverse")
        if iv.kind == "reduce":
            raise ScheduleError(f"reverse: {iv.var.name} is a reduction loop; its order would change the sum")
        if self.kinds.get(iv) not in (None, "serial", "parallel"):
            raise ScheduleError(f"reverse: {iv.var.name} is {self.kinds[iv]}; only a serial or parallel loop runs "
                                "backwards")
        cond = IntImm(1, "bool") if when is None else as_expr(when)
        if cond.dtype != "bool":
            raise ScheduleError(f"reverse: when must be a bool condition, got {cond.dtype}")
        axes = {v.var for v in list(self.op.axis) + list(self.op.reduce_axis) + list(self.leaf_iter_vars)}
        if free_vars(cond) & axes:
            raise ScheduleError(f"reverse: when must not depend on the loops of stage {self.name}")
        self.reversed[iv] = cond

    def compute_inline(self) -> None:
        """Substitute this elementwise stage's body into its consumers."""
        if self.op.reduce_axis:
            raise ScheduleError(f"compute_inline: {self.name} is a reduction and cannot be inlined")
        self.attach = "inline"

    def compute_at(self, parent: "Stage", iv: IterVar) -> None:
        """Compute the region of this stage that ``parent`` needs inside its loop ``iv``."""
        parent._check_leaf(iv, "compute_at")
        if parent is self:
            raise ScheduleError("compute_at: a stage cannot be computed at itself")
        self.attach = (parent, iv)

    def overcompute(self) -> None:
        """Compute an attached stage's whole region, also where a tail tile overhangs the
        tensor, with no guard in its loops. The body must be safe to evaluate there (its reads
        clamped into range); the consumer still stores only the elements inside the tensor."""
        self.overcompute_region = True

    def compute_root(self) -> None:
        self.attach = "root"


class Schedule:
    """Stages of all compute ops feeding ``outputs``, in producer-before-consumer order."""

    def __init__(self, outputs: list):
        self.outputs = list(outputs)
        self.stages: list = []
        self.stage_of: dict = {}
        for t in _topo_order(self.outputs):
            if isinstance(t.op, ComputeOp):
                st = Stage(t, t.op)
                self.stages.append(st)
                self.stage_of[t] = st

    def __getitem__(self, tensor: Tensor) -> Stage:
        try:
            return self.stage_of[tensor]
        except KeyError:
            raise ScheduleError(f"{tensor!r} has no stage in this schedule (is it a placeholder?)") from None

    def cache_write(self, tensor: Tensor, scope: str = "local") -> Tensor:
        """Compute ``tensor`` into a new local stage; ``tensor``'s own stage becomes a copy of it.

        The usual use is an accumulator tile: ``CL = s.cache_write(C)``, then
        ``s[CL].compute_at(s[C], some_loop_of_C)``.
        """
        stage = self[tensor]
        if stage.relations or stage.attach != "root":
            raise ScheduleError(f"cache_write: call it on {tensor.name} before scheduling its stage")
        old = stage.op
        cached = Tensor(tensor.shape, tensor.dtype, ComputeOp(old.name + ".local", old.axis, old.body, old.tag, old.checks))
        axis = tuple(IterVar(var(iv.var.name), iv.extent) for iv in old.axis)
        copy = ComputeOp(old.name, axis, TensorLoad(cached, tuple(iv.var for iv in axis)), old.tag)
        cstage = Stage(cached, cached.op)
        cstage.scope = scope
        stage.op = copy
        stage.leaf_iter_vars = list(axis)
        stage.kinds = {}
        self.stages.insert(self.stages.index(stage), cstage)
        self.stage_of[cached] = cstage
        return cached

    def cache_read(self, tensor: Tensor, scope: str, readers, layout=None) -> Tensor:
        """A copy of ``tensor`` in ``scope`` ("shared" or "local") that ``readers`` read instead.

        The usual use is staging a tile in GPU shared memory: ``AS = s.cache_read(A, "shared",
        [CL])``, then ``s[AS].compute_at(s[CL], ko)`` copies the tile that one iteration of ko
        reads, and binding the copy's loops to threads makes the block load it together.
        ``layout`` (a permutation of tensor's axes) stores the copy with its axes in that order:
        ``layout=(1, 0)`` keeps a tile of a (m, k) tensor k-major.
        """
        if isinstance(readers, Tensor):
            readers = [readers]
        stages = [self[r] for r in readers]
        if not stages:
            raise ScheduleError(f"cache_read: give at least one reader of {tensor.name}")
        for st in stages:
            if st.relations or st.attach != "root":
                raise ScheduleError(f"cache_read: call it before scheduling the reader {st.name}")
            if not any(isinstance(n, TensorLoad) and n.tensor is tensor for n in walk(st.op.body)):
                raise ScheduleError(f"cache_read: {st.name} does not read {tensor.name}")
        perm = tuple(range(len(tensor.shape))) if layout is None else tuple(layout)
        if sorted(perm) != list(range(len(tensor.shape))):
            raise ScheduleError(f"cache_read: layout must be a permutation of range({len(tensor.shape)}), got {layout}")

        def read(*i):  # i is an index of the copy: i[k] runs over tensor axis perm[k]
            src = [None] * len(perm)
            for k, p in enumerate(perm):
                src[p] = i[k]
            return tensor[tuple(src)]

        cached = compute(tuple(tensor.shape[p] for p in perm), read, name=f"{tensor.name}.{scope}")

        def swap(n):
            if isinstance(n, TensorLoad) and n.tensor is tensor:
                return TensorLoad(cached, tuple(n.indices[p] for p in perm))
            return None

        for st in stages:
            old = st.op
            checks = tuple((transform(c, swap), m) for c, m in old.checks)
            st.op = ComputeOp(old.name, old.axis, transform(old.body, swap), old.tag, checks)
        cstage = Stage(cached, cached.op)
        cstage.scope = scope
        self.stages.insert(min(self.stages.index(st) for st in stages), cstage)
        self.stage_of[cached] = cstage
        return cached

    def body_of(self, tensor: Tensor):
        """The op that currently produces ``tensor`` in this schedule."""
        st = self.stage_of.get(tensor)
        return st.op if st is not None else tensor.op


def _topo_order(outputs: list) -> list:
    order, seen = [], set()

    def visit(t: Tensor):
        if t in seen:
            return
        seen.add(t)
        if isinstance(t.op, ComputeOp):
            for inp in t.op.input_tensors():
                visit(inp)
        elif not isinstance(t.op, PlaceholderOp):
            raise ScheduleError(f"unknown op kind for {t!r}")
        order.append(t)

    for t in outputs:
        if not isinstance(t, Tensor):
            raise ScheduleError(f"create_schedule: expected tensors, got {type(t).__name__}")
        visit(t)
    return order


def create_schedule(outputs) -> Schedule:
    """A schedule with the naive loop nest for every stage feeding ``outputs``."""
    if isinstance(outputs, Tensor):
        outputs = [outputs]
    return Schedule(list(outputs))
