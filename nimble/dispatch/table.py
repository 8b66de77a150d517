"""Dispatch tables: the concrete shape a primitive function meets -> the kernel tuned for its bucket.

A ``DispatchEntry`` is a packed function of the executable: it reads one symbolic dim from
its arguments (``dim``: argument index, dimension index), finds the bucket range holding it
and calls that bucket's kernel (a ``KernelEntry`` with its own residue variants) on the
arguments it takes (``arg_maps``: a constant weight may be packed differently per bucket).
Once linked, the decision for a value seen before is one dictionary lookup; a value outside
every range goes to the nearest range's kernel (correct for any size) and is counted.
Every value met is counted too: ``shape_histogram`` is what ``nimble-tune --buckets-from``
reads to put tuning effort where the traffic is.

A table may key on several dims at once (``extra_dims``: batch x sequence, height x width): each
range is then a box, ``lo..hi`` of ``dim`` and ``BucketRange.extra`` of the others, and the boxes
are in priority order: a point takes the first box that holds it (records' boxes come first, then
fallback ranges of ``dim`` spanning every value of the others), else the nearest box.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import FormatError


@dataclass(frozen=True)
class BucketRange:
    """Values ``lo..hi`` (inclusive) of the dispatched dim use ``kernel``; ``source`` says why:
    ``"record"`` (best record of this host), ``"nearest-host"`` (a trusted nearest host's), ``"same-cpu"``
    or ``"foreign"`` (another host's, accepted), ``"fallback"``; ``host`` names the other host.
    ``extra``: the (lo, hi) of each of the table's ``extra_dims`` (a multi-dim table's box); ``cache``: how the
    record's cost was measured (``"cold"``, ``"warm"``, or ``""``: unknown or no record)."""

    lo: int
    hi: int
    label: str
    source: str = "fallback"
    record_id: int | None = None
    cost: float | None = None
    config: dict = field(default_factory=dict)
    host: str = ""
    extra: tuple = ()
    cache: str = ""

    def bounds(self) -> tuple:
        """((lo, hi) of ``dim``, then of each extra dim)."""
        return ((self.lo, self.hi),) + tuple(self.extra)

    def distance(self, point: tuple) -> int:
        """0 when the box holds ``point`` (the dims' values, ``dim`` first), else how far outside it is."""
        return sum(max(lo - v, 0) + max(v - hi, 0) for (lo, hi), v in zip(self.bounds(), point))

    def to_json(self) -> dict:
        out = {"lo": self.lo, "hi": self.hi, "label": self.label, "source": self.source,
               "record_id": self.record_id, "cost": self.cost, "config": self.config}
        if self.extra:
            out["extra"] = [list(b) for b in self.extra]
        if self.cache:
            out["cache"] = self.cache
        return {**out, "host": self.host} if self.host else out

    @staticmethod
    def from_json(d: dict) -> "BucketRange":
        return BucketRange(int(d["lo"]), int(d["hi"]), str(d["label"]), str(d["source"]), d.get("record_id"),
                           d.get("cost"), dict(d.get("config") or {}), str(d.get("host") or ""),
                           tuple((int(lo), int(hi)) for lo, hi in d.get("extra") or ()), str(d.get("cache") or ""))


@dataclass(frozen=True)
class DispatchEntry:
    """A primitive function compiled per bucket; see the module docstring."""

    name: str
    dim: tuple  # (argument index, dimension index) of the dispatched symbolic dim
    ranges: tuple  # BucketRange, sorted by lo, disjoint (one dim); boxes in priority order (several)
    kernels: tuple  # KernelEntry per range
    arg_maps: tuple  # per range: indices into the call's arguments
    dim_name: str = "n"  # the symbolic dim of the workload that ``dim`` holds (what the ranges bound)
    extra_dims: tuple = ()  # (argument index, dimension index, name) of each further dim a multi-dim table keys on

    def __post_init__(self):
        if not (len(self.ranges) == len(self.kernels) == len(self.arg_maps)) or not self.ranges:
            raise FormatError(f"dispatch {self.name}: ranges, kernels and arg_maps must be non-empty and match")
        for arg, axis, name in self.dims:
            ranks = {k.arg_ndims[m.index(arg)] for k, m in zip(self.kernels, self.arg_maps) if arg in m}
            if not ranks or axis < 0 or any(axis >= nd for nd in ranks):
                raise FormatError(f"dispatch {self.name}: dim {name} reads axis {axis} of argument {arg}, which its "
                                  f"kernels take with ranks {sorted(ranks)}")
        if self.extra_dims:
            for r in self.ranges:
                if len(r.extra) != len(self.extra_dims) or any(lo > hi for lo, hi in r.bounds()):
                    raise FormatError(f"dispatch {self.name}: box {r.label} must bound {1 + len(self.extra_dims)} "
                                      f"dims with lo <= hi")
            return
        for a, b in zip(self.ranges, self.ranges[1:]):
            if b.lo <= a.hi:
                raise FormatError(f"dispatch {self.name}: ranges {a.label} and {b.label} overlap")

    @property
    def dims(self) -> tuple:
        """((argument index, dimension index, name) of every dim the table keys on, ``dim`` first."""
        return ((*self.dim, self.dim_name),) + tuple(self.extra_dims)

    def index_of(self, point: tuple) -> int:
        """The range serving ``point`` (the values of ``dims``): the first box holding it, else the nearest."""
        best, best_d = 0, None
        for k, r in enumerate(self.ranges):
            d = r.distance(point)
            if d == 0:
                return k
            if best_d is None or d < best_d:
                best, best_d = k, d
        return best


SOURCES = {"record": "a tuning record of this host", "same-cpu": "a record of this CPU at another thread count",
           "nearest-host": "the record of the nearest host (no record of this host; same vector ISA and thread "
                           "count, every instruction it used is here)",
           "foreign": "another host's record (accept_foreign; nearest host first)", "fallback": "the template's fallback config (no record)"}


def _cache_note(cache) -> str:
    return f" ({cache} cache)" if cache else ""


class Explanation(Mapping):
    """What ``exe.explain(name, shape)`` returns: a read-only dict (``as_dict()``, ``["source"]``)
    that prints as a short sentence and a table of the table's buckets."""

    def __init__(self, fields: dict):
        self._fields = dict(fields)

    def __getitem__(self, key):
        return self._fields[key]

    def __iter__(self):
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Explanation({self._fields!r})"

    def as_dict(self) -> dict:
        """A plain dict (JSON-able but for the tuples of ``residue_variants``)."""
        return dict(self._fields)

    def _residues(self) -> str:
        conds = [c for conds in self["residue_variants"] for c in conds]
        if not conds:
            return "no residue variant"
        return "residue variant when " + " and ".join(f"arg {a} dim {d} % {f} == 0" for a, d, f in conds)

    def __str__(self) -> str:
        f = self._fields
        cost = "-" if f.get("measured_cost_s") is None else f"{f['measured_cost_s'] * 1e3:.4g} ms" + _cache_note(f.get("cache"))
        where = "inside" if f["inside"] else "outside every bucket; nearest"
        variant = "the residue variant" if f["variant"] != f["kernel"] and f["residue_variants"] else "the general kernel"
        names, value = str(f.get("dim", "n")).split(","), f["value"]
        point = ", ".join(f"{d}={v}" for d, v in zip(names, value if isinstance(value, tuple) else (value,)))
        lines = [f"{f['function']}: {point} is {where} bucket {f['bucket']}: "
                 f"kernel {f['kernel']} "
                 f"({variant} {f['variant']}), config from {SOURCES.get(f['source'], f['source'])}"
                 + (f": {f['host']}" if f.get("host") else ""),
                 f"  config {json.dumps(f['config'], sort_keys=True)}; measured {cost}; {self._residues()}"]
        if f.get("ranges"):
            width = max(len(r[0]) for r in f["ranges"])
            lines.append(f"  {'bucket'.ljust(width)}  source        measured")
            for k, (label, source, c, *rest) in enumerate(f["ranges"]):
                mark = "*" if f.get("range", k if label == f["bucket"] else -1) == k else " "
                lines.append(f"{mark} {label.ljust(width)}  {source.ljust(12)}  "
                             f"{'-' if c is None else f'{c * 1e3:.4g} ms' + _cache_note(rest[0] if rest else '')}")
        return "\n".join(lines)


def dispatch_to_json(d: DispatchEntry, kernel_json) -> dict:
    out = {"type": "dispatch", "name": d.name, "dim": list(d.dim), "dim_name": d.dim_name,
           "ranges": [r.to_json() for r in d.ranges], "kernels": [kernel_json(k) for k in d.kernels],
           "arg_maps": [list(m) for m in d.arg_maps]}
    if d.extra_dims:
        out["extra_dims"] = [list(x) for x in d.extra_dims]
    return out


def dispatch_from_json(p: dict, kernel_from) -> DispatchEntry:
    extra = tuple((int(a), int(k), str(name)) for a, k, name in p.get("extra_dims") or ())
    return DispatchEntry(p["name"], tuple(p["dim"]), tuple(BucketRange.from_json(r) for r in p["ranges"]),
                         tuple(kernel_from(k) for k in p["kernels"]), tuple(tuple(m) for m in p["arg_maps"]),
                         str(p.get("dim_name", "n")), extra)
