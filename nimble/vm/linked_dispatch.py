"""A dispatch table linked into this process: the concrete dim(s) -> the bucket's kernel, cached.

The table itself (``nimble.dispatch.table.DispatchEntry``) is data; this is the VM's lowering of
it for the Python VM (the native VM compiles the same ranges into a branch tree).
"""
from __future__ import annotations

import bisect
from collections import Counter

from ..dispatch.table import DispatchEntry, Explanation
from ..errors import NimbleError


class LinkedDispatch:
    """A ``DispatchEntry`` linked into this process."""

    def __init__(self, entry: DispatchEntry):
        from .executable import LinkedKernel

        self.name = entry.name
        self.entry = entry
        self.arg, self.axis = entry.dim
        self.dims = [(a, k) for a, k, _ in entry.dims]
        self.kernels = [LinkedKernel(k) for k in entry.kernels]
        self.arg_maps = [tuple(m) for m in entry.arg_maps]
        self.los = [r.lo for r in entry.ranges]
        self.cache: dict = {}
        self.histogram: Counter = Counter()  # values of the first dim
        self.outside = 0
        self.calls = [0] * len(self.kernels)
        self.variant_calls: Counter = Counter()
        self.call = self._call_multi if entry.extra_dims else self.__call__

    def index_of(self, n) -> int:
        """The range serving ``n`` (a tuple of every dim's value for a multi-dim table; the nearest range
        when ``n`` is outside every one)."""
        if self.entry.extra_dims:
            return self.entry.index_of(tuple(n))
        ranges = self.entry.ranges
        k = max(bisect.bisect_right(self.los, n) - 1, 0)
        if ranges[k].lo <= n <= ranges[k].hi:
            return k
        if k + 1 < len(ranges) and abs(ranges[k + 1].lo - n) < abs(n - ranges[k].hi):
            return k + 1
        return k

    def _point(self, n) -> tuple:
        return tuple(n) if isinstance(n, tuple) else (n,)

    def _decide(self, n):
        k = self.index_of(n)
        inside = self.entry.ranges[k].distance(self._point(n)) == 0
        decision = (k, self.kernels[k].call, self.arg_maps[k], inside, self.variant_of(k, n))
        self.cache[n] = decision
        return decision

    def variant_of(self, k: int, n) -> str:
        """The symbol of range k's kernel that serves ``n`` (a residue variant on the dispatched dims)."""
        kernel = self.entry.kernels[k]
        values = dict(zip(self.dims, self._point(n)))
        amap = self.arg_maps[k]
        for conds, symbol in kernel.variants[:-1]:
            if conds and all(values.get((amap[a], d)) is not None and values[(amap[a], d)] % f == 0
                             for a, d, f in conds):
                return symbol
        return kernel.variants[-1][1]

    def _count(self, hit, first: int) -> None:
        k, _, _, inside, variant = hit
        self.histogram[first] += 1
        self.calls[k] += 1
        self.variant_calls[variant] += 1
        if not inside:
            self.outside += 1

    def __call__(self, vals: list) -> None:
        n = vals[self.arg].shape[self.axis]
        hit = self.cache.get(n)
        if hit is None:
            hit = self._decide(n)
        self._count(hit, n)
        hit[1]([vals[i] for i in hit[2]])

    def _call_multi(self, vals: list) -> None:
        point = tuple(vals[a].shape[k] for a, k in self.dims)
        hit = self.cache.get(point)
        if hit is None:
            hit = self._decide(point)
        self._count(hit, point[0])
        hit[1]([vals[i] for i in hit[2]])

    def point_of(self, shape):
        """The value(s) ``explain`` takes from what a user passes: a dim's value, a {dim name: value} dict, the
        dispatched argument's shape (every dim of a multi-dim table on one argument) or the dims' values in order."""
        names = [name for _, _, name in self.entry.dims]
        if isinstance(shape, dict):
            missing = [d for d in names if d not in shape]
            if missing:
                raise NimbleError(f"explain {self.name}: expected a value for every dim {names}, missing {missing}")
            point = tuple(int(shape[d]) for d in names)
            return point if len(point) > 1 else point[0]
        if not isinstance(shape, (tuple, list)):
            if len(names) > 1:
                raise NimbleError(f"explain {self.name}: the table keys on {names}: pass their values as a tuple or dict")
            return int(shape)
        if len(names) == 1:
            return int(shape[self.axis])
        args = {a for a, _ in self.dims}
        if len(args) == 1 and len(shape) > max(k for _, k in self.dims):
            return tuple(int(shape[k]) for _, k in self.dims)
        if len(shape) == len(names):
            return tuple(int(v) for v in shape)
        raise NimbleError(f"explain {self.name}: expected the values of {names} or the shape of the argument they are "
                          f"read from, got {tuple(shape)}")

    def explain(self, n) -> Explanation:
        """Which kernel a value of the dispatched dim (a tuple of the dims' values for a multi-dim table) gets,
        and why (prints as a table; a Mapping)."""
        k = self.index_of(n)
        r = self.entry.ranges[k]
        dims = [name for _, _, name in self.entry.dims]
        return Explanation({
            "function": self.name, "dim": ",".join(dims), "value": n if not self.entry.extra_dims else tuple(n),
            "bucket": r.label, "range": k, "inside": r.distance(self._point(n)) == 0,
            "source": r.source, "host": r.host, "record_id": r.record_id, "measured_cost_s": r.cost, "cache": r.cache,
            "config": r.config,
            "kernel": self.entry.kernels[k].name, "variant": self.variant_of(k, n),
            "residue_variants": [list(c) for c, _ in self.entry.kernels[k].variants[:-1]],
            "ranges": [(x.label, x.source, x.cost, x.cache) for x in self.entry.ranges]})
