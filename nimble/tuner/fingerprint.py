"""Hardware fingerprint of the host that measured a record.

A record's cost only means something on the hardware it was measured on, so every record
carries a ``HostFingerprint``: CPU model name, vendor, the ISA feature flags that matter to
code generation (SIMD width, FMA, AVX-512 sub-extensions, NEON/SVE ...), core count, the
thread count kernels run with (env ``NIMBLE_NUM_THREADS``, default ``os.cpu_count()``), the
target string and the data cache sizes a core sees (L1d, L2, L3 in KiB, from
``/sys/devices/system/cpu/cpu0/cache``, else ``lscpu``; empty when unknown).

Equality: two fingerprints are the same host for tuning purposes iff they have the same CPU
model name, the same codegen feature set and the same thread count. Vendor, core count, target
and cache sizes are informational: they do not change ``id`` or ``==`` (records written before
cache sizes were recorded keep their host), and ``nearest_host`` ranks other hosts by them. ``id`` is the first 16 hex
digits of the sha256 of the identity (model, features, threads).

Features come from llvmlite's ``get_host_cpu_features()`` when llvmlite imports, else from
the ``flags``/``Features`` line of ``/proc/cpuinfo``; names are lowercased with ``.``, ``_``
and ``-`` removed (``sse4.1`` and ``sse4_1`` are both ``sse41``). ``feature_source`` records
which source was used; the two sources do not name every flag alike, so compare
fingerprints taken the same way.
"""
from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import settings
from ..codegen.caches import (  # noqa: F401 (parsers re-exported)
    CACHE_LEVELS, _check_caches, host_caches, parse_lscpu_caches, parse_sys_cache)
from ..errors import FormatError
from .workload import canonical_json, sha256_hex

NUM_THREADS_ENV = "NIMBLE_NUM_THREADS"

# Feature-name prefixes (after normalisation) that change the code LLVM or CUDA emits.
_CODEGEN_FEATURE_PREFIXES = (
    "sse", "ssse3", "avx", "fma", "f16c", "amx", "vnni", "bf16", "fp16", "vpclmul", "gfni",  # x86
    "neon", "asimd", "sve", "sme", "dotprod", "i8mm", "fullfp16", "fphp", "asimdhp",  # arm
    "altivec", "vsx", "power",  # ppc
    "rvv", "zvl", "zve",  # riscv
)


def normalize_feature(name: str) -> str:
    """Lowercase and drop ``.``, ``_`` and ``-``: ``sse4.1`` and ``sse4_1`` -> ``sse41``."""
    return re.sub(r"[._\-]", "", name.strip().lower())


def codegen_features(names: Iterable[str]) -> tuple[str, ...]:
    """The sorted, normalised subset of ``names`` that matters to code generation."""
    normalized = {normalize_feature(n) for n in names}
    return tuple(sorted(n for n in normalized if n.startswith(_CODEGEN_FEATURE_PREFIXES)))


@dataclass(frozen=True, eq=False)
class HostFingerprint:
    """The hardware a record was measured on; see the module docstring for equality."""

    cpu_model: str
    vendor: str
    features: tuple[str, ...]
    cores: int
    threads: int
    target: str
    feature_source: str = "llvmlite"
    caches: tuple[tuple[str, int], ...] = ()  # (("l1d", KiB), ("l2", KiB), ("l3", KiB)), the levels known

    def __post_init__(self) -> None:
        for name in ("cpu_model", "vendor", "target", "feature_source"):
            if not isinstance(getattr(self, name), str):
                raise FormatError(f"host {name}: expected a string, got {getattr(self, name)!r}")
        if isinstance(self.features, str) or not all(isinstance(f, str) for f in self.features):
            raise FormatError(f"host features: expected a list of strings, got {self.features!r}")
        object.__setattr__(self, "features", tuple(sorted(set(self.features))))
        object.__setattr__(self, "caches", _check_caches(self.caches))
        for name in ("cores", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FormatError(f"host {name}: expected an int >= 1, got {value!r}")

    def _identity(self) -> tuple[str, tuple[str, ...], int]:
        return (self.cpu_model, self.features, self.threads)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HostFingerprint) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def id(self) -> str:
        """16 hex digits identifying (cpu model, features, threads)."""
        model, features, threads = self._identity()
        return sha256_hex(canonical_json({"cpu_model": model, "features": list(features), "threads": threads}))[:16]

    @property
    def cache_kib(self) -> dict[str, int]:
        """Cache level (``l1d``, ``l2``, ``l3``) -> size in KiB, for the levels known."""
        return dict(self.caches)

    def to_json(self) -> dict[str, Any]:
        extra = {"caches": self.cache_kib} if self.caches else {}
        return {
            "id": self.id,
            "cpu_model": self.cpu_model,
            "vendor": self.vendor,
            "features": list(self.features),
            "cores": self.cores,
            "threads": self.threads,
            "target": self.target,
            "feature_source": self.feature_source,
            **extra,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HostFingerprint:
        """Parse ``to_json`` output; an ``id`` that does not match the fields is a FormatError."""
        if not isinstance(obj, Mapping):
            raise FormatError(f"host: expected a JSON object, got {obj!r}")
        fields = ("cpu_model", "vendor", "features", "cores", "threads", "target")
        missing = [f for f in fields if f not in obj]
        if missing:
            raise FormatError(f"host: missing field(s) {missing}")
        if not isinstance(obj["features"], list):
            raise FormatError(f"host features: expected a list of strings, got {obj['features']!r}")
        caches = obj.get("caches") or {}
        if not isinstance(caches, Mapping):
            raise FormatError(f"host caches: expected an object level -> KiB, got {caches!r}")
        host = cls(*(obj[f] for f in fields), feature_source=obj.get("feature_source", "llvmlite"),
                   caches=tuple(caches.items()))
        if "id" in obj and obj["id"] != host.id:
            raise FormatError(f"host id: expected {host.id} for these fields, got {obj['id']!r}")
        return host

    def __str__(self) -> str:
        return f"{self.cpu_model} ({self.vendor}, {self.threads} threads, {len(self.features)} features) #{self.id}"


def num_threads() -> int:
    """Thread count kernels use: ``nimble.settings.num_threads()`` (``NIMBLE_NUM_THREADS``, else every core)."""
    return settings.num_threads()


def parse_cpuinfo(text: str) -> tuple[str, str, tuple[str, ...]]:
    """(model name, vendor, feature flags) from the text of ``/proc/cpuinfo`` (x86 or arm)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    model = fields.get("model name") or fields.get("cpu model") or fields.get("cpu") or fields.get("model", "")
    vendor = fields.get("vendor_id") or fields.get("cpu implementer") or ""
    flags = (fields.get("flags") or fields.get("features") or "").split()
    return model, vendor, tuple(flags)


@functools.lru_cache(maxsize=1)
def _host_sources() -> tuple[str, str, tuple[str, ...], str, str]:
    """(model, vendor, features, feature source, llvm cpu name), read once per process."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model, vendor, flags = parse_cpuinfo(f.read())
    except OSError:
        model, vendor, flags = "", "", ()
    source, llvm_cpu = "cpuinfo", ""
    try:
        import llvmlite.binding as llvm

        feature_map = llvm.get_host_cpu_features()
        flags = tuple(name for name, on in feature_map.items() if on)
        llvm_cpu = llvm.get_host_cpu_name()
        source = "llvmlite"
    except (ImportError, OSError, RuntimeError):
        pass
    model = model or llvm_cpu or platform.processor() or platform.machine() or "unknown"
    vendor = vendor or platform.machine() or "unknown"
    return model, vendor, codegen_features(flags), source, llvm_cpu


def host_fingerprint(target: str = "llvm", threads: int | None = None) -> HostFingerprint:
    """The fingerprint of this host running ``target`` with ``threads`` (default: ``num_threads()``)."""
    model, vendor, features, source, llvm_cpu = _host_sources()
    if llvm_cpu and llvm_cpu not in model:
        model = f"{model} [{llvm_cpu}]"
    return HostFingerprint(
        cpu_model=model,
        vendor=vendor,
        features=features,
        cores=os.cpu_count() or 1,
        threads=num_threads() if threads is None else threads,
        target=target,
        feature_source=source,
        caches=host_caches(),
    )
