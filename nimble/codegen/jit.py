"""LLVM JIT for the host CPU: optimisation, object emission, an on-disk object cache, loading.

Objects are cached under ``$NIMBLE_CACHE_DIR`` (default ``~/.cache/nimble``) in ``objects/``,
keyed by a hash of the LLVM IR, the target (triple, CPU, features) and the LLVM version, so a
second process that builds the same kernel loads the object and skips LLVM's optimiser and
code generator. ``stats`` counts both paths.
"""
from __future__ import annotations

import ctypes.util
import hashlib
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from .. import settings
from ..errors import NimbleError
from .llvm_amx import has_amx_int8, tile_permission

log = logging.getLogger("nimble.codegen")
CODEGEN_VERSION = "3"  # 2: parallel loops call nimble_parallel_for_v1, not libgomp; 3: v2 (flags)
stats = {"llvm_compiles": 0, "cache_hits": 0}
_lock = threading.Lock()
_state: dict = {}


@dataclass(frozen=True)
class HostTarget:
    triple: str
    cpu: str
    features: str
    openmp: bool  # parallel loops available (nimble's own runtime, codegen/parallel.py)

    @property
    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}|omp={self.openmp}|llvm={llvm.llvm_version_info}"


def _init() -> None:
    if _state:
        return
    with _lock:
        if _state:
            return
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        try:  # libc's symbols (pthread_create, syscall, ...) visible to address_of_symbol, as to the linker
            llvm.load_library_permanently(ctypes.util.find_library("c") or "libc.so.6")
        except RuntimeError:
            log.warning("libc not found by name: the object checks may refuse runtime objects")
        triple = llvm.get_process_triple()
        chosen = settings.current().cpu
        cpu = chosen or llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten() if not chosen else ""
        _state["host"] = HostTarget(triple, cpu, features, True)
        _state["tm"] = _new_target_machine()
        if has_amx_int8(features):  # before any kernel, built here or loaded from a file, runs a tile instruction
            tile_permission()


def _new_target_machine():
    h = _state["host"]
    target = llvm.Target.from_triple(h.triple)
    return target.create_target_machine(cpu=h.cpu, features=h.features, opt=3, codemodel="jitdefault")


def host() -> HostTarget:
    _init()
    return _state["host"]


def prepare_linking() -> None:
    """Make every symbol generated code may call resolvable: the JIT target and nimble's
    parallel-for runtime (``parallel.py``)."""
    _init()
    from . import parallel

    parallel.register()


def target_machine():
    _init()
    return _state["tm"]


def cache_dir() -> Path:
    return Path(settings.current().cache_dir) / "objects"


def object_key(llvm_ir: str, options: str = "") -> str:
    h = hashlib.sha256()
    for part in (CODEGEN_VERSION, llvmlite.__version__, host().key, options, llvm_ir):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def optimize_and_emit(llvm_ir: str, speed_level: int = 3, vectorize: bool = True) -> bytes:
    """Parse, verify, optimise (O3, loop and SLP vectorizers on by default) and emit a host object file."""
    tm = target_machine()
    mod = llvm.parse_assembly(llvm_ir)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    pto.loop_vectorization = vectorize
    pto.slp_vectorization = vectorize
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    if log.isEnabledFor(logging.DEBUG) and settings.current().debug >= 2:
        log.debug("optimised LLVM IR:\n%s", mod)
    with _lock:
        stats["llvm_compiles"] += 1
    return tm.emit_object(mod)


def compile_object(llvm_ir: str, use_cache: bool = True, speed_level: int = 3, vectorize: bool = True) -> bytes:
    """The object code of ``llvm_ir`` for the host, from the on-disk cache when present."""
    if not use_cache or settings.current().no_cache:
        return optimize_and_emit(llvm_ir, speed_level, vectorize)
    options = "" if (speed_level, vectorize) == (3, True) else f"O{speed_level}v{int(vectorize)}"
    path = cache_dir() / (object_key(llvm_ir, options) + ".o")
    try:
        data = path.read_bytes()
        with _lock:
            stats["cache_hits"] += 1
        return data
    except OSError:
        pass
    data = optimize_and_emit(llvm_ir, speed_level, vectorize)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only home still runs, only slower next time
        log.warning("object cache not writable (%s): %s", path.parent, exc)
    return data


class LoadedObject:
    """An object file linked into this process; keeps its code alive."""

    def __init__(self, obj: bytes, runtime: bool = False):
        if runtime:
            _init()
        else:
            prepare_linking()
        # the engine takes ownership of (and frees) its target machine: give it its own
        self._engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _new_target_machine())
        self._engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self._engine.finalize_object()

    def address(self, name: str) -> int:
        addr = self._engine.get_function_address(name)
        if not addr:
            raise NimbleError(f"symbol {name!r} not found in the kernel object")
        return addr

    def global_address(self, name: str) -> int:
        """The address of global variable ``name`` in the linked object."""
        addr = self._engine.get_global_value_address(name)
        if not addr:
            raise NimbleError(f"global {name!r} not found in the object")
        return addr
