"""Lowering a schedule to the loop IR, with bound inference over symbolic extents."""
from __future__ import annotations

from ..dtypes import numpy_dtype
from ..errors import NimbleError, ShapeError
from ..te.expr import Expr, IntImm, Max, Min, ReductionAdd, Var, all_, ceildiv
from ..te.schedule import Fuse, IndexedPrefetch, Schedule, Split, Stage, create_schedule
from ..te.simplify import linear, simplify
from ..te.tensor import ComputeOp, PlaceholderOp, Reduce, Tensor, TensorLoad
from ..te.visit import free_vars, substitute, transform, walk
from .bounds import index_checks, place_checks
from .nodes import Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Prefetch, PrimFunc, Store, seq
from .transform import substitute_stmt
from .partition import partition_loops, simplify_guards


class LowerError(NimbleError, ValueError):
    """The schedule or the argument list cannot be lowered."""


def flatten(indices, shape) -> Expr:
    """Row-major flat offset of ``indices`` in a buffer of ``shape``."""
    out = None
    for i, d in zip(indices, shape):
        out = i if out is None else out * d + i
    return out if out is not None else IntImm(0)


def _bindable_vars(args: list) -> list:
    out = []
    for t in args:
        for d in t.shape:
            if isinstance(d, Var) and d not in out:
                out.append(d)
    return out


class _Lowerer:
    def __init__(self, sch: Schedule, args: list, bounds_checks: bool = True):
        self.sch = sch
        self.args = args
        self.bounds_checks = bounds_checks
        self.buffers: dict = {}  # tensor -> Buffer
        self.regions: dict = {}  # tensor -> tuple of (min, extent) per dim, for attached stages
        self.bodies: dict = {}  # stage -> body expr after inlining
        self.children: dict = {}  # id(IterVar) -> [Stage] attached there
        self.messages: list = []  # assert messages; status code = 2 + position
        self.checks: dict = {}  # stage -> value checks after inlining
        self.hoisted: list = []  # (condition, message) of checks over shape variables and 0-d arguments: at the top
        self.prefetch_at: dict = {}  # id(IterVar) -> [Prefetch] at the top of that loop's body
        for t in args:
            self.buffers[t] = Buffer(t.name, t.dtype, t.shape)
        self._inline()
        for st in sch.stages:
            if isinstance(st.attach, tuple):
                parent, iv = st.attach
                self.children.setdefault(id(iv), []).append(st)

    # ------------------------------------------------------------------------ inlining
    def _inline(self):
        inlined: dict = {}
        for st in self.sch.stages:
            body = self._replace_inlined(st.op.body, inlined)
            checks = [(self._replace_inlined(c, inlined), m) for c, m in st.op.checks]
            axes = {iv.var for iv in list(st.op.axis) + list(st.op.reduce_axis)}
            # a check of the shape alone runs once, before any loop: also when the loops run zero times,
            # and also for a stage that is inlined
            per_element = []
            for c, m in checks:
                if free_vars(c) & axes or not self._hoistable_loads(c):
                    per_element.append((c, m))
                elif (str(c), m) not in {(str(h), hm) for h, hm in self.hoisted}:
                    self.hoisted.append((c, m))
            if st.attach == "inline":
                if st.tensor in self.buffers:
                    raise LowerError(f"compute_inline: {st.name} is a kernel argument and cannot be inlined")
                inlined[st.tensor] = (tuple(iv.var for iv in st.op.axis), body)
            else:
                self.bodies[st] = body
                self.checks[st] = tuple(per_element)

    def _hoistable_loads(self, cond) -> bool:
        """True when ``cond`` reads no tensor but 0-d kernel arguments (a scalar input such as a loop
        step): it can run once at the top. A failed check then skips the whole kernel, so no stage
        reads what a skipped store left unwritten (a row index computed under the check)."""
        for n in walk(cond):
            if isinstance(n, TensorLoad) and not (n.tensor in self.buffers and len(n.tensor.shape) == 0):
                return False
        return True

    @staticmethod
    def _replace_inlined(body: Expr, inlined: dict) -> Expr:
        if not inlined:
            return body

        def fn(n):
            if isinstance(n, TensorLoad) and n.tensor in inlined:
                params, b = inlined[n.tensor]
                return substitute(b, dict(zip(params, n.indices)))
            return None

        return transform(body, fn)

    # ------------------------------------------------------------------------- emission
    def lower(self, name: str, assume_multiple: dict) -> PrimFunc:
        roots = [st for st in self.sch.stages if st.attach == "root"]
        body = seq(*[self._emit_stage(st, None) for st in roots])
        for st in reversed(roots):  # heap intermediates live for the whole kernel
            if st.tensor not in self.args:
                buf = self._buffer_of(st, None)
                body = Allocate(buf, _size(buf.shape), body)
        body = self._asserted(body, self.hoisted)
        for v, factor in assume_multiple.items():  # residue variant: v == factor * v_q
            q = Var(f"{v.name}_q")
            body = LetStmt(q, v // factor, substitute_stmt(body, {v: q * factor}))
        body = simplify_guards(body, {}) or seq()
        body = partition_loops(body)
        params = tuple(self.buffers[t] for t in self.args)
        return PrimFunc(name, params, tuple(_bindable_vars(self.args)), body, {"assert_messages": tuple(self.messages)})

    def _checked(self, st, axis_map: dict, stmt, extra=()):
        return self._asserted(stmt, [(substitute(c, axis_map), m) for c, m in tuple(self.checks.get(st, ())) + tuple(extra)])

    def _asserted(self, stmt, checks):
        """``stmt`` run only when every (condition over te loads, message) holds, the first outermost."""
        for cond, msg in reversed(checks):
            if msg not in self.messages:
                self.messages.append(msg)
            stmt = Assert(self._to_loads(cond), 2 + self.messages.index(msg), stmt)
        return stmt

    def _index_checks_at(self, st: Stage, axis_map: dict, leaves: list) -> dict:
        """Default bounds checks of ``st``, keyed like guards by the loop they go in."""
        if not self.bounds_checks:
            return {}
        attached = {t: self.sch[t].attach for t in self.regions}
        return place_checks(index_checks(st.name, self.bodies[st]), axis_map, leaves, attached)

    def _buffer_of(self, st: Stage, region) -> Buffer:
        t = st.tensor
        if t not in self.buffers:
            shape = tuple(ext for _, ext in region) if region is not None else t.shape
            self.buffers[t] = Buffer(st.op.name, t.dtype, shape, st.scope if region is not None else "global")
        return self.buffers[t]

    def _emit_stage(self, st: Stage, region):
        op = st.op
        body = self.bodies[st]
        buf = self._buffer_of(st, region)
        for iv in st.leaf_iter_vars:  # children's buffers must exist before this body reads them
            for child in self.children.get(id(iv), ()):
                self.regions[child.tensor] = self._infer_region(child, st, iv)
                self._buffer_of(child, self.regions[child.tensor])
        # extents of root axes (a region when attached), then of every derived loop
        ext: dict = {}
        for pos, iv in enumerate(op.axis):
            ext[iv] = region[pos][1] if region is not None else iv.extent
        for iv in op.reduce_axis:
            ext[iv] = iv.extent
        guards_on: list = []  # (parent IterVar, its extent) of splits with a tail
        for rel in st.relations:
            if isinstance(rel, Split):
                pe = simplify(ext[rel.parent])
                ext[rel.outer] = simplify(ceildiv(pe, rel.factor))
                ext[rel.inner] = rel.factor
                if not _divides(rel.factor, pe):
                    guards_on.append(rel.parent)
            else:
                ext[rel.fused] = simplify(ext[rel.outer] * ext[rel.inner])
        leaves = st.leaf_iter_vars
        value = _iter_values(st, ext)
        local = {iv: simplify(value[iv]) for iv in op.axis}
        glob = {}
        for pos, iv in enumerate(op.axis):
            glob[iv] = simplify(local[iv] + region[pos][0]) if region is not None else local[iv]
        for iv in op.reduce_axis:
            glob[iv] = simplify(value[iv] + iv.dom_min)
        spatial_guard, reduce_guard = [], []
        for iv in guards_on:
            cond = value[iv] < ext[iv]
            (reduce_guard if iv.kind == "reduce" else spatial_guard).append(cond)
        if region is not None and not st.overcompute_region:  # the region may overhang the tensor in a tail tile
            for pos, iv in enumerate(op.axis):
                spatial_guard.append(glob[iv] < iv.extent)
        axis_map = {iv.var: glob[iv] for iv in list(op.axis) + list(op.reduce_axis)}
        for tensor, iv, offset, level in st.prefetches:
            self.prefetch_at.setdefault(id(iv), []).append(
                self._prefetch(st, tensor, iv, offset, axis_map, ext, level))
        out_index = flatten([local[iv] if region is not None else glob[iv] for iv in op.axis], buf.shape)
        # each guard goes inside the innermost loop it depends on, so that it also covers the
        # stages computed at that loop (a tile entirely past the end computes nothing)
        spatial_at = _place_guards(spatial_guard, leaves)
        reduce_at = _place_guards(reduce_guard, leaves)
        checks_at = self._index_checks_at(st, axis_map, leaves)
        if isinstance(body, Reduce):
            src = self._to_loads(substitute(body.source, axis_map))
            old = _load(buf, out_index)
            update = {"sum": lambda: ReductionAdd(old, src), "max": lambda: Max(old, src), "min": lambda: Min(old, src),
                      "prod": lambda: old * src}[body.combiner]()
            first_r = next(i for i, iv in enumerate(leaves) if iv.kind == "reduce")
            outer, inner = leaves[:first_r], leaves[first_r:]
            init_stmt = _guarded(Store(buf, out_index, body.init), spatial_at.get(None, []))
            update_stmt = _guarded(self._checked(st, axis_map, Store(buf, out_index, update),
                                                 [c for cs in checks_at.values() for c in cs]),
                                   spatial_at.get(None, []) + reduce_at.get(None, []))
            in_inner = {id(iv) for iv in inner}
            init_guards = {k: v for k, v in spatial_at.items() if k is not None and k in in_inner}
            update_guards = {k: spatial_at.get(k, []) + reduce_at.get(k, []) for k in in_inner}
            init_nest = self._nest(st, [iv for iv in inner if iv.kind != "reduce"], ext, init_stmt, init_guards,
                                   with_children=False)
            update_nest = self._nest(st, inner, ext, update_stmt, update_guards)
            outer_guards = {k: v for k, v in spatial_at.items() if k is not None and k not in in_inner}
            return self._nest(st, outer, ext, seq(init_nest, update_nest), outer_guards)
        value_expr = self._to_loads(substitute(body, axis_map))
        store = self._asserted(self._checked(st, axis_map, Store(buf, out_index, value_expr)), checks_at.get(None, []))
        store = _guarded(store, spatial_at.get(None, []))
        return self._nest(st, leaves, ext, store, spatial_at, checks=checks_at)

    def _prefetch(self, st: Stage, tensor, iv, offset, axis_map: dict, ext: dict, level: int = 1) -> Prefetch:
        """The prefetch of what ``st`` reads of ``tensor`` ``offset`` iterations of ``iv`` ahead, or at an
        ``IndexedPrefetch``'s index."""
        if st.kinds.get(iv) == "vectorized":
            raise LowerError(f"prefetch: loop {iv.var.name} of {st.name} is vectorized")
        accesses = [n for n in walk(self.bodies[st]) if isinstance(n, TensorLoad) and n.tensor is tensor]
        if not accesses:
            raise LowerError(f"prefetch: {st.name} does not read {tensor.name}")
        if isinstance(offset, IndexedPrefetch):
            leaves = st.leaf_iter_vars
            at_start = {v.var: IntImm(0) for v in leaves[leaves.index(iv) + 1:]}
            values = [simplify(substitute(axis_map[a.var], at_start)) for a in list(st.op.axis) + list(st.op.reduce_axis)]
            buffer = self._to_loads(TensorLoad(tensor, accesses[0].indices)).buffer
            fetch = Prefetch(buffer, simplify(offset.index(*values)), offset.lines, level)
            return fetch if offset.when is None else IfThenElse(simplify(offset.when(*values)), fetch)
        ahead = {iv.var: iv.var + offset}
        indices = tuple(simplify(substitute(substitute(i, axis_map), ahead)) for i in accesses[0].indices)
        load = self._to_loads(TensorLoad(tensor, indices))
        leaves = st.leaf_iter_vars
        inner = {v.var: ext[v] for v in leaves[leaves.index(iv) + 1:]}
        ranges = {v: (IntImm(0), simplify(e - 1)) for v, e in inner.items()}
        span = _span(simplify(load.index, ranges), inner)
        size = numpy_dtype(load.buffer.dtype).itemsize
        if span is None:
            return Prefetch(load.buffer, simplify(substitute(load.index, {v: IntImm(0) for v in inner})), 1, level)
        lo, hi = simplify(span[0]), simplify(span[1] - span[0] + 1)
        lines = -(-hi.value * size // 64) if isinstance(hi, IntImm) else 1
        return Prefetch(load.buffer, lo, max(1, min(lines, 16)), level)

    def _nest(self, st: Stage, loops: list, ext: dict, inner, guards: dict, with_children: bool = True, checks=None):
        for iv in reversed(loops):
            if checks:  # after the stages computed at iv, which may fill the buffers they read
                inner = self._asserted(inner, checks.get(id(iv), []))
            if with_children:
                for child in self.children.get(id(iv), ()):
                    inner = self._emit_attached(child, st, iv, inner)
            inner = _guarded(inner, guards.get(id(iv), []))
            if with_children and id(iv) in self.prefetch_at:
                inner = seq(*self.prefetch_at[id(iv)], inner)
            reverse = self._to_loads(st.reversed[iv]) if iv in st.reversed else None
            inner = For(iv.var, IntImm(0), ext[iv], st.kinds.get(iv, "serial"), inner, reverse)
        return inner

    def _emit_attached(self, child: Stage, parent: Stage, at, rest):
        region = self.regions[child.tensor]
        buf = self.buffers[child.tensor]
        return Allocate(buf, _size(buf.shape), seq(self._emit_stage(child, region), rest))

    # ----------------------------------------------------------------- bound inference
    def _infer_region(self, child: Stage, parent: Stage, at) -> tuple:
        """Per dimension (min, extent) of ``child`` read by ``parent`` within one iteration of ``at``."""
        for st, b in self.bodies.items():
            if st is not parent and st is not child and any(
                    isinstance(n, TensorLoad) and n.tensor is child.tensor for n in walk(b)):
                raise LowerError(f"compute_at: {child.name} is also read by {st.name}, outside {parent.name}")
        leaves = parent.leaf_iter_vars
        pos = next(i for i, iv in enumerate(leaves) if iv is at)
        inner = leaves[pos + 1:]
        parent_region = self.regions.get(parent.tensor)
        ext = _leaf_extents(parent, parent_region)
        value = _iter_values(parent, ext)
        axis_map = {iv.var: simplify(value[iv] + iv.dom_min) for iv in list(parent.op.axis) + list(parent.op.reduce_axis)}
        if parent_region is not None:  # an attached parent's axes are local to its own region
            for iv, (lo, _) in zip(parent.op.axis, parent_region):
                axis_map[iv.var] = simplify(axis_map[iv.var] + lo)
        inner_vars = {iv.var: ext[iv] for iv in inner}
        if child.scope == "shared":  # filled by the whole block: its region spans the block's threads
            inner_vars.update(_enclosing_threads(parent, at))
        accesses = [n.indices for n in walk(self.bodies[parent]) if isinstance(n, TensorLoad) and n.tensor is child.tensor]
        if not accesses:
            raise LowerError(f"compute_at: {parent.name} does not read {child.name}")
        region = []
        for d in range(len(child.tensor.shape)):
            lo_hi = [_span(simplify(substitute(idx[d], axis_map)), inner_vars) for idx in accesses]
            full = (IntImm(0), child.tensor.shape[d])
            if any(x is None for x in lo_hi):
                region.append(full)
                continue
            los = [simplify(lo) for lo, _ in lo_hi]
            his = [simplify(hi) for _, hi in lo_hi]
            lo, hi = los[0], his[0]
            for a, b in zip(los[1:], his[1:]):
                lo, hi = _const_min(lo, a), _const_max(hi, b)
                if lo is None or hi is None:
                    break
            region.append(full if lo is None or hi is None else (lo, simplify(hi - lo + 1)))
        return tuple(region)

    # ------------------------------------------------------------------------ loads
    def _to_loads(self, e: Expr) -> Expr:
        def fn(n):
            if not isinstance(n, TensorLoad):
                return None
            t = n.tensor
            if t not in self.buffers:
                if isinstance(t.op, PlaceholderOp):
                    raise LowerError(f"placeholder {t.name} is read but is not among the kernel's args")
                raise LowerError(f"{t.name} is read before it is computed (is its stage attached too deep?)")
            buf = self.buffers[t]
            region = self.regions.get(t)
            idx = n.indices
            if region is not None:
                idx = [simplify(i - lo) for i, (lo, _) in zip(idx, region)]
            return _load(buf, simplify(flatten(idx, buf.shape)))

        return transform(e, fn)


def _divides(factor: Expr, extent: Expr) -> bool:
    if isinstance(factor, IntImm) and factor.value == 1:
        return True
    return isinstance(simplify(extent % factor), IntImm) and simplify(extent % factor).value == 0



def _iter_values(stage, ext: dict) -> dict:
    """The value of every iter var of ``stage`` from its leaf loop variables (``ext``: leaf extents)."""
    value: dict = {iv: iv.var for iv in stage.leaf_iter_vars}
    for rel in reversed(stage.relations):
        if isinstance(rel, Split):
            value[rel.parent] = value[rel.outer] * rel.factor + value[rel.inner]
        else:
            value[rel.outer] = value[rel.fused] // ext[rel.inner]
            value[rel.inner] = value[rel.fused] % ext[rel.inner]
    return value

def _leaf_extents(st: Stage, region=None) -> dict:
    """Extent of every loop of ``st``; an attached stage's root axes span its ``region``."""
    ext = {iv: iv.extent for iv in list(st.op.axis) + list(st.op.reduce_axis)}
    for iv, (_, extent) in zip(st.op.axis, region or ()):
        ext[iv] = extent
    for rel in st.relations:
        if isinstance(rel, Split):
            ext[rel.outer] = simplify(ceildiv(ext[rel.parent], rel.factor))
            ext[rel.inner] = rel.factor
        else:
            ext[rel.fused] = simplify(ext[rel.outer] * ext[rel.inner])
    return ext


def _enclosing_threads(st: Stage, at) -> dict:
    """Loop var -> extent of the threadIdx-bound loops around the body of ``st`` at its loop ``at``."""
    out, ext = {}, _leaf_extents(st)
    for iv in st.leaf_iter_vars:
        if st.kinds.get(iv, "").startswith("threadIdx"):
            out[iv.var] = ext[iv]
        if iv is at:
            break
    if isinstance(st.attach, tuple):
        out.update(_enclosing_threads(*st.attach))
    return out


def _span(e: Expr, inner_vars: dict):
    """(min, max) of ``e`` over the inner loop variables, or None when not linear in them."""
    lin = linear(e)
    for atom in lin.terms:
        if atom in inner_vars:
            continue
        if free_vars(atom) & set(inner_vars):
            return None
    fixed = substitute(e, {v: IntImm(0) for v in inner_vars})
    lo = hi = fixed
    for v, extent in inner_vars.items():
        c = lin.terms.get(v, 0)
        if c > 0:
            hi = hi + (extent - 1) * c
        elif c < 0:
            lo = lo + (extent - 1) * c
    return lo, hi


def _const_min(a: Expr, b: Expr):
    d = simplify(a - b)
    if isinstance(d, IntImm):
        return b if d.value > 0 else a
    return None


def _const_max(a: Expr, b: Expr):
    d = simplify(a - b)
    if isinstance(d, IntImm):
        return a if d.value > 0 else b
    return None


def _size(shape) -> Expr:
    out = IntImm(1)
    for d in shape:
        out = out * d
    return simplify(out)


def _load(buf: Buffer, index: Expr):
    from .nodes import Load

    return Load(buf, index)


def _place_guards(conds: list, leaves: list) -> dict:
    """Guards keyed by id of the innermost leaf loop they use (None: no leaf, innermost body)."""
    pos_of = {iv.var: k for k, iv in enumerate(leaves)}
    out: dict = {}
    for c in conds:
        used = [pos_of[v] for v in free_vars(c) if v in pos_of]
        key = id(leaves[max(used)]) if used else None
        out.setdefault(key, []).append(c)
    return out


def _guarded(stmt, conds: list):
    if not conds:
        return stmt
    return IfThenElse(all_(*conds), stmt)


def lower(schedule_or_tensors, args: list, name: str = "kernel", assume_multiple: dict | None = None,
          bounds_checks: bool = True) -> PrimFunc:
    """The loop IR of ``schedule_or_tensors`` as a function of ``args`` (inputs and outputs).

    ``assume_multiple={n: 8}`` lowers a residue variant, valid only when ``n % 8 == 0``: the
    splits of n by 8 (or its divisors) then need no tail at all.
    """
    args = list(args)
    for a in args:
        if not isinstance(a, Tensor):
            raise LowerError(f"args: expected te tensors, got {type(a).__name__}")
    if len(set(args)) != len(args):
        raise LowerError("args: a tensor is listed twice")
    if isinstance(schedule_or_tensors, Schedule):
        sch = schedule_or_tensors
    else:
        outs = schedule_or_tensors
        if isinstance(outs, Tensor):
            outs = [outs]
        sch = create_schedule(list(outs))
    for out in sch.outputs:
        if out not in args:
            raise LowerError(f"args: output {out.name} of the schedule is not among the args")
    bindable = set(_bindable_vars(args))
    for t in args:
        for d in t.shape:
            missing = free_vars(d) - bindable
            if missing:
                names = ", ".join(sorted(v.name for v in missing))
                raise ShapeError(f"args: {t.name} has a dimension {d} using {names}, which no argument has as a plain dimension")
    for st in sch.stages:
        for iv in list(st.op.axis) + list(st.op.reduce_axis):
            missing = free_vars(iv.extent) - bindable
            if missing:
                raise ShapeError(f"{st.name}: extent {iv.extent} uses {', '.join(v.name for v in missing)}, unbound by the args")
        for iv, cond in st.reversed.items():
            loads = [n for n in walk(cond) if isinstance(n, TensorLoad)]
            if free_vars(cond) - bindable or any(n.tensor not in args or n.tensor.shape for n in loads):
                raise LowerError(f"reverse: the condition of {st.name}'s loop {iv.var.name} may read only shape "
                                 f"variables and 0-d arguments, got {cond}")
    assume_multiple = dict(assume_multiple or {})
    for v, factor in assume_multiple.items():
        if v not in bindable or not isinstance(factor, int) or factor < 1:
            raise LowerError(f"assume_multiple: expected a symbolic dim of the args mapped to a positive int, got {v!r}: {factor!r}")
    return _Lowerer(sch, args, bounds_checks).lower(name, assume_multiple)
