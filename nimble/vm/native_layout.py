"""Memory layout of the native VM's objects, shared by its code generator and its Python side.

Every value in a native register is a pointer to a reference-counted object whose first 16
bytes are ``i64 refcount, i32 kind, i32 aux``. A tensor keeps its data pointer, rank and dims
pointer at the offsets NumPy uses in ``PyArrayObject`` (16, 24, 32), so a kernel's
``.pyarrays`` entry, which reads those fields and checks them before it touches memory, takes
a native tensor as it takes a numpy array. Immortal objects (constants, immediates) start at
``IMMORTAL`` references and are never freed.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import EXTENDED_DTYPES, numpy_dtype, when_loaded

KIND_TENSOR, KIND_STORAGE, KIND_ADT, KIND_CLOSURE = 1, 2, 3, 4
IMMORTAL = 1 << 60
MAX_RANK = 8
HIST_BINS = 4096  # per dispatch table: calls per value of the dispatched dim below this; one bin above

# object header
RC, KIND, AUX = 0, 8, 12
# tensor (aux: dtype code)
T_DATA, T_NDIM, T_FLAGS, T_DIMS, T_STORAGE, T_OWNER, T_SHAPE, T_INLINE = 16, 24, 28, 32, 40, 48, 56, 120
TENSOR_SIZE = T_INLINE + 8 * MAX_RANK
T_FLAG_INLINE = 1  # data lives in the descriptor's inline slots (scalars, shape vectors)
# storage
S_DATA, S_NBYTES, S_CAP, S_RAW, S_NEXT, S_POOL, S_CLASS = 16, 24, 32, 40, 48, 56, 64
STORAGE_SIZE = 72
# ADT (aux: tag) and closure (aux: function index): next (free worklist), field count, fields
O_NEXT, O_COUNT, O_FIELDS = 16, 24, 32
# storage pool: free-list heads per size class, then statistics, then the deferred-return stack
POOL_CLASSES = 256
P_STATS = 8 * POOL_CLASSES
POOL_STATS = ("bytes_in_use", "peak_bytes_in_use", "bytes_free", "system_allocations", "pool_reuses",
              "bytes_requested", "peak_bytes_requested", "storage_allocations")
P_DEFERRED = P_STATS + 8 * len(POOL_STATS)
POOL_SIZE = P_DEFERRED + 8

# the per-VM context every native function receives
C_POOL, C_STACK_FLOOR, C_ERR_CODE, C_ERR_STATUS, C_ERR_PACKED, C_TRACE_N = 0, 8, 16, 20, 24, 28
C_CONSTANTS, C_IMMEDIATES, C_CALLS, C_HIST, C_HOST_CB, C_NTHREADS, C_PROFILING = 32, 40, 48, 56, 64, 72, 76
C_PROF_TIME, C_DEPTH, C_MAX_DEPTH, C_ERR_DETAIL = 80, 88, 92, 96
ERR_DETAIL_SLOTS = 24
C_TRACE = C_ERR_DETAIL + 8 * ERR_DETAIL_SLOTS
TRACE_SLOTS = 32
# the opt-in instruction profile (an instrumented program, ``native_profile``): the (count, cycles)
# table per kind, the cycle counter at the last tick, the kind that runs since then
C_OPS = C_TRACE + 8 * TRACE_SLOTS
C_OP_LAST, C_OP_PREV = C_OPS + 8, C_OPS + 16
CTX_SIZE = C_OP_PREV + 8
# kinds an instrumented program times beside the opcodes (``vm.bytecode.OPCODES``' opnames)
PROF_EXTRA = ("function entry", "function exit", "release dead registers", "kernel", "host callback",
              "outside native code")

# error codes left in the context by native code
(E_NONE, E_DEPTH, E_KERNEL, E_ARG, E_FATAL, E_ALLOC, E_SHAPE, E_HOST, E_FIELD, E_TAG, E_CLOSURE, E_ARITY,
 E_SCALAR) = range(13)

DTYPES = ("bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32", "float64", "uint16", "uint32",
          "uint64") + tuple(EXTENDED_DTYPES)
DTYPE_CODE = {name: k + 1 for k, name in enumerate(DTYPES)}
# ml_dtypes' dtypes get their numpy type numbers when it is imported: these two tables learn them then
DTYPE_CODE_BY_NUM = {np.dtype(name).num: k + 1 for k, name in enumerate(DTYPES) if name not in EXTENDED_DTYPES}
DTYPE_OF_CODE = {k + 1: np.dtype(name) for k, name in enumerate(DTYPES) if name not in EXTENDED_DTYPES}
ITEMSIZE_OF_CODE = {k + 1: EXTENDED_DTYPES.get(name) or np.dtype(name).itemsize for k, name in enumerate(DTYPES)}


def _learn_extended() -> None:
    for name in EXTENDED_DTYPES:
        dtype = numpy_dtype(name)
        DTYPE_CODE_BY_NUM[dtype.num] = DTYPE_CODE[name]
        DTYPE_OF_CODE[DTYPE_CODE[name]] = dtype


when_loaded(_learn_extended)
INTEGER_CODES = frozenset(DTYPE_CODE[n] for n in DTYPES if n not in EXTENDED_DTYPES and np.dtype(n).kind in "biu")
FLOAT_CODES = frozenset(DTYPE_CODE[n] for n in ("float32", "float64"))
# dtype code by NumPy type number (0: none; ``long`` and ``longlong`` are both int64 on LP64)
DTYPE_CODE_BY_TYPE_NUM = tuple(
    next((DTYPE_CODE[str(np.dtype(c))] for c in np.typecodes["All"]
          if np.dtype(c).num == num and str(np.dtype(c)) in DTYPE_CODE), 0) for num in range(32))

# NumPy's stable ABI: PyArrayObject (data, nd, dimensions, descr, flags) and PyArray_Descr fields
NPY_DATA, NPY_NDIM, NPY_DIMS, NPY_DESCR, NPY_FLAGS = 16, 24, 32, 56, 64
NPY_DESCR_BYTEORDER, NPY_DESCR_TYPE_NUM = 26, 28

# input encoding (postfix): a tensor is [ENC_TENSOR, PyArrayObject address, dtype code, owner] (an
# array Python checked) or [ENC_ARRAY, PyArrayObject address, 0, owner] (one native code checks),
# an ADT [ENC_ADT, tag, field count] after its fields
ENC_TENSOR, ENC_ADT, ENC_ARRAY = 1, 2, 4
# output description (prefix): [ENC_TENSOR, data address, dtype code, ndim, storage address, owner, dims...],
# [ENC_ADT, tag, count] then its fields, [ENC_CLOSURE, function index, count] then its captured values
ENC_CLOSURE = 3
