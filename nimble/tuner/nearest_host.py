"""Records of another CPU: which host is nearest to this one, and whether its configs can be trusted.

A config is a set of numbers (tile sizes, unroll factors, loop orders): every config of a
template is *valid* on every host of its target; LLVM splits a 16-wide vector into two AVX2
registers. What does not carry over is its *speed*: a config tuned for AVX-512 registers or a
larger cache may be slow here. So hosts are ranked, nearest first, by

1. ISA compatibility: every codegen feature the other host had, this host has too (its records
   never relied on an instruction this host lacks; Zen 3 records on a Zen 4 are compatible, Zen 4
   records on a Zen 3 are not: AVX-512);
2. the same widest vector ISA (``avx512`` / ``avx2`` / ``avx`` / ``sse`` / ``sve`` / ``neon``),
   then the gap in vector width;
3. the same thread count (configs tuned at 1 thread ran 5-10% behind the fallback at 2);
4. how far the data cache sizes are apart (``cache_gap``: the sum over the L1d, L2 and L3 sizes
   both hosts recorded of |log2 of their ratio|; a host that recorded none, as records written
   before caches were fingerprinted, counts as no gap, behind a known equal one: among such hosts
   the old rules decide), then how many
   codegen features differ (a stand-in for the micro-architecture), then the same CPU model,
   then the gap in core count.

``trusted`` (used by ``nimble.compile`` without ``accept_foreign``) is the first three at once:
ISA-compatible, the same widest vector ISA, the same thread count, and, where both hosts
recorded cache sizes, no level more than 2x apart (tiles sized for a 1 MiB L2 spill a 256 KiB one). Other hosts' records are
used only with ``accept_foreign=True``, nearest first; ``nimble-tune`` measures the nearest
hosts' best configs beside the fallback in its first batch and trains its cost model on their
records (a warm start), so their worth on this host is measured before it becomes a record here.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .fingerprint import HostFingerprint

# Widest vector ISA family -> vector width in bits, widest first within an architecture.
VECTOR_ISAS = (("avx512", 512), ("avx2", 256), ("avx", 256), ("sse", 128), ("sve", 128), ("neon", 128),
               ("asimd", 128), ("altivec", 128), ("rvv", 128))


def vector_isa(host: HostFingerprint) -> tuple[str, int]:
    """(family, width in bits) of the widest vector ISA among ``host``'s codegen features; ("scalar", 0) if none."""
    features = host.features
    for family, width in VECTOR_ISAS:
        if family == "avx2":
            hit = "avx2" in features
        elif family == "avx":
            hit = "avx" in features
        else:
            hit = any(f.startswith(family) for f in features)
        if hit:
            return ("neon" if family == "asimd" else family), width
    return "scalar", 0


@dataclass(frozen=True)
class HostMatch:
    """How near ``host`` is to ``here``; ``key`` sorts nearest first."""

    host: HostFingerprint
    compatible: bool  # every codegen feature of ``host`` is one of ``here``'s
    same_isa: bool  # the same widest vector ISA family
    same_threads: bool
    missing: tuple[str, ...]  # features ``host`` had that ``here`` lacks
    key: tuple
    cache_gap: float | None = None  # sum of |log2 size ratio| over the cache levels both recorded; None: unknown
    cache_close: bool = True  # no common cache level more than 2x apart (True when unknown)

    @property
    def trusted(self) -> bool:
        """Its configs may be used without ``accept_foreign``: compatible, same vector ISA and threads."""
        return self.compatible and self.same_isa and self.same_threads and self.cache_close

    def describe(self) -> str:
        """``AMD EPYC [znver4], 1 threads, #2c80850f60460c17 (lacks here: avx512f, ...)``: for explain and logs."""
        text = f"{self.host.cpu_model}, {self.host.threads} threads, #{self.host.id}"
        if self.missing:
            shown = ", ".join(self.missing[:3]) + (", ..." if len(self.missing) > 3 else "")
            text += f" (needs {shown}, which this host lacks)"
        if not self.cache_close:
            text += f" (caches {cache_text(self.host)})"
        return text


def cache_text(host: HostFingerprint) -> str:
    """``L1d 32K, L2 512K, L3 32M`` (the levels known), or ``unknown``."""
    def size(kib: int) -> str:
        return f"{kib // 1024}M" if kib >= 1024 and kib % 1024 == 0 else f"{kib}K"

    return ", ".join(f"{level.upper()} {size(kib)}" for level, kib in host.caches) or "unknown"


def cache_distance(a: HostFingerprint, b: HostFingerprint) -> tuple[float | None, bool]:
    """(sum over the cache levels both hosts recorded of |log2 size ratio| or None when they share
    none, whether every shared level is within 2x)."""
    mine, theirs = a.cache_kib, b.cache_kib
    gaps = [abs(math.log2(mine[level] / theirs[level])) for level in mine if level in theirs]
    if not gaps:
        return None, True
    return sum(gaps), max(gaps) <= 1.0


def match(here: HostFingerprint, other: HostFingerprint) -> HostMatch:
    """``other`` seen from ``here``: compatibility and its place in the nearest-first order."""
    mine, theirs = set(here.features), set(other.features)
    missing = tuple(sorted(theirs - mine))
    (isa_a, width_a), (isa_b, width_b) = vector_isa(here), vector_isa(other)
    same_isa = isa_a == isa_b
    same_threads = here.threads == other.threads
    cores_gap = abs(math.log2(max(here.cores, 1)) - math.log2(max(other.cores, 1)))
    gap, close = cache_distance(here, other)
    key = (not missing, same_isa, same_threads)
    key = (tuple(not k for k in key), abs(width_a - width_b), gap or 0.0, gap is None, len(mine ^ theirs),
           here.cpu_model != other.cpu_model, cores_gap, other.id)
    return HostMatch(other, not missing, same_isa, same_threads, missing, key, gap, close)


def rank_hosts(here: HostFingerprint, hosts: Iterable[HostFingerprint]) -> list[HostMatch]:
    """Every distinct host of ``hosts`` other than ``here``, nearest first (ties broken by host id)."""
    seen = {h for h in hosts if h != here}
    return sorted((match(here, h) for h in seen), key=lambda m: m.key)
