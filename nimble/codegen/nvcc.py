"""CUDA C -> PTX or cubin with nvcc, through an on-disk cache.

Results are cached under ``$NIMBLE_CACHE_DIR`` (default ``~/.cache/nimble``) in ``cuda/``,
keyed by the source, the architecture, the output format, the options and nvcc's version, so a
toolkit upgrade recompiles. ``NIMBLE_NO_CACHE=1`` bypasses the cache. nvcc is found as
``$NVCC``, then on ``PATH``, then under ``$CUDA_HOME/bin``.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..debug import debug_logger
from .llvm import CodegenError

log = debug_logger("nimble.codegen.nvcc")
stats = {"nvcc_calls": 0, "cache_hits": 0}
DEFAULT_ARCH = "sm_90"
OPTIONS = ("-O3", "-std=c++17", "-lineinfo")


def find_nvcc() -> str | None:
    """The nvcc executable, or None when the CUDA toolkit is not installed."""
    explicit = os.environ.get("NVCC")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidate = os.path.join(home, "bin", "nvcc")
    return candidate if os.path.exists(candidate) else None


@functools.lru_cache(maxsize=4)
def nvcc_version(nvcc: str) -> str:
    """The last line of ``nvcc --version`` (e.g. 'Build cuda_13.0.r13.0/compiler.36...')."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise CodegenError(f"nvcc: {nvcc} --version failed: {out.stderr.strip() or out.stdout.strip()}")
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else out.stdout


def cache_dir() -> Path:
    root = os.environ.get("NIMBLE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "nimble")
    return Path(root) / "cuda"


def cache_key(source: str, arch: str, fmt: str, version: str, options=OPTIONS) -> str:
    h = hashlib.sha256()
    for part in (source, arch, fmt, version, " ".join(options)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:40]


def compile_cuda(source: str, arch: str = DEFAULT_ARCH, fmt: str = "cubin", use_cache: bool = True) -> bytes:
    """The ``fmt`` ("cubin" or "ptx") of the translation unit ``source`` for ``arch`` (e.g. "sm_90")."""
    if fmt not in ("cubin", "ptx"):
        raise CodegenError(f"nvcc: fmt must be 'cubin' or 'ptx', got {fmt!r}")
    if not (arch.startswith("sm_") and arch[3:].rstrip("af").isdigit()):
        raise CodegenError(f"nvcc: arch must look like 'sm_90', got {arch!r}")
    nvcc = find_nvcc()
    if nvcc is None:
        raise CodegenError("nvcc: not found (set $NVCC or $CUDA_HOME, or put nvcc on PATH)")
    version = nvcc_version(nvcc)
    path = cache_dir() / f"{cache_key(source, arch, fmt, version)}.{fmt}"
    use_cache = use_cache and not os.environ.get("NIMBLE_NO_CACHE")
    if use_cache and path.exists():
        stats["cache_hits"] += 1
        return path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="nimble-nvcc-") as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / f"kernels.{fmt}"
        src.write_text(source)
        cmd = [nvcc, f"-arch={arch}", f"-{fmt}", *OPTIONS, "-o", str(out), str(src)]
        stats["nvcc_calls"] += 1
        log.debug("nvcc: %s", " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            raise CodegenError(f"nvcc: compiling for {arch} took over 600 s") from None
        if proc.returncode != 0:
            msg = (proc.stderr.strip() or proc.stdout.strip()).replace(str(src), "kernels.cu")
            raise CodegenError(f"nvcc failed for {arch} ({fmt}):\n{msg}")
        data = out.read_bytes()
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp_path = path.with_suffix(f".tmp{os.getpid()}")
            tmp_path.write_bytes(data)
            os.replace(tmp_path, path)
        except OSError as exc:
            log.warning("cuda cache not writable (%s): %s", path.parent, exc)
    return data
