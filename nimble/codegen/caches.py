"""The host's data cache sizes (L1d, L2, L3 in KiB): what schedules size their blocks by, and part of a
tuning record's host fingerprint."""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping

from ..errors import FormatError


CACHE_LEVELS = ("l1d", "l2", "l3")


def _check_caches(caches) -> tuple[tuple[str, int], ...]:
    items = caches.items() if isinstance(caches, Mapping) else caches
    try:
        out = {str(level): size for level, size in items}
    except (TypeError, ValueError):
        raise FormatError(f"host caches: expected (level, KiB) pairs, got {caches!r}") from None
    for level, size in out.items():
        if level not in CACHE_LEVELS or isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise FormatError(f"host caches: expected levels {CACHE_LEVELS} with sizes in KiB >= 1, got {caches!r}")
    return tuple((level, out[level]) for level in CACHE_LEVELS if level in out)


def _size_kib(text: str) -> int | None:
    """``"32K"``, ``"1 MiB"``, ``"32768K"``, ``"512 KiB"`` -> KiB."""
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?\s*$", text.strip(), re.IGNORECASE)
    if match is None:
        return None
    scale = {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 * 1024}[match.group(2).upper()]
    size = round(float(match.group(1)) * scale)
    return size if size >= 1 else None


def parse_sys_cache(entries: Iterable[tuple[str, str, str]]) -> tuple[tuple[str, int], ...]:
    """Cache sizes from ``(level, type, size)`` of ``/sys/devices/system/cpu/cpu0/cache/index*``."""
    found = {}
    for level, kind, size in entries:
        kind = kind.strip().lower()
        name = {"1": "l1d" if kind == "data" else None, "2": "l2", "3": "l3"}.get(level.strip())
        kib = _size_kib(size)
        if name and kind != "instruction" and kib:
            found[name] = kib
    return _check_caches(found)


def parse_lscpu_caches(text: str) -> tuple[tuple[str, int], ...]:
    """Cache sizes from ``lscpu -C=NAME,ONE-SIZE`` output (one instance's size per line)."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lower() in ("l1d", "l2", "l3"):
            kib = _size_kib(" ".join(parts[1:]))
            if kib:
                found[parts[0].lower()] = kib
    return _check_caches(found)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


@functools.lru_cache(maxsize=1)
def host_caches() -> tuple[tuple[str, int], ...]:
    """This host's data cache sizes, read once: sysfs of cpu0, else ``lscpu``; () when neither answers."""
    import glob
    import subprocess

    entries = []
    for folder in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            entries.append(tuple(_read_text(os.path.join(folder, f)) for f in ("level", "type", "size")))
        except OSError:
            continue
    found = parse_sys_cache(entries)
    if found:
        return found
    try:
        out = subprocess.run(["lscpu", "-C=NAME,ONE-SIZE"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ()
    return parse_lscpu_caches(out.stdout) if out.returncode == 0 else ()


def host_cache_bytes(level: str, default: int) -> int:
    """The size in bytes of this host's cache ``level`` (``l1d``, ``l2``, ``l3``), ``default`` when unknown."""
    return dict(host_caches()).get(level, default // 1024) * 1024
