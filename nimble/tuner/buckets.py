"""Shape buckets: ranges of a symbolic dim that are tuned as one.

A ``Bucket`` is an inclusive range ``lo..hi`` of one dim, tuned at its ``representative``
(the upper edge by default, so a kernel tuned for the bucket never runs a larger n than it
was measured at). Its stable string form — ``"n=33..64"``, ``"n=7"`` for a single value, and
``"n=33..64@48"`` when the representative is not the upper edge — is the key the records
database stores. A bucket may instead be measured at several *traffic points*, weighted by how
often the model calls them (``"n=1..29@9+12+23"``, ``"n=1..64@8*3+40"``): a config's cost is then
the weighted mean of its times at those points, the time the bucket's traffic would spend in it
(``traffic_points`` draws them from a shape histogram).

A ``BucketSpec`` is the sorted, non-overlapping list of buckets of one dim:

- ``BucketSpec.powers_of_two("n", 512)``: 1, 2, 3..4, 5..8, ..., 257..512;
- ``BucketSpec.parse("n=1:8,9:32,33:128,129:512")``: explicit edges (gaps allowed);
- ``buckets_from_histogram("n", {n: count}, max_buckets)``: edges chosen from observed shapes.

``spec.bucket_of(n)`` returns the bucket holding ``n``; a value outside every bucket maps to
the nearest one (ties go to the lower bucket) and the match is flagged ``outside=True``.

A ``BucketKey`` is a multi-dim key (dim -> Bucket), written ``"m=1..8,n=33..64"`` (dims
sorted) or ``"static"`` for a workload without symbolic dims; ``BucketSpace`` maps a
concrete binding ``{"m": 3, "n": 40}`` to one.
"""
from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError

UNBOUNDED = 1 << 62
# The dispatch table's ranges of a template's symbolic dim when it has no record, as (lo, hi, representative):
# the fallback config is chosen at the representative (small batches get small register tiles). The tuner
# measures these configs first in every bucket they overlap, so a record never loses to them.
FALLBACK_RANGES = ((0, 1, 1), (2, 4, 4), (5, 32, 16), (33, UNBOUNDED, 64))

_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POINT = r"\d+(?:\*\d+)?"
_BUCKET_TEXT = re.compile(rf"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?:\.\.(\d+))?(?:@({_POINT}(?:\+{_POINT})*))?$")
STATIC_KEY = "static"


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FormatError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True, order=True)
class Bucket:
    """The inclusive range ``lo..hi`` of dim ``dim``, tuned at ``representative`` (default ``hi``), or at
    ``points`` ((value, weight), two or more: a config's cost is its weighted mean time over them; the
    representative is then the point where half the traffic's time is spent, for fallbacks and features)."""

    dim: str
    lo: int
    hi: int
    representative: int = -1
    points: tuple = ()

    def __post_init__(self) -> None:
        if not isinstance(self.dim, str) or not _DIM_NAME.match(self.dim):
            raise FormatError(f"bucket dim: expected an identifier, got {self.dim!r}")
        _check_int("bucket lo", self.lo)
        _check_int("bucket hi", self.hi, self.lo)
        points = _check_points(self.points, self.lo, self.hi)
        object.__setattr__(self, "points", points)
        if points:
            object.__setattr__(self, "representative", _time_median(points))
        if self.representative == -1:
            object.__setattr__(self, "representative", self.hi)
        rep = _check_int("bucket representative", self.representative)
        if not self.lo <= rep <= self.hi:
            raise FormatError(f"bucket representative: expected a value in {self.lo}..{self.hi}, got {rep}")

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and self.lo <= n <= self.hi

    def distance(self, n: int) -> int:
        """0 if ``n`` is inside, else how far ``n`` lies from the nearest edge."""
        return max(self.lo - n, 0, n - self.hi)

    def __str__(self) -> str:
        text = f"{self.dim}={self.lo}" if self.lo == self.hi else f"{self.dim}={self.lo}..{self.hi}"
        if self.points:
            return f"{text}@" + "+".join(str(v) if w == 1 else f"{v}*{w}" for v, w in self.points)
        return text if self.representative == self.hi else f"{text}@{self.representative}"

    def weighted_points(self) -> tuple:
        """((value, weight), ...) this bucket is measured at: its ``points``, else its representative alone."""
        return self.points or ((self.representative, 1),)

    @classmethod
    def parse(cls, text: str) -> Bucket:
        """Parse the string form: ``"n=33..64"``, ``"n=7"``, ``"n=33..64@48"`` or ``"n=1..64@8*3+40"``."""
        match = _BUCKET_TEXT.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise FormatError(f"bucket: expected text like 'n=33..64', 'n=7' or 'n=1..64@8+40', got {text!r}")
        dim, lo, hi, at = match.groups()
        hi = hi if hi is not None else lo
        if at is None:
            return cls(dim, int(lo), int(hi))
        points = tuple((int(v), int(w or 1)) for v, _, w in (p.partition("*") for p in at.split("+")))
        if len(points) == 1:
            return cls(dim, int(lo), int(hi), points[0][0])
        return cls(dim, int(lo), int(hi), points=points)

    def to_json(self) -> dict[str, Any]:
        out = {"dim": self.dim, "lo": self.lo, "hi": self.hi, "representative": self.representative}
        if self.points:
            out["points"] = [list(p) for p in self.points]
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Bucket:
        if not isinstance(obj, Mapping) or not {"dim", "lo", "hi"} <= set(obj):
            raise FormatError(f"bucket: expected an object with 'dim', 'lo', 'hi', got {obj!r}")
        points = obj.get("points") or ()
        if points:
            if not isinstance(points, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                                 for p in points):
                raise FormatError(f"bucket points: expected [[value, weight], ...], got {points!r}")
            return cls(obj["dim"], obj["lo"], obj["hi"], points=tuple(tuple(p) for p in points))
        return cls(obj["dim"], obj["lo"], obj["hi"], obj.get("representative", obj["hi"]))


def _check_points(points, lo: int, hi: int) -> tuple:
    """``points`` as a sorted tuple of (value, weight) with distinct values in ``lo..hi`` and weights >= 1."""
    if not isinstance(points, tuple):
        raise FormatError(f"bucket points: expected a tuple of (value, weight), got {points!r}")
    if not points:
        return ()
    out = []
    for p in points:
        if not isinstance(p, tuple) or len(p) != 2:
            raise FormatError(f"bucket points: expected (value, weight) pairs, got {p!r}")
        v, w = _check_int("bucket point", p[0]), _check_int("bucket point weight", p[1], 1)
        if not lo <= v <= hi:
            raise FormatError(f"bucket point: expected a value in {lo}..{hi}, got {v}")
        out.append((v, w))
    out.sort()
    if len({v for v, _ in out}) != len(out):
        raise FormatError(f"bucket points: expected distinct values, got {[v for v, _ in out]}")
    if len(out) < 2:
        raise FormatError(f"bucket points: expected two or more (one point is the representative), got {out}")
    g = math.gcd(*(w for _, w in out))
    return tuple((v, w // g) for v, w in out)


def _time_median(points: tuple) -> int:
    """The point where half of the traffic's time has been spent, taking time as proportional to the value."""
    total = sum(max(v, 1) * w for v, w in points)
    acc = 0
    for v, w in points:
        acc += max(v, 1) * w
        if 2 * acc >= total:
            return v
    return points[-1][0]


@dataclass(frozen=True)
class BucketMatch:
    """Result of ``bucket_of``: the bucket, and whether the value lay outside every bucket."""

    bucket: Bucket
    outside: bool


@dataclass(frozen=True)
class BucketSpec:
    """The sorted, non-overlapping buckets of one symbolic dim."""

    dim: str
    buckets: tuple[Bucket, ...]

    def __post_init__(self) -> None:
        buckets = tuple(sorted(self.buckets))
        if not buckets:
            raise FormatError(f"bucket spec for {self.dim!r}: expected at least one bucket, got none")
        for b in buckets:
            if b.dim != self.dim:
                raise FormatError(f"bucket spec for {self.dim!r}: expected buckets of dim {self.dim!r}, got {b}")
        for prev, cur in zip(buckets, buckets[1:]):
            if cur.lo <= prev.hi:
                raise FormatError(f"bucket spec for {self.dim!r}: expected non-overlapping buckets, got {prev} and {cur}")
        object.__setattr__(self, "buckets", buckets)
        object.__setattr__(self, "_los", [b.lo for b in buckets])

    @classmethod
    def powers_of_two(cls, dim: str, max_value: int) -> BucketSpec:
        """Buckets 1, 2, 3..4, 5..8, ..., up to ``max_value`` (the last one ends at ``max_value``)."""
        _check_int("max_value", max_value, 1)
        buckets, lo, hi = [], 1, 1
        while lo <= max_value:
            buckets.append(Bucket(dim, lo, min(hi, max_value)))
            lo, hi = hi + 1, hi * 2
        return cls(dim, tuple(buckets))

    @classmethod
    def from_edges(cls, dim: str, ranges: Iterable[tuple[int, int]]) -> BucketSpec:
        """Buckets from inclusive ``(lo, hi)`` pairs."""
        return cls(dim, tuple(Bucket(dim, lo, hi) for lo, hi in ranges))

    @classmethod
    def parse(cls, text: str) -> BucketSpec:
        """Parse ``"n=1:8,9:32,33:128"`` (inclusive ranges) or ``"n=pow2:512"`` (powers of two)."""
        if not isinstance(text, str) or "=" not in text:
            raise FormatError(f"bucket spec: expected text like 'n=1:8,9:32' or 'n=pow2:512', got {text!r}")
        dim, body = (part.strip() for part in text.split("=", 1))
        if body.startswith("pow2:"):
            return cls.powers_of_two(dim, _parse_int(body[5:], text))
        ranges = []
        for item in body.split(","):
            lo, sep, hi = item.partition(":")
            ranges.append((_parse_int(lo, text), _parse_int(hi if sep else lo, text)))
        return cls.from_edges(dim, ranges)

    def bucket_of(self, n: int) -> BucketMatch:
        """The bucket holding ``n``; else the nearest bucket (lower one on ties), flagged outside."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise FormatError(f"bucket_of({self.dim}): expected an int, got {n!r}")
        i = bisect.bisect_right(self._los, n) - 1  # last bucket with lo <= n
        if i >= 0 and n in self.buckets[i]:
            return BucketMatch(self.buckets[i], False)
        candidates = [self.buckets[j] for j in (i, i + 1) if 0 <= j < len(self.buckets)]
        return BucketMatch(min(candidates, key=lambda b: (b.distance(n), b.lo)), True)

    def __str__(self) -> str:
        return f"{self.dim}=" + ",".join(f"{b.lo}:{b.hi}" for b in self.buckets)

    def to_json(self) -> dict[str, Any]:
        return {"dim": self.dim, "buckets": [b.to_json() for b in self.buckets]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BucketSpec:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("buckets"), list):
            raise FormatError(f"bucket spec: expected an object with 'dim' and a 'buckets' list, got {obj!r}")
        return cls(obj.get("dim"), tuple(Bucket.from_json(b) for b in obj["buckets"]))


def _parse_int(text: str, whole: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FormatError(f"bucket spec {whole!r}: expected an integer edge, got {text!r}") from None


@dataclass(frozen=True)
class BucketKey:
    """A multi-dim bucket key: one ``Bucket`` per symbolic dim; string form ``"m=1..8,n=33..64"``."""

    buckets: tuple[Bucket, ...]

    def __post_init__(self) -> None:
        buckets = tuple(sorted(self.buckets, key=lambda b: b.dim))
        dims = [b.dim for b in buckets]
        if len(set(dims)) != len(dims):
            raise FormatError(f"bucket key: expected one bucket per dim, got dims {dims}")
        object.__setattr__(self, "buckets", buckets)

    @classmethod
    def of(cls, buckets: Mapping[str, Bucket] | Iterable[Bucket]) -> BucketKey:
        return cls(tuple(buckets.values() if isinstance(buckets, Mapping) else buckets))

    def __getitem__(self, dim: str) -> Bucket:
        for b in self.buckets:
            if b.dim == dim:
                return b
        raise KeyError(dim)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(b.dim for b in self.buckets)

    def representatives(self) -> dict[str, int]:
        """The binding dim -> representative value at which this key is tuned."""
        return {b.dim: b.representative for b in self.buckets}

    def __contains__(self, binding: object) -> bool:
        return isinstance(binding, Mapping) and all(binding.get(b.dim) in b for b in self.buckets)

    def __str__(self) -> str:
        return ",".join(str(b) for b in self.buckets) if self.buckets else STATIC_KEY

    @classmethod
    def parse(cls, text: str) -> BucketKey:
        """Parse ``"m=1..8,n=33..64"`` or ``"static"``."""
        if not isinstance(text, str):
            raise FormatError(f"bucket key: expected text like 'n=33..64', got {text!r}")
        text = text.strip()
        if text == STATIC_KEY:
            return cls(())
        return cls(tuple(Bucket.parse(part) for part in text.split(",")))

    def to_json(self) -> dict[str, Any]:
        return {b.dim: b.to_json() for b in self.buckets}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BucketKey:
        if not isinstance(obj, Mapping):
            raise FormatError(f"bucket key: expected an object dim -> bucket, got {obj!r}")
        return cls(tuple(Bucket.from_json(b) for b in obj.values()))


@dataclass(frozen=True)
class BucketSpace:
    """Bucket specs of every symbolic dim of a workload; maps a concrete binding to a ``BucketKey``."""

    specs: tuple[BucketSpec, ...]

    @classmethod
    def of(cls, specs: Mapping[str, BucketSpec] | Iterable[BucketSpec]) -> BucketSpace:
        return cls(tuple(specs.values() if isinstance(specs, Mapping) else specs))

    @classmethod
    def powers_of_two(cls, dims: Iterable[str], max_value: int) -> BucketSpace:
        return cls(tuple(BucketSpec.powers_of_two(d, max_value) for d in dims))

    def key_of(self, binding: Mapping[str, int]) -> tuple[BucketKey, tuple[str, ...]]:
        """The bucket key of ``binding`` and the dims whose value lay outside every bucket."""
        missing = [s.dim for s in self.specs if s.dim not in binding]
        if missing:
            raise FormatError(f"bucket key: expected a value for dims {missing}, got binding {dict(binding)}")
        matches = [(s.dim, s.bucket_of(binding[s.dim])) for s in self.specs]
        return BucketKey(tuple(m.bucket for _, m in matches)), tuple(d for d, m in matches if m.outside)

    def keys(self) -> list[BucketKey]:
        """Every bucket key of the space (the cross product of the specs)."""
        keys: list[tuple[Bucket, ...]] = [()]
        for spec in self.specs:
            keys = [k + (b,) for k in keys for b in spec.buckets]
        return [BucketKey(k) for k in keys]


def buckets_from_histogram(dim: str, histogram: Mapping[int, int], max_buckets: int) -> BucketSpec:
    """Buckets of ``dim`` chosen so the hottest observed values are tuned exactly.

    Rule: the upper edges are the largest observed value plus the ``max_buckets - 1`` most
    frequent other values (ties: the smaller value first). Each bucket runs from the previous
    edge + 1 (the first from 1, or 0 if 0 was observed) up to its edge and is tuned at that
    edge. So every hot value is the representative of its own bucket, no value runs a kernel
    tuned for more than the next hot value at or above it, and the buckets cover the
    observed range without gaps. With at most ``max_buckets`` distinct values, each value is
    an edge.
    """
    _check_int("max_buckets", max_buckets, 1)
    if not isinstance(histogram, Mapping) or not histogram:
        raise FormatError(f"histogram: expected a non-empty mapping value -> count, got {histogram!r}")
    for value, count in histogram.items():
        _check_int("histogram value", value)
        _check_int(f"histogram count of {value}", count)
    top = max(histogram)
    others = sorted((v for v in histogram if v != top), key=lambda v: (-histogram[v], v))
    edges = sorted({top, *others[: max_buckets - 1]})
    lo = 0 if 0 in histogram else 1
    buckets = []
    for edge in edges:
        buckets.append(Bucket(dim, lo, edge))
        lo = edge + 1
    return BucketSpec(dim, tuple(buckets))


def buckets_from_traffic(dim: str, histogram: Mapping[int, int], max_buckets: int) -> BucketSpec:
    """Buckets of ``dim`` that split the observed traffic evenly, hot values getting their own.

    Rule: a value seen at least twice as often as the average value is hot and becomes an
    edge (the most frequent first, while edges remain); the other edges are the traffic
    quantiles of the remaining values (equal numbers of calls per bucket), and the largest
    observed value is always an edge. Each bucket is tuned at its upper edge. A flat
    histogram (sentence lengths drawn at random) gets quantile buckets; a spiky one (a
    service's fixed lengths) gets one bucket per spike.
    """
    _check_int("max_buckets", max_buckets, 1)
    if not isinstance(histogram, Mapping) or not histogram:
        raise FormatError(f"histogram: expected a non-empty mapping value -> count, got {histogram!r}")
    for value, count in histogram.items():
        _check_int("histogram value", value)
        _check_int(f"histogram count of {value}", count)
    values = sorted(histogram)
    top = values[-1]
    mean = sum(histogram.values()) / len(values)
    hot = sorted((v for v in values if histogram[v] >= 2 * mean and v != top), key=lambda v: (-histogram[v], v))
    edges = {top, *hot[: max_buckets - 1]}
    rest = [v for v in values if v not in edges]
    room = max_buckets - len(edges)
    if room > 0 and rest:
        total = sum(histogram[v] for v in rest)
        acc, k = 0, 1
        for v in rest:
            acc += histogram[v]
            if acc >= k * total / (room + 1) and len(edges) < max_buckets:
                edges.add(v)
                k += 1
    lo = 0 if 0 in histogram else 1
    buckets = []
    for edge in sorted(edges):
        buckets.append(Bucket(dim, lo, edge))
        lo = edge + 1
    return BucketSpec(dim, tuple(buckets))


def traffic_points(bucket: Bucket, histogram: Mapping[int, int], max_points: int = 3) -> Bucket:
    """``bucket`` measured at up to ``max_points`` values drawn from the ``histogram`` (value -> calls) of
    the traffic inside it: the calls split into ``max_points`` equal shares, each share's median value a
    point weighted by its calls (a value holding several shares' medians gets their weights). A config
    tuned at the bucket's top edge alone can lose to the fallback at the bucket's short values, where
    most calls may land; one timed at the traffic's points is ranked by the time the traffic spends.
    With no traffic, or one value, inside the bucket: the bucket unchanged, or that value as representative."""
    _check_int("max_points", max_points, 1)
    inside = sorted((v, c) for v, c in histogram.items() if v in bucket and c > 0)
    if not inside:
        return bucket
    total = sum(c for _, c in inside)
    weights: dict[int, int] = {}
    k = max_points
    for share in range(k):
        target = (2 * share + 1) * total / (2 * k)  # the median call of this share
        acc = 0
        for v, c in inside:
            acc += c
            if acc >= target:
                weights[v] = weights.get(v, 0) + 1
                break
    if len(weights) == 1:
        return Bucket(bucket.dim, bucket.lo, bucket.hi, next(iter(weights)))
    return Bucket(bucket.dim, bucket.lo, bucket.hi, points=tuple(sorted(weights.items())))


def with_traffic_points(spec: BucketSpec, histogram: Mapping[int, int], max_points: int = 3) -> BucketSpec:
    """``spec`` with every bucket measured at its traffic's points (``traffic_points``)."""
    return BucketSpec(spec.dim, tuple(traffic_points(b, histogram, max_points) for b in spec.buckets))
