"""Loop IR -> LLVM IR (llvmlite).

A kernel is ``i32 name(ptr noalias buf..., i64 shape_var..., i32 num_threads)`` returning 0, or
1 when a heap allocation failed. Vectorized loops of a small constant extent become explicit
LLVM vector code (contiguous loads/stores, broadcasts, gathers); other vectorized loops are left
to LLVM's loop vectorizer. Unrolled loops of constant extent are emitted extent times. Parallel
loops are outlined and run through nimble's parallel-for runtime (``parallel.py``), or serially when
the work is small (see ``NIMBLE_PARALLEL_MIN_WORK`` in ``nimble.settings``) or one thread is asked for.
"""
from __future__ import annotations


import llvmlite.ir as ir

from .. import settings
from ..errors import NimbleError
from ..te.expr import (
    BIT_FUNCS, DOT4, EQ, LE, LT, NE, Add, And, BinaryOp, Call, Cast, Div, Expr, FloatImm, FloorDiv, FloorMod, IntImm, Max,
    Min, Mul, Not, Or, ReductionAdd, Select, Sub, Var, is_float,
)
from ..te.simplify import Linear, from_linear, linear, simplify
from ..te.visit import free_vars
from ..tir.nodes import (
    Allocate, Assert, Buffer, For, IfThenElse, LetStmt, Load, PrimFunc, Prefetch, Seq, Stmt, Store, TileMatmul, While,
)
from .llvm_amx import emit_tile_matmul
from .llvm_dot import emit_dot4
from .llvm_math import _c as _const
from .llvm_math import _like, emit_bits, emit_math, intrinsic
from .llvm_minifloat import MINI_FLOATS, from_f32, to_f32
from .loop_analysis import uses, vector_body_ok, work_estimate
from .parallel import ENTRY as PARALLEL_ENTRY, FLAG_BACKWARDS
from . import workspace

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F16, F32 = ir.HalfType(), ir.FloatType()
PTR = ir.PointerType()
# Narrow dtypes are storage types: in registers int8/uint8/int16/uint16 (and int4/uint4/int2/uint2, a byte each) are
# i32, uint32 is i64, and float16, bfloat16, float8 and float4 are float; loads extend (sext / zext / fpext, or the
# bit conversions of llvm_minifloat), stores truncate / round, and integer arithmetic and casts to a narrow int wrap
# (trunc then extend) so values match numpy's; narrow float arithmetic runs in float32 and rounds only when stored
# or cast. uint64 is i64 in registers with unsigned compares, min / max, division and float casts.
_SMALL_INTS = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}
_TYPES = {"float32": F32, "float64": ir.DoubleType(), "int32": I32, "int64": I64, "uint64": I64, "bool": I1,
          "int8": I32, "uint8": I32, "int16": I32, "uint16": I32, "uint32": I64, "float16": F32,
          **{d: F32 for d in MINI_FLOATS}, **{d: I32 for d in _SMALL_INTS}}
_MEM_TYPES = {"bool": I8, "int8": I8, "uint8": I8, "int16": I16, "uint16": I16, "uint32": I32, "float16": F16,
              "bfloat16": I16, **{d: I8 for d in MINI_FLOATS if d != "bfloat16"}, **{d: I8 for d in _SMALL_INTS}}
_REGISTER_DTYPE = {"int8": "int32", "uint8": "int32", "int16": "int32", "uint16": "int32", "uint32": "int64",
                   "float16": "float32", **{d: "float32" for d in MINI_FLOATS}, **{d: "int32" for d in _SMALL_INTS}}
_UNSIGNED = ("uint8", "uint16", "uint32", "uint4", "uint2")
_SIZES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "uint64": 8, "bool": 1, "int8": 1, "uint8": 1, "int16": 2,
          "uint16": 2, "uint32": 4, "float16": 2, "bfloat16": 2, **{d: 1 for d in MINI_FLOATS if d != "bfloat16"},
          **{d: 1 for d in _SMALL_INTS}}
_FLAGS = ("contract",)
_REDUCE_FLAGS = ("contract", "reassoc")
MAX_VECTOR_LANES = 64
MAX_UNROLL = 256
STACK_LIMIT_BYTES = 64 * 1024
PYARRAY_SUFFIX = ".pyarrays"
NDARRAY_DATA_OFFSET = 16  # PyArrayObject: PyObject_HEAD (refcount, type), char *data, int nd, npy_intp *dimensions
NDARRAY_NDIM_OFFSET = 24
NDARRAY_DIMS_OFFSET = 32
SHAPE_STATUS = 1 << 20  # + param index: that array's rank or dims disagree with the shape variables



def _power_of_two(y):
    """s where ``y`` is a scalar integer constant 2**s (s >= 1), else None."""
    if not isinstance(y, ir.Constant) or not isinstance(y.type, ir.IntType) or not isinstance(y.constant, int):
        return None
    v = y.constant
    return v.bit_length() - 1 if v > 1 and v & (v - 1) == 0 else None

class CodegenError(NimbleError, ValueError):
    """The loop IR cannot be turned into LLVM IR."""


def llvm_type(dtype: str):
    return _TYPES[dtype]


def mem_type(dtype: str):
    """The type of one element in memory (a bool is a byte, like numpy's; narrow dtypes are their own width)."""
    return _MEM_TYPES.get(dtype) or _TYPES[dtype]


def _alloca(b: ir.IRBuilder, ty, size=None, name=""):
    """An alloca whose value is an opaque ``ptr`` (llvmlite would print a typed pointer)."""
    a = b.alloca(ty, size=size, name=name)
    a.type = PTR
    return a


def _as_ptr(fn: ir.Function):
    """A function used as a value (a callback), typed as an opaque ``ptr``."""
    ref = ir.GlobalValue.__new__(type(fn))
    ref.__dict__.update(fn.__dict__)
    ref.type = PTR
    return ref


def _gep(b: ir.IRBuilder, ptr, indices, etype):
    if ptr.type.is_opaque:
        return b.gep(ptr, indices, source_etype=etype)
    return b.gep(ptr, indices)


class _Scope:
    """Per-LLVM-function emission state."""

    def __init__(self, fn: ir.Function, builder: ir.IRBuilder, status_ptr, nthreads, in_parallel: bool):
        self.fn = fn
        self.b = builder
        self.entry = ir.IRBuilder(fn.entry_basic_block)  # the allocas block, terminated by finish()
        self.status_ptr = status_ptr
        self.nthreads = nthreads
        self.in_parallel = in_parallel

    def finish(self, first_block) -> None:
        self.entry.branch(first_block)


class LLVMCodegen:
    """Emits one PrimFunc into an LLVM module; ``module`` holds the result."""

    def __init__(self, func: PrimFunc, triple: str = "", data_layout: str = "", use_openmp: bool = True,
                 module: ir.Module | None = None):
        self.func = func
        self.module = module if module is not None else ir.Module(name=func.name)
        if triple and module is None:
            self.module.triple = triple
        if data_layout and module is None:
            self.module.data_layout = data_layout
        self.use_openmp = use_openmp
        self.env: dict = {}
        self.bufs: dict = {}
        self.vec = None  # (Var, lanes) while emitting an explicit vector loop
        self.n_outlined = 0

    # ---------------------------------------------------------------------------- entry
    def emit(self) -> ir.Module:
        f = self.func
        arg_types = [PTR] * len(f.params) + [I64] * len(f.shape_vars) + [I32]
        fn = ir.Function(self.module, ir.FunctionType(I32, arg_types), name=f.name)
        fn.attributes.add("nounwind")
        for i, buf in enumerate(f.params):
            fn.args[i].add_attribute("noalias")
            fn.args[i].name = _ident(buf.name)
            self.bufs[buf] = fn.args[i]
        for j, v in enumerate(f.shape_vars):
            a = fn.args[len(f.params) + j]
            a.name = _ident(v.name)
            self.env[v] = a
        nthreads = fn.args[-1]
        nthreads.name = "num_threads"
        fn.append_basic_block("allocas")
        block = fn.append_basic_block("entry")
        b = ir.IRBuilder(block)
        self.s = _Scope(fn, b, None, nthreads, False)
        self.s.status_ptr = _alloca(self.s.entry, I32, name="status")
        b.store(ir.Constant(I32, 0), self.s.status_ptr)
        self.stmt(f.body)
        b.ret(b.load(self.s.status_ptr, typ=I32))
        self.s.finish(block)
        self._emit_pyarray_entry(fn)
        return self.module

    def _emit_pyarray_entry(self, main: ir.Function) -> None:
        """``name.pyarrays``: the same kernel taking numpy array objects (PyArrayObject*).

        It reads each array's data pointer, rank and dims from NumPy's stable PyArrayObject
        layout (so a caller passes the arrays themselves instead of paying for
        ``ndarray.ctypes.data``) and checks rank and every dim against the shape variables
        before the kernel touches memory: a mismatch returns ``SHAPE_STATUS + param index``.
        """
        f = self.func
        n = len(f.params)
        fn = ir.Function(self.module, main.function_type, name=f.name + PYARRAY_SUFFIX)
        fn.append_basic_block("allocas")
        block = fn.append_basic_block("entry")
        b = ir.IRBuilder(block)
        saved = (self.s, dict(self.env))
        self.s = _Scope(fn, b, None, fn.args[-1], False)
        for j, v in enumerate(f.shape_vars):
            self.env[v] = fn.args[n + j]
        i8 = ir.IntType(8)
        ptrs = []
        for k, buf in enumerate(f.params):
            obj = fn.args[k]
            ptrs.append(b.load(b.gep(obj, [ir.Constant(I64, NDARRAY_DATA_OFFSET)], source_etype=i8), typ=PTR))
            nd = b.load(b.gep(obj, [ir.Constant(I64, NDARRAY_NDIM_OFFSET)], source_etype=i8), typ=I32)
            ok = b.icmp_signed("==", nd, ir.Constant(I32, len(buf.shape)))
            dims = b.load(b.gep(obj, [ir.Constant(I64, NDARRAY_DIMS_OFFSET)], source_etype=i8), typ=PTR)
            for d, extent in enumerate(buf.shape):
                # read the dim only when the rank matched (select keeps the load in bounds)
                idx = b.select(ok, ir.Constant(I64, d), ir.Constant(I64, 0))
                actual = b.load(b.gep(dims, [idx], source_etype=I64), typ=I64)
                ok = b.and_(ok, b.icmp_signed("==", actual, self.expr(extent)))
            with b.if_then(b.not_(ok), likely=False):
                b.ret(ir.Constant(I32, SHAPE_STATUS + k))
        b.ret(b.call(main, ptrs + list(fn.args[n:])))
        self.s.finish(block)
        self.s, self.env = saved

    @property
    def b(self) -> ir.IRBuilder:
        return self.s.b

    # ---------------------------------------------------------------------- statements
    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, Store):
            self._store(s)
        elif isinstance(s, Prefetch):
            self._prefetch(s)
        elif isinstance(s, For):
            self._for(s)
        elif isinstance(s, IfThenElse):
            self._if(s)
        elif isinstance(s, While):
            self._while(s)
        elif isinstance(s, LetStmt):
            self.env[s.var] = self.expr(s.value)
            self.stmt(s.body)
        elif isinstance(s, Assert):
            with self.b.if_else(self.expr(s.cond), likely=True) as (ok, failed):
                with ok:
                    self.stmt(s.body)
                with failed:  # the first failure is the one reported (later checks may read what it skipped)
                    old = self.b.load(self.s.status_ptr, typ=I32)
                    first = self.b.icmp_signed("==", old, ir.Constant(I32, 0))
                    self.b.store(self.b.select(first, ir.Constant(I32, s.code), old), self.s.status_ptr)
        elif isinstance(s, Allocate):
            self._allocate(s)
        elif isinstance(s, TileMatmul):
            if self.vec is not None:
                raise CodegenError("tile_matmul cannot be inside an explicit vector loop")
            emit_tile_matmul(self.b, self.module, s, self._elem_ptr(s.a, self.expr(s.a_index)),
                             self._elem_ptr(s.b, self.expr(s.b_index)), self._elem_ptr(s.out, self.expr(s.out_index)),
                             self.expr(s.rows),
                             None if s.init is None else self._elem_ptr(s.init, self.expr(s.init_index)))
        else:
            raise CodegenError(f"unknown statement {type(s).__name__}")

    def _store(self, s: Store) -> None:
        if self.vec is not None:
            self._vstore(s)
            return
        ptr = self._elem_ptr(s.buffer, self.expr(s.index))
        val = self._to_mem(self.expr(s.value), s.buffer.dtype)
        self.b.store(val, ptr, align=_SIZES[s.buffer.dtype])

    def _prefetch(self, s: Prefetch) -> None:
        """``llvm.prefetch`` (read) of each line into L1 (locality 3) or L2 (locality 2); the address may lie
        past the buffer."""
        if self.vec is not None:
            raise CodegenError(f"prefetch of {s.buffer.name}: a prefetch cannot be inside an explicit vector loop")
        fn = self.module.globals.get("llvm.prefetch.p0")
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32]), "llvm.prefetch.p0")
        i8 = ir.IntType(8)
        start = self.b.mul(self.expr(s.index), ir.Constant(I64, _SIZES[s.buffer.dtype]))
        for line in range(s.lines):
            offset = self.b.add(start, ir.Constant(I64, 64 * line)) if line else start
            ptr = _gep(self.b, self.bufs[s.buffer], [offset], i8)  # not inbounds: it may pass the end
            self.b.call(fn, [ptr, ir.Constant(I32, 0), ir.Constant(I32, 4 - s.level), ir.Constant(I32, 1)])

    def _elem_ptr(self, buf: Buffer, index):
        return _gep(self.b, self.bufs[buf], [index], mem_type(buf.dtype))

    def _to_mem(self, val, dtype: str):
        """A value as stored in memory: bools are bytes (LLVM would bit-pack vectors of i1); narrow dtypes
        truncate from their register type."""
        if dtype not in _MEM_TYPES:
            return val
        ty = _like(val.type, _MEM_TYPES[dtype])
        if dtype == "bool":
            return self.b.zext(val, ty)
        if dtype in MINI_FLOATS:
            return from_f32(self.b, val, dtype)
        if dtype in _SMALL_INTS:  # the low bits, the high bits zero (ml_dtypes' layout)
            return self.b.zext(self.b.trunc(val, _like(val.type, ir.IntType(_SMALL_INTS[dtype][0]))), ty)
        return self.b.fptrunc(val, ty) if dtype == "float16" else self.b.trunc(val, ty)

    def _from_mem(self, val, dtype: str):
        if dtype not in _MEM_TYPES:
            return val
        if dtype == "bool":
            return self.b.icmp_unsigned("!=", val, _const(val.type, 0))
        ty = _like(val.type, _TYPES[dtype])
        if dtype == "float16":
            return self.b.fpext(val, ty)
        if dtype in MINI_FLOATS:
            return to_f32(self.b, val, dtype)
        if dtype in _SMALL_INTS:
            bits, signed = _SMALL_INTS[dtype]
            low = self.b.trunc(val, _like(val.type, ir.IntType(bits)))
            return self.b.sext(low, ty) if signed else self.b.zext(low, ty)
        return self.b.zext(val, ty) if dtype in _UNSIGNED else self.b.sext(val, ty)

    def _wrap(self, val, dtype: str):
        """A narrow int's register value reduced to its range (numpy's wrap-around), a float16's rounded."""
        if dtype not in _REGISTER_DTYPE:
            return val
        return self._from_mem(self._to_mem(val, dtype), dtype)

    def _if(self, s: IfThenElse) -> None:
        cond = self.expr(s.cond)
        if s.else_case is None:
            with self.b.if_then(cond, likely=True):
                self.stmt(s.then_case)
        else:
            with self.b.if_else(cond) as (then, otherwise):
                with then:
                    self.stmt(s.then_case)
                with otherwise:
                    self.stmt(s.else_case)

    def _while(self, s: While) -> None:
        if self.vec is not None:
            raise CodegenError("a while loop cannot be inside an explicit vector loop")
        b = self.b
        head, body, done = (b.append_basic_block(f"while.{part}") for part in ("head", "body", "exit"))
        b.branch(head)
        b.position_at_end(head)
        b.cbranch(self.expr(s.cond), body, done)
        b.position_at_end(body)
        self.stmt(s.body)
        b.branch(head)
        b.position_at_end(done)

    def _allocate(self, s: Allocate) -> None:
        ty = mem_type(s.buffer.dtype)
        ext = simplify(s.extent)
        if isinstance(ext, IntImm) and ext.value * _SIZES[s.buffer.dtype] <= STACK_LIMIT_BYTES:
            ptr = _alloca(self.s.entry, ty, size=max(ext.value, 1), name=_ident(s.buffer.name))
            ptr.align = 64
            self.bufs[s.buffer] = ptr
            self.stmt(s.body)
            return
        nbytes = self.b.mul(self.expr(ext), ir.Constant(I64, _SIZES[s.buffer.dtype]))
        ptr = self.b.call(self._extern(workspace.ALLOC_ENTRY, PTR, [I64]), [nbytes])  # workspace.py: cached
        failed = self.b.icmp_unsigned("==", ptr, ir.Constant(PTR, None))
        with self.b.if_else(failed, likely=False) as (then, otherwise):
            with then:
                self.b.store(ir.Constant(I32, 1), self.s.status_ptr)
            with otherwise:
                self.bufs[s.buffer] = ptr
                self.stmt(s.body)
                self.b.call(self._extern(workspace.FREE_ENTRY, ir.VoidType(), [PTR]), [ptr])

    def _extern(self, name: str, ret, args):
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ret, args), name)
        return fn

    # --------------------------------------------------------------------------- loops
    def _for(self, s: For) -> None:
        ext = simplify(s.extent)
        if s.reverse is not None and s.kind in ("vectorized", "unrolled"):
            raise CodegenError(f"loop {s.var.name} is {s.kind}; only a serial or parallel loop runs backwards")
        if s.kind == "vectorized" and self.vec is None and self._can_vectorize(s, ext):
            self._vector_loop(s, ext.value)
        elif s.kind == "unrolled" and isinstance(ext, IntImm) and ext.value <= MAX_UNROLL and self.vec is None:
            lo = simplify(s.min)
            for k in range(ext.value):
                self.env[s.var] = self.expr(simplify(lo + k))
                self.stmt(s.body)
        elif s.kind == "parallel" and self.use_openmp and not self.s.in_parallel and self.vec is None:
            self._parallel_loop(s)
        else:
            reverse = None if s.reverse is None else self.expr(s.reverse)
            self._serial_loop(s.var, self.expr(s.min), self.expr(s.extent), lambda: self.stmt(s.body), reverse)

    def _serial_loop(self, var: Var, start, extent, body, reverse=None) -> None:
        """``var`` over [start, start + extent); backwards where the i1 ``reverse`` is set."""
        b = self.b
        end = b.add(start, extent)
        pre = b.block
        header = b.append_basic_block(f"{_ident(var.name)}.head")
        body_bb = b.append_basic_block(f"{_ident(var.name)}.body")
        exit_bb = b.append_basic_block(f"{_ident(var.name)}.exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64, name=_ident(var.name))
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, end), body_bb, exit_bb)
        b.position_at_end(body_bb)
        if reverse is None:
            self.env[var] = i
        else:  # start + end - 1 - i
            self.env[var] = b.select(reverse, b.sub(b.add(start, b.sub(end, i)), ir.Constant(I64, 1)), i)
        body()
        nxt = b.add(i, ir.Constant(I64, 1), flags=("nsw",))
        i.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(exit_bb)

    # ------------------------------------------------------------------------ parallel
    def _parallel_loop(self, s: For) -> None:
        used_vars, used_bufs = uses(s.body)
        used_vars = [v for v in used_vars if v is not s.var]
        for v in used_vars:
            if v not in self.env:
                raise CodegenError(f"variable {v.name} is used before it is defined")
        start, extent = self.expr(s.min), self.expr(s.extent)
        fields = [start, extent, self.s.status_ptr] + [self.env[v] for v in used_vars] + [self.bufs[bf] for bf in used_bufs]
        backwards = None if s.reverse is None else self.expr(s.reverse)
        if backwards is not None:  # last: each chunk runs backwards (and each thread takes its chunks last first)
            fields.append(backwards)
        sty = ir.LiteralStructType([f.type for f in fields])
        data = _alloca(self.s.entry, sty, name="par.data")
        for k, f in enumerate(fields):
            self.b.store(f, _gep(self.b, data, [ir.Constant(I32, 0), ir.Constant(I32, k)], sty))
        self.n_outlined += 1
        base = f"{self.func.name}.par{self.n_outlined}"
        range_fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64]), base)
        range_fn.linkage = "internal"
        self._emit_range_fn(range_fn, s, sty, used_vars, used_bufs)
        b = self.b
        work = b.mul(extent, self.expr(work_estimate(s.body, set(self.env))))
        big = b.and_(b.icmp_signed(">=", work, ir.Constant(I64, settings.current().parallel_min_work)),
                     b.and_(b.icmp_signed(">", self.s.nthreads, ir.Constant(I32, 1)),
                            b.icmp_signed(">", extent, ir.Constant(I64, 1))))
        flags = (ir.Constant(I32, 0) if backwards is None
                 else b.select(backwards, ir.Constant(I32, FLAG_BACKWARDS), ir.Constant(I32, 0)))
        with b.if_else(big) as (then, otherwise):
            with then:
                pfor = self._extern(PARALLEL_ENTRY, ir.VoidType(), [PTR, PTR, I64, I32, I32])
                b.call(pfor, [_as_ptr(range_fn), data, extent, self.s.nthreads, flags])
            with otherwise:
                b.call(range_fn, [data, ir.Constant(I64, 0), extent])

    def _emit_range_fn(self, fn, s: For, sty, used_vars, used_bufs) -> None:
        saved = (self.s, dict(self.env), dict(self.bufs))
        fn.append_basic_block("allocas")
        block = fn.append_basic_block("entry")
        b = ir.IRBuilder(block)
        data, lo, hi = fn.args
        fields = [b.load(_gep(b, data, [ir.Constant(I32, 0), ir.Constant(I32, k)], sty), typ=t)
                  for k, t in enumerate(sty.elements)]
        self.s = _Scope(fn, b, fields[2], ir.Constant(I32, 1), True)
        for v, val in zip(used_vars, fields[3:]):
            self.env[v] = val
        for bf, val in zip(used_bufs, fields[3 + len(used_vars):]):
            self.bufs[bf] = val
        start = b.add(fields[0], lo)
        reverse = fields[-1] if s.reverse is not None else None
        self._serial_loop(s.var, start, b.sub(hi, lo), lambda: self.stmt(s.body), reverse)
        self.b.ret_void()
        self.s.finish(block)
        self.s, self.env, self.bufs = saved

    # ------------------------------------------------------------------- vector loops
    def _can_vectorize(self, s: For, ext: Expr) -> bool:
        if not isinstance(ext, IntImm) or not 2 <= ext.value <= MAX_VECTOR_LANES:
            return False
        return vector_body_ok(s.body, s.var)

    def _vector_loop(self, s: For, lanes: int) -> None:
        self.vec = (s.var, lanes, simplify(s.min))
        try:
            self.stmt(s.body)
        finally:
            self.vec = None

    def _depends(self, e: Expr) -> bool:
        return self.vec[0] in free_vars(e)

    def _broadcast(self, x, lanes: int):
        if isinstance(x.type, ir.VectorType):
            return x
        vt = ir.VectorType(x.type, lanes)
        one = self.b.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(I32, 0))
        return self.b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))

    def _lane_affine(self, index: Expr):
        """(base, stride) with index == base + stride * lane, or None."""
        v, lanes, vmin = self.vec
        lin = linear(index)
        stride = lin.terms.get(v, 0)
        rest = dict(lin.terms)
        rest.pop(v, None)
        for atom in rest:
            if v in free_vars(atom) or self._depends(atom):
                return None
        base = simplify(from_linear(Linear(lin.const, rest)) + vmin * stride)
        return base, stride

    def _vload(self, e: Load):
        lanes = self.vec[1]
        ty = mem_type(e.buffer.dtype)
        aff = self._lane_affine(e.index)
        if aff is not None and aff[1] == 1:
            ptr = self._elem_ptr(e.buffer, self.expr(aff[0]))
            loaded = self.b.load(ptr, typ=ir.VectorType(ty, lanes), align=_SIZES[e.buffer.dtype])
            return self._from_mem(loaded, e.buffer.dtype)
        idx = self._vexpr(e.index)
        out = ir.Constant(ir.VectorType(ty, lanes), ir.Undefined)
        for lane in range(lanes):
            li = ir.Constant(I32, lane)
            p = self._elem_ptr(e.buffer, self.b.extract_element(idx, li))
            out = self.b.insert_element(out, self.b.load(p, typ=ty, align=_SIZES[e.buffer.dtype]), li)
        return self._from_mem(out, e.buffer.dtype)

    def _vstore(self, s: Store) -> None:
        lanes = self.vec[1]
        val = self._to_mem(self._broadcast(self._vexpr(s.value), lanes), s.buffer.dtype)
        aff = self._lane_affine(s.index)
        if aff is not None and aff[1] == 1:
            ptr = self._elem_ptr(s.buffer, self.expr(aff[0]))
            self.b.store(val, ptr, align=_SIZES[s.buffer.dtype])
            return
        idx = self._vexpr(s.index)
        for lane in range(lanes):
            li = ir.Constant(I32, lane)
            p = self._elem_ptr(s.buffer, self.b.extract_element(idx, li))
            self.b.store(self.b.extract_element(val, li), p, align=_SIZES[s.buffer.dtype])

    def _vexpr(self, e: Expr):
        """``e`` over all lanes: a vector if it varies with the lane, else a scalar."""
        if not self._depends(e):
            return self.expr(e)
        v, lanes, vmin = self.vec
        if e is v:
            ramp = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
            return self.b.add(self._broadcast(self.expr(vmin), lanes), ramp)
        if isinstance(e, Load):
            return self._vload(e)
        return self._emit_node(e, self._vexpr, vector=True)

    # --------------------------------------------------------------------- expressions
    def expr(self, e: Expr):
        """``e`` as a scalar LLVM value."""
        if isinstance(e, IntImm):
            return ir.Constant(llvm_type(e.dtype), e.value)
        if isinstance(e, FloatImm):
            return ir.Constant(llvm_type(e.dtype), e.value)
        if isinstance(e, Var):
            try:
                val = self.env[e]
            except KeyError:
                raise CodegenError(f"variable {e.name} is used outside its scope") from None
            return val
        if isinstance(e, Load):
            ptr = self._elem_ptr(e.buffer, self.expr(e.index))
            loaded = self.b.load(ptr, typ=mem_type(e.buffer.dtype), align=_SIZES[e.buffer.dtype])
            return self._from_mem(loaded, e.buffer.dtype)
        return self._emit_node(e, self.expr, vector=False)

    def _emit_node(self, e: Expr, sub, vector: bool):
        b = self.b
        lanes = self.vec[1] if vector else 0

        def both(x, y):
            xv, yv = sub(x), sub(y)
            if vector:
                xv, yv = self._broadcast(xv, lanes), self._broadcast(yv, lanes)
            return xv, yv

        if isinstance(e, ReductionAdd) and isinstance(e.b, Call) and e.b.func == DOT4:
            return emit_dot4(self, e.a, e.b, sub, vector)
        if isinstance(e, BinaryOp) and e.dtype in _REGISTER_DTYPE and not is_float(e.dtype) and isinstance(
                e, (Add, Sub, Mul, FloorDiv, FloorMod)):
            return self._wrap(self._emit_binary(e, both(e.a, e.b)), e.dtype)
        if isinstance(e, BinaryOp):
            return self._emit_binary(e, both(e.a, e.b))
        return self._emit_other(e, sub, vector, lanes)

    def _emit_binary(self, e, operands):
        b = self.b
        x, y = operands
        fl = is_float(e.a.dtype)
        if e.a.dtype == "uint64" and isinstance(e, (Min, Max, LT, LE, EQ, NE, FloorDiv, FloorMod)):
            return self._emit_unsigned(e, x, y)
        if isinstance(e, ReductionAdd):
            return b.fadd(x, y, flags=_REDUCE_FLAGS) if fl else b.add(x, y)
        if isinstance(e, Add):
            return b.fadd(x, y, flags=_FLAGS) if fl else b.add(x, y)
        if isinstance(e, Sub):
            return b.fsub(x, y, flags=_FLAGS) if fl else b.sub(x, y)
        if isinstance(e, Mul):
            return b.fmul(x, y, flags=_FLAGS) if fl else b.mul(x, y)
        if isinstance(e, Div):
            return b.fdiv(x, y)
        if isinstance(e, FloorDiv):
            return self._floordiv(x, y, fl)
        if isinstance(e, FloorMod):
            return self._floormod(x, y, fl)
        if isinstance(e, Min):
            return b.select(b.fcmp_unordered("<", x, y) if fl else b.icmp_signed("<", x, y), x, y)
        if isinstance(e, Max):
            return b.select(b.fcmp_unordered(">", x, y) if fl else b.icmp_signed(">", x, y), x, y)
        if isinstance(e, (LT, LE, EQ, NE)):
            op = {LT: "<", LE: "<=", EQ: "==", NE: "!="}[type(e)]
            if fl and isinstance(e, NE):
                return b.fcmp_unordered(op, x, y)  # NaN != anything, as in numpy
            return b.fcmp_ordered(op, x, y) if fl else b.icmp_signed(op, x, y)
        if isinstance(e, And):
            return b.and_(x, y)
        if isinstance(e, Or):
            return b.or_(x, y)
        raise CodegenError(f"cannot emit {type(e).__name__}: {e}")

    def _emit_other(self, e, sub, vector: bool, lanes: int):
        b = self.b
        if isinstance(e, Not):
            x = sub(e.a)
            return b.xor(x, _const(x.type, 1))
        if isinstance(e, Select):
            c, t, f = sub(e.cond), sub(e.true_value), sub(e.false_value)
            if vector:
                c, t, f = (self._broadcast(z, lanes) for z in (c, t, f))
            return b.select(c, t, f)
        if isinstance(e, Cast):
            return self._cast(sub(e.value), e.value.dtype, e.dtype, lanes)
        if isinstance(e, Call) and e.func == DOT4:
            return emit_dot4(self, None, e, sub, vector)
        if isinstance(e, Call):
            args = [sub(a) for a in e.args]
            if vector:
                args = [self._broadcast(a, lanes) for a in args]
            if e.func in BIT_FUNCS:
                bits, signed = _SMALL_INTS.get(e.dtype) or (8 * _SIZES[e.dtype], not e.dtype.startswith("u"))
                return self._wrap(emit_bits(b, e.func, args, bits, signed), e.dtype)
            return emit_math(b, e.func, args)
        raise CodegenError(f"cannot emit {type(e).__name__}: {e}")

    def _emit_unsigned(self, e, x, y):
        b = self.b
        if isinstance(e, FloorDiv):
            return b.udiv(x, y)
        if isinstance(e, FloorMod):
            return b.urem(x, y)
        if isinstance(e, (Min, Max)):
            return b.select(b.icmp_unsigned("<" if isinstance(e, Min) else ">", x, y), x, y)
        return b.icmp_unsigned({LT: "<", LE: "<=", EQ: "==", NE: "!="}[type(e)], x, y)

    def _floordiv(self, x, y, fl: bool):
        b = self.b
        if fl:
            return intrinsic(b, "floor", [b.fdiv(x, y)])
        shift = _power_of_two(y)
        if shift is not None:  # floor division by 2**s is an arithmetic shift, for negative x too
            return b.ashr(x, _const(x.type, shift))
        q = b.sdiv(x, y)
        r = b.srem(x, y)
        zero = _const(x.type, 0)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("!=", b.icmp_signed("<", r, zero),
                                                                     b.icmp_signed("<", y, zero)))
        return b.sub(q, b.zext(adjust, x.type))

    def _floormod(self, x, y, fl: bool):
        b = self.b
        if fl:  # numpy's mod: C's exact fmod, shifted by y when its sign differs from y's; a zero takes y's sign
            r = b.frem(x, y)
            zero = _const(x.type, 0.0)
            shift = b.and_(b.fcmp_ordered("!=", r, zero), b.xor(b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
            r = b.select(shift, b.fadd(r, y), r)
            return b.select(b.fcmp_ordered("==", r, zero), intrinsic(b, "copysign", [zero, y]), r)
        if _power_of_two(y) is not None:  # floor modulo 2**s keeps the low s bits (two's complement)
            return b.and_(x, _const(x.type, y.constant - 1))
        r = b.srem(x, y)
        zero = _const(x.type, 0)
        adjust = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("!=", b.icmp_signed("<", r, zero),
                                                                     b.icmp_signed("<", y, zero)))
        return b.select(adjust, b.add(r, y), r)

    def _round_to_odd_f32(self, x):
        """float64 `x` as float32 rounded to odd (toward zero, the last bit set when inexact): rounding that to a
        format of at most 22 significant bits gives what rounding `x` directly would (no double rounding)."""
        b = self.b
        f = b.fptrunc(x, _like(x.type, F32))
        back = b.fpext(f, x.type)
        i32 = _like(x.type, I32)
        bits = b.bitcast(f, i32)
        away = b.fcmp_ordered(">", intrinsic(b, "fabs", [back]), intrinsic(b, "fabs", [x]))
        bits = b.select(away, b.sub(bits, _const(i32, 1)), bits)
        bits = b.select(b.fcmp_ordered("!=", back, x), b.or_(bits, _const(i32, 1)), bits)
        return b.bitcast(bits, f.type)

    def _cast(self, x, src: str, dst: str, lanes: int):
        """A cast between register types; a cast to a narrow dtype then wraps / rounds to it."""
        if src == dst:
            return x
        if src == "float64" and dst in _REGISTER_DTYPE and is_float(dst):  # one rounding, not two
            return self._wrap(self._round_to_odd_f32(x), dst)
        if dst in _SMALL_INTS and is_float(src):  # ml_dtypes: truncated toward zero when that fits, else 0
            bits, signed = _SMALL_INTS[dst]
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            wide = _REGISTER_DTYPE.get(src, src)
            x = self._cast(x, src, wide, lanes)
            fits = self.b.and_(self.b.fcmp_ordered(">", x, _const(x.type, low - 1.0)),
                               self.b.fcmp_ordered("<", x, _const(x.type, high + 1.0)))
            return self.b.select(fits, self._cast(x, wide, "int32", lanes), _const(_like(x.type, I32), 0))
        if src in _REGISTER_DTYPE or dst in _REGISTER_DTYPE:
            wide = _REGISTER_DTYPE.get(dst, dst)
            return self._wrap(self._cast(x, _REGISTER_DTYPE.get(src, src), wide, lanes), dst)
        b = self.b
        ty = llvm_type(dst)
        if lanes and isinstance(x.type, ir.VectorType):
            ty = ir.VectorType(ty, lanes)
        if src == dst:
            return x
        if dst == "bool":
            return b.fcmp_unordered("!=", x, _const(x.type, 0.0)) if is_float(src) else b.icmp_signed("!=", x, _const(x.type, 0))
        if src == "bool":
            return b.uitofp(x, ty) if is_float(dst) else b.zext(x, ty)
        if is_float(src) and is_float(dst):
            return b.fpext(x, ty) if _SIZES[dst] > _SIZES[src] else b.fptrunc(x, ty)
        if is_float(src):
            return b.fptoui(x, ty) if dst == "uint64" else b.fptosi(x, ty)
        if is_float(dst):
            return b.uitofp(x, ty) if src == "uint64" else b.sitofp(x, ty)
        if x.type == ty:  # int64 <-> uint64: the same bits
            return x
        return b.sext(x, ty) if _SIZES[dst] > _SIZES[src] else b.trunc(x, ty)


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in name)


def codegen_llvm(funcs, triple: str = "", data_layout: str = "", use_openmp: bool = True) -> str:
    """The LLVM IR text of one kernel, or of several (distinct names) in one module."""
    funcs = [funcs] if isinstance(funcs, PrimFunc) else list(funcs)
    module = None
    for f in funcs:
        module = LLVMCodegen(f, triple, data_layout, use_openmp, module).emit()
    return str(module)
