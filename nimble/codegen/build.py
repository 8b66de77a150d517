"""``nimble.build``: schedule -> loop IR -> LLVM -> a callable ``Kernel`` on numpy arrays."""
from __future__ import annotations

import ctypes
import re

import numpy as np

from .. import settings
from ..debug import debug_level, debug_logger
from ..dtypes import numpy_dtype
from ..errors import NimbleError, OutOfRangeError, ShapeError
from ..errors import TypeError as NimbleTypeError
from ..te.expr import BinaryOp, Expr, IntImm, Var
from ..te.tensor import ComputeOp, Tensor
from ..tir.lower import lower
from ..tir.nodes import PrimFunc
from . import isa, jit, memo
from .llvm import PYARRAY_SUFFIX, SHAPE_STATUS, codegen_llvm
from .threads import num_threads

log = debug_logger("nimble.codegen")
TARGETS = ("llvm",)

_PY_OPS = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
    "//": lambda x, y: x // y, "%": lambda x, y: x % y, "min": min, "max": max,
}


def _shape_fn(e: Expr):
    """A Python function env -> int evaluating an integer shape expression."""
    if isinstance(e, IntImm):
        return lambda env, v=e.value: v
    if isinstance(e, Var):
        return lambda env, v=e: env[v]
    if isinstance(e, BinaryOp) and e.symbol in _PY_OPS:
        fa, fb, op = _shape_fn(e.a), _shape_fn(e.b), _PY_OPS[e.symbol]
        return lambda env: op(fa(env), fb(env))
    raise ShapeError(f"shape expression {e} cannot be evaluated at call time")


class CompiledFunc:
    """One lowered function, its LLVM IR and object code, linked and callable through ctypes."""

    def __init__(self, func: PrimFunc, llvm_ir: str, object_code: bytes, lib=None):
        self.func = func
        self.llvm_ir = llvm_ir
        self.object_code = object_code
        self._lib = lib if lib is not None else jit.LoadedObject(object_code)
        n_buf, n_var = len(func.params), len(func.shape_vars)
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.py_object] * n_buf + [ctypes.c_int64] * n_var + [ctypes.c_int32]))
        self.cfunc = proto(self._lib.address(func.name + PYARRAY_SUFFIX))


def compile_funcs(funcs: list) -> list:
    """Compile functions (distinct names) into one object: a ``CompiledFunc`` each, sharing it."""
    for func in funcs:
        if debug_level() >= 1:
            log.debug("loop IR of %s:\n%s", func.name, func)
    host = jit.host()
    key = None if settings.current().no_cache else memo.structural_key(
        funcs, host.key, settings.current().parallel_min_work, isa.host_dot_widths())
    found = memo.lookup(key)
    if found is not None:
        llvm_ir, obj, lib = found
    else:
        llvm_ir = codegen_llvm(funcs, host.triple, str(jit.target_machine().target_data), host.openmp)
        obj = jit.compile_object(llvm_ir)
        lib = jit.LoadedObject(obj)
        memo.store(key, (llvm_ir, obj, lib))
    if debug_level() >= 2:
        log.debug("LLVM IR:\n%s", llvm_ir)
    return [CompiledFunc(f, llvm_ir, obj, lib) for f in funcs]


def compile_func(func: PrimFunc) -> CompiledFunc:
    return compile_funcs([func])[0]


class Kernel:
    """A compiled kernel: call it with numpy arrays for every arg, or for the inputs only
    (then the outputs are allocated and returned). ``args`` are te tensors (outputs: the computed ones), or the
    loop-IR buffers of a hand-written function with ``outputs`` their indices.

    Residue variants (``residues=[{n: 8}]`` at build) are picked per call when every named
    dim is a multiple of its factor; ``variant_calls`` counts the calls each one served (the
    general function last).
    """

    def __init__(self, general: CompiledFunc, variants: list, args: list, target: str, outputs=None):
        func = general.func
        self.func = func
        self.name = func.name
        self.target = target
        self.general = general
        self.variants = variants  # [(((var, factor), ...), CompiledFunc)]
        self.variant_calls = [0] * (len(variants) + 1)
        self._llvm_ir = general.llvm_ir
        self.object_code = general.object_code
        self._cfunc = general.cfunc
        self._choices = [(tuple(conds), cf.cfunc, k) for k, (conds, cf) in enumerate(variants)]
        self.arg_names = [t.name for t in args]
        self.dtypes = [t.dtype for t in args]
        self.is_output = ([isinstance(t.op, ComputeOp) for t in args] if outputs is None
                          else [i in outputs for i in range(len(args))])
        self.inputs = [i for i, o in enumerate(self.is_output) if not o]
        self.outputs = [i for i, o in enumerate(self.is_output) if o]
        # per argument and dimension: ("bind", var) for a plain variable (bound on first sight,
        # compared after), else ("check", fn, text) evaluated once the variables are bound
        self._plans = [[("bind", d) if isinstance(d, Var) else ("check", _shape_fn(d), str(d)) for d in t.shape]
                       for t in args]
        self._n_all = len(args)
        self._all = self.inputs + self.outputs
        self._specs = [(numpy_dtype(t.dtype), len(t.shape), tuple((k, d) for k, d in enumerate(t.shape) if isinstance(d, Var)))
                       for t in args]
        self._derived = [(i, k, step[1], step[2]) for i, plan in enumerate(self._plans)
                         for k, step in enumerate(plan) if step[0] == "check"]
        self._vars = list(func.shape_vars)

    def ir(self) -> str:
        """The loop IR this kernel was generated from."""
        return str(self.func)

    def llvm_ir(self) -> str:
        """The (unoptimised) LLVM IR text of this kernel."""
        return self._llvm_ir

    def _bind(self, i: int, a, env: dict, provenance: dict) -> None:
        """Check type, dtype, rank and layout of argument i; bind or compare its plain dims."""
        name = f"{self.name}: argument {self.arg_names[i]!r} (#{i})"
        if not isinstance(a, np.ndarray):
            raise NimbleTypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
        if a.dtype != self.dtypes[i]:
            raise NimbleTypeError(f"{name}: expected dtype {self.dtypes[i]}, got {a.dtype}")
        plan = self._plans[i]
        if a.ndim != len(plan):
            raise ShapeError(f"{name}: expected rank {len(plan)}, got rank {a.ndim} (shape {a.shape})")
        if not a.flags.c_contiguous:
            raise ShapeError(f"{name}: expected a C-contiguous array (use numpy.ascontiguousarray)")
        for k, step in enumerate(plan):
            if step[0] != "bind":
                continue
            v = step[1]
            if v not in env:
                env[v] = a.shape[k]
                provenance[v] = (self.arg_names[i], k)
            elif env[v] != a.shape[k]:
                src, dim = provenance[v]
                raise ShapeError(f"{name}: dimension {k} is {v.name} = {a.shape[k]}, but argument "
                                 f"{src!r} dimension {dim} set {v.name} = {env[v]}")

    def _check_derived(self, i: int, a, env: dict) -> None:
        for k, step in enumerate(self._plans[i]):
            if step[0] == "check":
                want = step[1](env)
                if want != a.shape[k]:
                    raise ShapeError(f"{self.name}: argument {self.arg_names[i]!r} (#{i}): dimension {k} must be "
                                     f"{step[2]} = {want}, got {a.shape[k]} (shape {a.shape})")

    def __call__(self, *arrays):
        n_all, n_in = self._n_all, len(self.inputs)
        if len(arrays) == n_all:
            full, allocate = arrays, False
        elif len(arrays) == n_in:
            full, allocate = [None] * n_all, True
            for pos, i in enumerate(self.inputs):
                full[i] = arrays[pos]
        else:
            raise NimbleTypeError(f"{self.name}: expected {n_in} input arrays ({', '.join(self.arg_names[i] for i in self.inputs)}) "
                                  f"or all {n_all} arguments, got {len(arrays)}")
        env: dict = {}
        ndarray = np.ndarray
        for i in (self.inputs if allocate else self._all):  # fast checks; the slow path words the error
            a = full[i]
            dt, nd, binds = self._specs[i]
            if a.__class__ is not ndarray or a.dtype is not dt or a.ndim != nd or not a.flags.c_contiguous:
                return self._fail(full, allocate)
            shape = a.shape
            for k, v in binds:
                old = env.get(v)
                if old is None:
                    env[v] = shape[k]
                elif old != shape[k]:
                    return self._fail(full, allocate)
        if allocate:
            if len(env) != len(self._vars):
                return self._fail(full, allocate)
            for i in self.outputs:
                shape = tuple(env[s[1]] if s[0] == "bind" else s[1](env) for s in self._plans[i])
                if any(d < 0 for d in shape):
                    return self._fail(full, allocate)
                try:
                    full[i] = aligned_empty(shape, self.dtypes[i])
                except (ValueError, MemoryError):
                    return self._fail(full, allocate)
        for i, k, fn, _ in self._derived:
            if fn(env) != full[i].shape[k]:
                return self._fail(full, allocate)
        for i in self.outputs:
            out = full[i]
            if not out.flags.writeable:
                return self._fail(full, allocate)
            for j in self._all:
                if j != i and np.may_share_memory(out, full[j]):
                    return self._fail(full, allocate)
        return self._launch(full, env, allocate)

    def _launch(self, full: list, env: dict, allocate: bool):
        cfunc, which = self._cfunc, len(self._choices)
        for conds, f, k in self._choices:
            if all(env[v] % factor == 0 for v, factor in conds):
                cfunc, which = f, k
                break
        self.variant_calls[which] += 1
        status = cfunc(*full, *[env[v] for v in self._vars], num_threads())
        if status != 0:
            self._raise_status(status, env)
        if allocate:
            if len(self.outputs) == 1:
                return full[self.outputs[0]]
            return tuple(full[i] for i in self.outputs)
        return None

    def _raise_status(self, status: int, env: dict | None = None):
        if SHAPE_STATUS <= status < SHAPE_STATUS + self._n_all:
            k = status - SHAPE_STATUS
            raise ShapeError(f"{self.name}: argument {self.arg_names[k]!r} (#{k}) has a rank or dimension that "
                             f"disagrees with the other arguments (checked in the kernel)")
        if status == 1:
            raise MemoryError(f"{self.name}: the kernel could not allocate its temporary buffers")
        messages = self.func.attrs.get("assert_messages", ())
        if 2 <= status < 2 + len(messages):
            text = messages[status - 2]
            named = [f"{v.name} = {n}" for v, n in (env or {}).items() if re.search(rf"\b{re.escape(v.name)}\b", text)]
            raise OutOfRangeError(f"{self.name}: {text}" + (f" (here {', '.join(named)})" if named else ""))
        raise NimbleError(f"{self.name}: the kernel returned the unknown status {status}")

    def _fail(self, full, allocate: bool):
        """Re-check the arguments one by one: raise the error that names what is wrong, or run the
        kernel when only the fast check's shortcuts refused them (an ndarray subclass such as
        ``np.memmap``, an equal but distinct dtype object)."""
        full = list(full)
        for i in (self.inputs if allocate else self._all):
            if isinstance(full[i], np.ndarray) and full[i].__class__ is not np.ndarray:
                full[i] = full[i].view(np.ndarray)  # same memory: outputs are still written in place
        env: dict = {}
        prov: dict = {}
        for i in self.inputs:
            self._bind(i, full[i], env, prov)
        if allocate:
            missing = [v for v in self._vars if v not in env]
            if missing:
                raise ShapeError(f"{self.name}: {', '.join(v.name for v in missing)} is bound by no input; pass the "
                                 f"output arrays too (no input binds it)")
            for i in self.inputs:
                self._check_derived(i, full[i], env)
            for i in self.outputs:
                shape = tuple(env[s[1]] if s[0] == "bind" else s[1](env) for s in self._plans[i])
                if any(d < 0 for d in shape):
                    raise ShapeError(f"{self.name}: output {self.arg_names[i]!r} would have a negative shape {shape}")
                full[i] = _empty(shape, self.dtypes[i], f"{self.name}: output {self.arg_names[i]!r}")
        for i in self.outputs:
            self._bind(i, full[i], env, prov)
        for i in range(len(full)):
            self._check_derived(i, full[i], env)
        for i in self.outputs:
            if not full[i].flags.writeable:
                raise ShapeError(f"{self.name}: output {self.arg_names[i]!r} is read-only")
            for j, other in enumerate(full):
                if j != i and np.may_share_memory(full[i], other):
                    raise ShapeError(f"{self.name}: output {self.arg_names[i]!r} overlaps argument {self.arg_names[j]!r}")
        return self._launch(full, env, allocate)


ALIGNMENT = 64


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """``np.empty`` starting on a cache line, as the VM's storage does (numpy puts large arrays 16 bytes past a page:
    a kernel's 64-byte vector and AMX tile rows then straddle two lines each)."""
    dt = numpy_dtype(dtype) if isinstance(dtype, str) else np.dtype(dtype)
    count = 1
    for d in shape:
        count *= int(d)
    raw = np.empty(count * dt.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + count * dt.itemsize].view(dt).reshape(shape)


def _empty(shape: tuple, dtype: str, what: str):
    """``np.empty`` with the element count and byte size checked against int64 first."""
    count = 1
    for d in shape:
        count *= int(d)
    nbytes = count * numpy_dtype(dtype).itemsize
    if nbytes >= 1 << 63:
        raise ShapeError(f"{what}: shape {shape} needs {nbytes} bytes, more than an int64 byte count can hold")
    try:
        return aligned_empty(shape, dtype)
    except (MemoryError, ValueError) as exc:
        raise MemoryError(f"{what}: cannot allocate shape {shape} ({nbytes} bytes): {exc}") from None


def _check_target(target: str) -> str:
    kind = target.split()[0] if target else ""
    if kind not in TARGETS:
        raise NimbleError(f"build: target must be one of {TARGETS}, got {target!r}")
    return kind


def build(schedule_or_tensors, args, target: str = "llvm", name: str = "kernel", residues=(),
          bounds_checks: bool = True) -> Kernel:
    """Compile a schedule (or output tensors, scheduled naively) to a ``Kernel`` taking ``args``.

    ``residues``: dicts {dim var: factor}; each adds a variant compiled for shapes where every
    such dim is a multiple of its factor (no tail loops), picked at call time.
    ``bounds_checks``: indices read from data (``D[I[i], j]``) are checked against the tensor they
    index (OutOfRangeError) unless this is False; indices the simplifier proves in range cost nothing.
    """
    _check_target(target)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise NimbleError(f"build: name must be an identifier, got {name!r}")
    if isinstance(args, Tensor):
        args = [args]
    funcs = [lower(schedule_or_tensors, list(args), name, bounds_checks=bounds_checks)]
    for k, assume in enumerate(residues):
        funcs.append(lower(schedule_or_tensors, list(args), f"{name}_r{k}", assume_multiple=assume,
                           bounds_checks=bounds_checks))
    compiled = compile_funcs(funcs)
    variants = [(tuple(assume.items()), cf) for assume, cf in zip(residues, compiled[1:])]
    return Kernel(compiled[0], variants, list(args), target)




def build_func(func: PrimFunc, outputs, target: str = "llvm") -> Kernel:
    """Compile a hand-written loop-IR function to a ``Kernel``; ``outputs``: the indices of the parameters it
    writes (a caller passing the inputs only gets them allocated)."""
    _check_target(target)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", func.name):
        raise NimbleError(f"build_func: the function name must be an identifier, got {func.name!r}")
    outputs = tuple(outputs)
    if not outputs or any(not 0 <= i < len(func.params) for i in outputs):
        raise NimbleError(f"build_func: outputs must index the {len(func.params)} parameters, got {outputs}")
    return Kernel(compile_funcs([func])[0], [], list(func.params), target, outputs=outputs)
