"""A dispatch table linked into this process: the concrete dim -> the bucket's kernel, cached.

The table itself (``nimble.dispatch.table.DispatchEntry``) is data; this is the VM's lowering of
it for the Python VM (the native VM compiles the same ranges into a branch tree).
"""
from __future__ import annotations

import bisect
from collections import Counter

from ..dispatch.table import DispatchEntry, Explanation


class LinkedDispatch:
    """A ``DispatchEntry`` linked into this process."""

    def __init__(self, entry: DispatchEntry):
        from .executable import LinkedKernel

        self.name = entry.name
        self.entry = entry
        self.arg, self.axis = entry.dim
        self.kernels = [LinkedKernel(k) for k in entry.kernels]
        self.arg_maps = [tuple(m) for m in entry.arg_maps]
        self.los = [r.lo for r in entry.ranges]
        self.cache: dict = {}
        self.histogram: Counter = Counter()
        self.outside = 0
        self.calls = [0] * len(self.kernels)
        self.variant_calls: Counter = Counter()
        self.call = self.__call__

    def index_of(self, n: int) -> int:
        """The range serving ``n`` (the nearest one when ``n`` is outside every range)."""
        ranges = self.entry.ranges
        k = max(bisect.bisect_right(self.los, n) - 1, 0)
        if ranges[k].lo <= n <= ranges[k].hi:
            return k
        if k + 1 < len(ranges) and abs(ranges[k + 1].lo - n) < abs(n - ranges[k].hi):
            return k + 1
        return k

    def _decide(self, n: int):
        k = self.index_of(n)
        r = self.entry.ranges[k]
        inside = r.lo <= n <= r.hi
        decision = (k, self.kernels[k].call, self.arg_maps[k], inside, self.variant_of(k, n))
        self.cache[n] = decision
        return decision

    def variant_of(self, k: int, n: int) -> str:
        """The symbol of range k's kernel that serves ``n`` (a residue variant on the dispatched dim)."""
        kernel = self.entry.kernels[k]
        pos = self.arg_maps[k].index(self.arg)
        for conds, symbol in kernel.variants[:-1]:
            if conds and all(a == pos and d == self.axis and n % f == 0 for a, d, f in conds):
                return symbol
        return kernel.variants[-1][1]

    def __call__(self, vals: list) -> None:
        n = vals[self.arg].shape[self.axis]
        hit = self.cache.get(n)
        if hit is None:
            hit = self._decide(n)
        k, call, amap, inside, variant = hit
        self.histogram[n] += 1
        self.calls[k] += 1
        self.variant_calls[variant] += 1
        if not inside:
            self.outside += 1
        call([vals[i] for i in amap])

    def explain(self, n: int) -> Explanation:
        """Which kernel a value of the dispatched dim gets, and why (prints as a table; a Mapping)."""
        k = self.index_of(n)
        r = self.entry.ranges[k]
        return Explanation({
            "function": self.name, "dim": self.entry.dim_name, "value": n, "bucket": r.label,
            "inside": r.lo <= n <= r.hi,
            "source": r.source, "host": r.host, "record_id": r.record_id, "measured_cost_s": r.cost, "config": r.config,
            "kernel": self.entry.kernels[k].name, "variant": self.variant_of(k, n),
            "residue_variants": [list(c) for c, _ in self.entry.kernels[k].variants[:-1]],
            "ranges": [(x.label, x.source, x.cost) for x in self.entry.ranges]})
