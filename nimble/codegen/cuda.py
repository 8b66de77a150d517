"""Loop IR -> CUDA C: one ``extern "C" __global__`` kernel per PrimFunc.

Buffers become pointer arguments (``const`` where the kernel never stores to them), then the
symbolic dims as ``long long`` arguments, in the PrimFunc's order. A loop bound to a thread tag
(``Stage.bind``) is not a loop: its variable is the block or thread index, and the grid and
block sizes are the extents of those loops (the grid may use the symbolic dims; the block must
be constant). A bound loop gets a guard only where its extent is smaller than the launch size
of its tag (two stages binding the same tag to different extents); the guards of a split tail
come from lowering, and serial loops are partitioned there as on the CPU.

Allocations: "local" buffers are per-thread arrays, "shared" ones are ``__shared__`` arrays
declared at the top of the kernel; filling a shared buffer is fenced by ``__syncthreads()``
before (earlier readers are done) and after (the writes are visible). A barrier must be reached
by every thread, so one under a thread-dependent guard or loop bound is a ``CodegenError``.
Heap intermediates and value checks (Assert) are not supported on this target yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..debug import debug_level, debug_logger
from ..te.expr import (
    BIT_FUNCS, EQ, FLOAT_FUNCS, LE, LT, NE, Add, And, Call, Cast, Div, Expr, FloatImm, FloorDiv, FloorMod, IntImm,
    Max, Min, Mul, Not, Or, Select, Sub, Var)
from ..te.schedule import THREAD_TAGS
from ..te.simplify import simplify
from ..te.visit import free_vars, substitute
from ..tir.nodes import Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Prefetch, Seq, Store, While
from .llvm import CodegenError

log = debug_logger("nimble.codegen.cuda")

C_TYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "bool": "bool"}
_BINARY = {Add: "+", Sub: "-", Mul: "*", Div: "/", LT: "<", LE: "<=", EQ: "==", NE: "!=", And: "&&", Or: "||"}
_MATH64 = {"exp": "exp", "log": "log", "sqrt": "sqrt", "tanh": "tanh", "erf": "erf", "pow": "pow", "fmod": "fmod",
           "abs": "fabs", "sigmoid": "nb_sigmoid", "round": "rint", **{f: f for f in FLOAT_FUNCS if f != "round"}}
_MATH32 = {k: v if v == "nb_sigmoid" else v + "f" for k, v in _MATH64.items()}

# device helpers shared by every kernel of a translation unit: floor division and mod as in the loop IR,
# min/max that keep a NaN like the CPU code (an unordered compare), the logistic function.
PRELUDE = """\
static __device__ __forceinline__ long long nb_floordiv(long long a, long long b) {
  long long q = a / b; return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q; }
static __device__ __forceinline__ long long nb_floormod(long long a, long long b) {
  long long r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
static __device__ __forceinline__ float nb_floormod(float a, float b) {
  float r = fmodf(a, b); if (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) r += b; return r == 0.0f ? copysignf(0.0f, b) : r; }
static __device__ __forceinline__ double nb_floormod(double a, double b) {
  double r = fmod(a, b); if (r != 0.0 && ((r < 0.0) != (b < 0.0))) r += b; return r == 0.0 ? copysign(0.0, b) : r; }
template <typename T> static __device__ __forceinline__ T nb_min(T a, T b) { return !(a >= b) ? a : b; }
template <typename T> static __device__ __forceinline__ T nb_max(T a, T b) { return !(a <= b) ? a : b; }
static __device__ __forceinline__ float nb_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
static __device__ __forceinline__ double nb_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
"""


@dataclass(frozen=True)
class CudaKernel:
    """The CUDA C of one PrimFunc and how to launch it."""

    name: str
    source: str  # the kernel's definition (without the PRELUDE; see ``translation_unit``)
    params: tuple  # Buffers, in argument order
    shape_vars: tuple  # Vars passed after the buffers, as long long
    grid: tuple  # 3 Exprs over the shape vars
    block: tuple  # 3 ints
    shared_bytes: int

    def launch_dims(self, dims: dict) -> tuple:
        """(grid, block) for concrete symbolic dims ``dims`` (Var -> int)."""
        env = {v: IntImm(int(dims[v])) for v in self.shape_vars}
        grid = []
        for e in self.grid:
            g = simplify(substitute(e, env))
            if not isinstance(g, IntImm):
                raise CodegenError(f"{self.name}: grid size {e} does not evaluate to an int with {dims}")
            grid.append(max(int(g.value), 0))
        return tuple(grid), self.block


def translation_unit(kernels) -> str:
    """One .cu text holding the helpers once and every kernel in ``kernels``."""
    return PRELUDE + "\n" + "\n".join(k.source for k in kernels)


def c_name(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    return out if out and not out[0].isdigit() else "v" + out


def _dtype(dtype: str) -> str:
    try:
        return C_TYPES[dtype]
    except KeyError:
        raise CodegenError(f"cuda: unsupported dtype {dtype!r}; supported: {sorted(C_TYPES)}") from None


def _const_int(e: Expr, what: str) -> int:
    e = simplify(e)
    if not isinstance(e, IntImm):
        raise CodegenError(f"cuda: {what} must be a constant, got {e}")
    return int(e.value)


def _walk_stmts(s):
    yield s
    if isinstance(s, Seq):
        for x in s.stmts:
            yield from _walk_stmts(x)
    elif isinstance(s, IfThenElse):
        yield from _walk_stmts(s.then_case)
        if s.else_case is not None:
            yield from _walk_stmts(s.else_case)
    elif isinstance(s, (For, LetStmt, Allocate, Assert, While)):
        yield from _walk_stmts(s.body)


def _launch(body) -> tuple:
    """Launch size per thread tag: the largest extent bound to it (one bound loop per tag: its extent)."""
    extents: dict = {}
    for s in _walk_stmts(body):
        if isinstance(s, For) and s.kind in THREAD_TAGS:
            extents.setdefault(s.kind, [])
            if s.extent not in extents[s.kind]:
                extents[s.kind].append(s.extent)
    size = {}
    for tag, exts in extents.items():
        out = exts[0]
        for e in exts[1:]:
            out = simplify(Max(out, e))
        size[tag] = out
    return size


class _Emitter:
    def __init__(self, func: PrimFunc):
        self.func = func
        self.lines: list = []
        self.shared: list = []  # declarations hoisted to the kernel top
        self.launch = _launch(func.body)
        self.thread_vars: set = set()  # loop vars bound to threadIdx.*
        self.divergent = 0  # depth of thread-dependent guards / loops around the current statement
        self.last_barrier = False
        self.names: dict = {}  # Var -> its C name, unique in the kernel (te names may repeat)
        for b in func.params:
            self.names[b] = c_name(b.name)
        for v in func.shape_vars:
            self.var_name(v)

    def var_name(self, v) -> str:
        """The C name of a Var or Buffer."""
        if v not in self.names:
            base = c_name(v.name)
            taken = set(self.names.values())
            name, k = base, 1
            while name in taken:
                name, k = f"{base}_{k}", k + 1
            self.names[v] = name
        return self.names[v]

    # ------------------------------------------------------------------------ statements
    def line(self, text: str, depth: int) -> None:
        self.lines.append("  " * depth + text)
        self.last_barrier = text == "__syncthreads();"

    def barrier(self, depth: int) -> None:
        if self.divergent:
            raise CodegenError(f"cuda: {self.func.name}: __syncthreads() needed under a guard or loop bound "
                               "that depends on threadIdx; not every thread would reach it")
        if not self.last_barrier:
            self.line("__syncthreads();", depth)

    def _thread_dependent(self, *exprs) -> bool:
        return any(free_vars(e) & self.thread_vars for e in exprs)

    def stmt(self, s, d: int) -> None:
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x, d)
        elif isinstance(s, Store):
            self.line(f"{self.var_name(s.buffer)}[{self.expr(s.index)}] = {self.expr(s.value)};", d)
        elif isinstance(s, For):
            self.loop(s, d)
        elif isinstance(s, Prefetch):  # a CPU cache hint: GPU kernels stage their tiles in shared memory instead
            self.line(f"// prefetch {self.var_name(s.buffer)}[{self.expr(s.index)}]", d)
        elif isinstance(s, IfThenElse):
            dep = self._thread_dependent(s.cond)
            self.divergent += dep
            self.line(f"if ({self.expr(s.cond)}) {{", d)
            self.stmt(s.then_case, d + 1)
            if s.else_case is not None:
                self.line("} else {", d)
                self.stmt(s.else_case, d + 1)
            self.line("}", d)
            self.divergent -= dep
        elif isinstance(s, While):
            self.line(f"while ({self.expr(s.cond)}) {{", d)
            self.stmt(s.body, d + 1)
            self.line("}", d)
        elif isinstance(s, LetStmt):
            self.line(f"const {_dtype(s.var.dtype)} {self.var_name(s.var)} = {self.expr(s.value)};", d)
            self.stmt(s.body, d)
        elif isinstance(s, Allocate):
            self.allocate(s, d)
        elif isinstance(s, Assert):
            raise CodegenError(f"cuda: {self.func.name}: value checks (Assert) are not supported on this target "
                               "yet; lower with bounds_checks=False and ops without checks")
        else:
            raise CodegenError(f"cuda: unknown statement {type(s).__name__}")

    def loop(self, s: For, d: int) -> None:
        v = self.var_name(s.var)
        if s.kind in THREAD_TAGS:
            if s.reverse is not None:
                raise CodegenError(f"cuda: loop {s.var.name} is bound to {s.kind}; a bound loop has no order to "
                                   "reverse")
            if s.min != IntImm(0):
                raise CodegenError(f"cuda: bound loop {s.var.name} must start at 0, starts at {s.min}")
            if s.kind.startswith("threadIdx"):
                _const_int(s.extent, f"the extent of loop {s.var.name} bound to {s.kind}")
                self.thread_vars.add(s.var)
            self.line(f"{{ const long long {v} = {s.kind};", d)
            guarded = simplify(s.extent - self.launch[s.kind]) != IntImm(0)
            if guarded:
                self.divergent += s.kind.startswith("threadIdx")
                self.line(f"if ({v} < {self.expr(s.extent)}) {{", d)
                self.stmt(s.body, d + 1)
                self.line("}", d)
                self.divergent -= s.kind.startswith("threadIdx")
            else:
                self.stmt(s.body, d + 1)
            self.line("}", d)
            return
        if s.kind == "parallel":
            raise CodegenError(f"cuda: loop {s.var.name} is parallel (a CPU kind); bind it to blockIdx/threadIdx")
        dep = self._thread_dependent(s.min, s.extent)
        self.divergent += dep
        if s.kind in ("unrolled", "vectorized") and isinstance(simplify(s.extent), IntImm):
            self.line("#pragma unroll", d)
        lo, hi = self.expr(s.min), self.expr(simplify(s.min + s.extent))
        if s.reverse is None:
            self.line(f"for (long long {v} = {lo}; {v} < {hi}; ++{v}) {{", d)
        else:
            self.line(f"for (long long {v}_step = {lo}; {v}_step < {hi}; ++{v}_step) {{", d)
            self.line(f"const long long {v} = ({self.expr(s.reverse)}) ? {lo} + {hi} - 1 - {v}_step : {v}_step;", d + 1)
        self.stmt(s.body, d + 1)
        self.line("}", d)
        self.divergent -= dep

    def allocate(self, s: Allocate, d: int) -> None:
        buf, ty = s.buffer, _dtype(s.buffer.dtype)
        n = _const_int(s.extent, f"the size of {buf.scope} buffer {buf.name}")
        name = self.var_name(buf)
        if buf.scope == "shared":
            decl = f"__shared__ {ty} {name}[{n}];"
            if decl not in self.shared:  # a partitioned loop holds the allocation twice
                self.shared.append(decl)
            body = s.body.stmts if isinstance(s.body, Seq) else (s.body,)
            self.barrier(d)  # readers of the previous fill are done
            self.stmt(body[0], d)
            self.barrier(d)  # the fill is visible to the whole block
            for x in body[1:]:
                self.stmt(x, d)
        elif buf.scope == "local":
            self.line(f"{{ {ty} {name}[{n}];", d)
            self.stmt(s.body, d + 1)
            self.line("}", d)
        else:
            raise CodegenError(f"cuda: {self.func.name}: intermediate {buf.name} lives in global memory; "
                               "compute it at a loop (local or shared) or split the kernel")

    # ----------------------------------------------------------------------- expressions
    def expr(self, e: Expr) -> str:
        if isinstance(e, IntImm):
            if e.dtype == "bool":
                return "true" if e.value else "false"
            return str(e.value) if abs(e.value) < 2**31 else f"{e.value}LL"
        if isinstance(e, FloatImm):
            return _float(e.value, e.dtype)
        if isinstance(e, Var):
            if e not in self.names:
                raise CodegenError(f"cuda: variable {e.name} is used before it is defined")
            return self.names[e]
        if isinstance(e, Load):
            return f"{self.var_name(e.buffer)}[{self.expr(e.index)}]"
        if isinstance(e, FloorDiv):
            return f"nb_floordiv({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, FloorMod):
            return f"nb_floormod({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, (Min, Max)):
            fn = "nb_min" if isinstance(e, Min) else "nb_max"
            return f"{fn}<{_dtype(e.dtype)}>({self.expr(e.a)}, {self.expr(e.b)})"
        for cls, sym in _BINARY.items():
            if isinstance(e, cls):
                return f"({self.expr(e.a)} {sym} {self.expr(e.b)})"
        if isinstance(e, Not):
            return f"(!{self.expr(e.a)})"
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.true_value)} : {self.expr(e.false_value)})"
        if isinstance(e, Cast):
            return f"(({_dtype(e.dtype)}){self.expr(e.value)})"
        if isinstance(e, Call):
            if e.func == "abs" and e.dtype in ("int32", "int64"):
                return f"llabs({self.expr(e.args[0])})"
            if e.func in BIT_FUNCS:
                return _bits(e.func, [self.expr(a) for a in e.args], e.dtype)
            table = _MATH32 if e.dtype == "float32" else _MATH64
            return f"{table[e.func]}({', '.join(self.expr(a) for a in e.args)})"
        raise CodegenError(f"cuda: cannot emit expression {type(e).__name__}: {e}")


def _bits(func: str, args: list, dtype: str) -> str:
    """A BIT_FUNCS call in C (int32 / int64); a shift amount outside 0..bits-1 gives numpy's 0 or -1."""
    if func == "bitwise_not":
        return f"(~{args[0]})"
    x, y = args
    if func in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        return f"({x} {dict(bitwise_and='&', bitwise_or='|', bitwise_xor='^')[func]} {y})"
    bits = 8 * {"int32": 4, "int64": 8}.get(dtype, 0)
    if not bits:
        raise CodegenError(f"cuda: {func} of {dtype} is not supported (int32 / int64)")
    off = f"((unsigned long long)({y}) >= {bits}ULL)"
    if func == "shift_left":
        return f"({off} ? ({_dtype(dtype)})0 : ({_dtype(dtype)})((unsigned long long)({x}) << ({y})))"
    return f"({x} >> ({off} ? {bits - 1} : ({y})))"


def _float(value: float, dtype: str) -> str:
    suffix = "f" if dtype == "float32" else ""
    if math.isnan(value):
        return "nanf(\"\")" if suffix else "nan(\"\")"
    if math.isinf(value):
        return f"({'-' if value < 0 else ''}1.0{suffix} / 0.0{suffix})"
    return f"{value!r}{suffix}" if ("e" in repr(value) or "." in repr(value)) else f"{value!r}.0{suffix}"


def _param(buf: Buffer, name: str, stored: set) -> str:
    const = "" if buf in stored else "const "
    return f"{const}{_dtype(buf.dtype)}* __restrict__ {name}"


def codegen_cuda(func: PrimFunc) -> CudaKernel:
    """The CUDA C kernel of ``func`` (lowered with ``bounds_checks=False``) and its launch sizes."""
    if debug_level() >= 1:
        log.debug("lowered %s:\n%s", func.name, func)
    em = _Emitter(func)
    em.stmt(func.body, 1)
    stored = {s.buffer for s in _walk_stmts(func.body) if isinstance(s, Store)}
    args = [_param(b, em.names[b], stored) for b in func.params] + [f"long long {em.names[v]}" for v in func.shape_vars]
    block = tuple(_const_int(em.launch.get(f"threadIdx.{a}", IntImm(1)), f"the block size along {a}") for a in "xyz")
    lets, top = {}, func.body  # a residue variant binds n_q = n // f around the whole body
    while isinstance(top, LetStmt):
        lets[top.var] = substitute(top.value, lets)
        top = top.body
    grid = tuple(simplify(substitute(em.launch.get(f"blockIdx.{a}", IntImm(1)), lets)) for a in "xyz")
    for a, g in zip("xyz", grid):
        missing = free_vars(g) - set(func.shape_vars)
        if missing:
            raise CodegenError(f"cuda: grid size along {a} ({g}) uses {sorted(v.name for v in missing)}, not kernel arguments")
    threads = block[0] * block[1] * block[2]
    if threads > 1024:
        raise CodegenError(f"cuda: {func.name} asks for {threads} threads per block; at most 1024")
    name = c_name(func.name)
    shared = {s.buffer: _const_int(s.extent, "shared size") for s in _walk_stmts(func.body)
              if isinstance(s, Allocate) and s.buffer.scope == "shared"}
    shared_bytes = sum(n * {"float64": 8, "int64": 8}.get(b.dtype, 4) for b, n in shared.items())
    head = f'extern "C" __global__ void __launch_bounds__({threads}) {name}({", ".join(args)}) {{'
    body = ["  " + decl for decl in em.shared] + em.lines
    source = "\n".join([head] + body + ["}", ""])
    if debug_level() >= 2:
        log.debug("CUDA C of %s (grid %s, block %s):\n%s", name, grid, block, source)
    return CudaKernel(name, source, func.params, func.shape_vars, grid, block, shared_bytes)
