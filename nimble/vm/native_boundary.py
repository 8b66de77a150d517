"""The native VM's Python boundary: inputs checked and encoded for ``nvm_build`` (see
``native_layout``), output descriptions decoded into numpy arrays, ``ADT``s and closures, the
thread's stack floor, and the timing of boundary steps for ``native_profile``."""
from __future__ import annotations

import ctypes as _c
import math
import sys
import threading
from time import perf_counter_ns

import numpy as np

from ..errors import ShapeError
from ..errors import TypeError as NimbleTypeError
from . import native_layout as L
from .values import ADT, Closure, check_input, check_inputs

STACK_MARGIN = 256 * 1024  # bytes of the thread's stack kept free below the deepest native frame
_stack = threading.local()


def stack_floor() -> int:
    """The lowest stack address native frames may use on this thread (its base plus a margin)."""
    floor = getattr(_stack, "floor", None)
    if floor is None:
        floor = 0
        try:
            libc = _c.CDLL(None)
            libc.pthread_self.restype = _c.c_ulong
            libc.pthread_getattr_np.argtypes = [_c.c_ulong, _c.c_void_p]
            attr = _c.create_string_buffer(256)
            if libc.pthread_getattr_np(libc.pthread_self(), attr) == 0:
                addr, size = _c.c_void_p(), _c.c_size_t()
                libc.pthread_attr_getstack(attr, _c.byref(addr), _c.byref(size))
                libc.pthread_attr_destroy(attr)
                floor = (addr.value or 0) + STACK_MARGIN
        except (AttributeError, OSError):
            floor = 0
        if not floor:  # unknown: allow 1 MiB below this frame
            floor = _c.addressof(_c.c_char()) - (1 << 20)
        _stack.floor = floor
    return floor


def phase(phases: dict, name: str, t0: int) -> int:
    now = perf_counter_ns()
    phases[name] = phases.get(name, 0) + now - t0
    return now


def view_tensor(data: int, code: int, shape: tuple, storage: int, owner: int) -> np.ndarray:
    dtype = L.DTYPE_OF_CODE[code]
    nbytes = math.prod(shape) * dtype.itemsize  # (np.prod costs ~10 us a call: 4 views a host callback)
    if nbytes == 0:
        return np.empty(shape, dtype)
    return np.frombuffer((_c.c_uint8 * nbytes).from_address(data), dtype).reshape(shape)


def decode(w: list, tensor):
    """The value a prefix description holds (iteratively: long lists are fine); ``tensor(data,
    code, shape, storage, owner)`` makes each array."""
    i, n = 0, len(w)
    stack: list = []  # [kind, tag, remaining count, fields]
    result = None
    while i < n:
        kind = w[i]
        if kind == L.ENC_TENSOR:
            nd = w[i + 3]
            value = tensor(w[i + 1], w[i + 2], tuple(w[i + 6:i + 6 + nd]), w[i + 4], w[i + 5])
            i += 6 + nd
        else:
            frame = [kind, w[i + 1], w[i + 2], []]
            i += 3
            if frame[2]:
                stack.append(frame)
                continue
            value = ADT(frame[1], ()) if kind == L.ENC_ADT else Closure(frame[1], ())
        while True:  # hand the value to its parent; close parents that are complete
            if not stack:
                result = value
                break
            top = stack[-1]
            top[3].append(value)
            if len(top[3]) < top[2]:
                break
            stack.pop()
            value = ADT(top[1], tuple(top[3])) if top[0] == L.ENC_ADT else Closure(top[1], tuple(top[3]))
    return result


def dtype_code(a: np.ndarray) -> int:
    code = L.DTYPE_CODE_BY_NUM.get(a.dtype.num)
    if code is None:
        raise NimbleTypeError(f"the native VM has no dtype {a.dtype}")
    return code


def checked_inputs(name: str, params: tuple, inputs: tuple, types: list | None) -> list:
    """``check_inputs``, except that a value declared an ADT is passed as it is (the reference
    interpreter's ``ConstructorValue`` trees included): the encoder walks it once."""
    if types is None or len(inputs) != len(params) or len(types) != len(params):
        return check_inputs(name, params, inputs, types)
    adts = (_constructor_value(), ADT)
    out = []
    for i, (v, t, p) in enumerate(zip(inputs, types, params)):
        if t is not None and v.__class__ in adts and t.get("kind") == "adt":
            out.append(v)
        else:
            out.append(check_input(v, t, f"{name}: input {p!r} (#{i})"))
    return out


def input_specs(params: tuple, types: list | None) -> tuple | None:
    """Per parameter, what ``inputs_match`` accepts without ``checked_inputs``: ``"adt"`` or
    (dtype, rank, ((axis, static dim), ...)); None where some parameter needs the full check."""
    if types is None or len(types) != len(params):
        return None
    specs = []
    for t in types:
        kind = t.get("kind", "tensor") if t is not None else None
        if kind == "adt":
            specs.append("adt")
        elif kind == "tensor":
            shape = t["shape"]
            specs.append((np.dtype(t["dtype"]), len(shape), tuple((k, d) for k, d in enumerate(shape) if d is not None)))
        else:
            return None
    return tuple(specs)


def inputs_match(specs: tuple, inputs: tuple) -> bool:
    """Whether ``inputs`` pass ``checked_inputs`` as they are: arrays of the declared dtype (the
    same dtype object), rank and static dims, ADT values where ADTs are declared. False sends the
    call through ``checked_inputs``, which converts or names what is wrong; contiguity is checked
    natively (``nvm_build_py`` hands a non-contiguous array to Python's encoder)."""
    if len(inputs) != len(specs):
        return False
    cv = _constructor_value()
    for v, spec in zip(inputs, specs):
        if spec == "adt":
            if v.__class__ is not cv and v.__class__ is not ADT:
                return False
            continue
        if v.__class__ is not np.ndarray or v.dtype is not spec[0]:
            return False
        shape = v.shape
        if len(shape) != spec[1]:
            return False
        for k, d in spec[2]:
            if shape[k] != d:
                return False
    return True


OWNER_INPUT = 1 << 62  # (native_rt_python) a tensor owner: this bit plus the address of the input array


def python_table():
    """The classes and attribute names ``nvm_build_py`` compares with and looks up (kept alive by
    the table's holder: the classes live in their modules, the names are interned)."""
    from . import native_rt_python as P

    table = (_c.py_object * P.PY_TABLE_SIZE)()
    for slot, value in ((P.PY_NDARRAY, np.ndarray), (P.PY_CONSTRUCTOR_VALUE, _constructor_value()), (P.PY_ADT, ADT),
                        (P.PY_TUPLE, tuple), (P.PY_S_FIELDS, sys.intern("fields")),
                        (P.PY_S_CONSTRUCTOR, sys.intern("constructor")), (P.PY_S_TAG, sys.intern("tag"))):
        table[slot] = value
    return table


def native_outputs(ty: dict | None) -> bool:
    """Whether ``nvm_to_py`` may build a result of declared type ``ty``: tensors and tuples of them
    (``to_python`` turns a tag-0 ADT into a tuple there; a value declared an ADT stays one)."""
    if ty is None:
        return True
    kind = ty.get("kind", "tensor")
    if kind == "tensor":
        return True
    return kind == "tuple" and all(native_outputs(f) for f in ty.get("fields") or ())


def _numpy_api():
    """NumPy's C-API function table (the ``_ARRAY_API`` capsule), or None where it cannot be read."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as mu
    get = _c.PYFUNCTYPE(_c.c_void_p, _c.py_object, _c.c_char_p)(("PyCapsule_GetPointer", _c.pythonapi))
    try:
        base = get(mu._ARRAY_API, None)
    except (AttributeError, ValueError):
        return None
    api = (_c.c_void_p * 300).from_address(base)
    return api if api[2] == id(np.ndarray) else None  # (slot 2: PyArray_Type; else not the table we know)


def output_table(pool, fallback):
    """The table ``nvm_to_py`` reads (see ``native_rt_pyout``), or None when NumPy's C API is not
    the one it knows (outputs are then built in Python). The objects stay alive: the pool with
    its VM (and every array's capsule), the dtypes and ``fallback`` with the caller."""
    from . import native_rt_pyout as O

    api = _numpy_api()
    if api is None:
        return None
    table = (_c.c_void_p * O.OT_SIZE)()
    table[O.OT_NDARRAY] = id(np.ndarray)
    table[O.OT_NEW_FROM_DESCR] = api[O.NUMPY_API_SLOTS["PyArray_NewFromDescr"]]
    table[O.OT_SET_BASE] = api[O.NUMPY_API_SLOTS["PyArray_SetBaseObject"]]
    table[O.OT_POOL] = id(pool)
    table[O.OT_FALLBACK] = id(fallback)
    for code, dtype in L.DTYPE_OF_CODE.items():
        if 0 <= code < O.OT_SIZE - O.OT_DESCR:
            table[O.OT_DESCR + code] = id(dtype)
    return table


def input_arrays(inputs) -> dict:
    """{id: array} of the arrays among ``inputs`` (nested in ADTs and tuples): built once per call that returns
    input arrays, so a list of n of them costs O(n), not O(n^2)."""
    out, work = {}, list(inputs)
    while work:
        v = work.pop()
        if isinstance(v, np.ndarray):
            out[id(v)] = v
        elif isinstance(v, (ADT, _constructor_value())):
            work.extend(v.fields)
        elif isinstance(v, tuple):
            work.extend(v)
    return out


_FAST_DEPTH = 200  # nesting the recursive encoder takes; deeper values (long lists) go the iterative way


class _Careful(Exception):
    """A value ``encode_fast`` leaves to ``_encode``."""


def encode_fast(args: list, code: list, keep: list) -> bool:
    """The postfix encoding of ``args`` in few Python steps: arrays of class ndarray are passed as
    ``ENC_ARRAY`` (native code checks their layout and dtype), ADTs and tuples recursively.
    False (``code`` and ``keep`` then hold a part) when a value needs ``_encode``."""
    add, hold = code.extend, keep.append
    ndarray, cv, adt = np.ndarray, _constructor_value(), ADT

    def enc(v, depth):
        cls = v.__class__
        if cls is ndarray:
            add((L.ENC_ARRAY, id(v), 0, len(keep)))
            hold(v)
        elif depth < _FAST_DEPTH and (cls is cv or cls is adt or cls is tuple):
            fields = v if cls is tuple else v.fields
            for f in fields:
                enc(f, depth + 1)
            add((L.ENC_ADT, v.constructor.tag if cls is cv else 0 if cls is tuple else v.tag, len(fields)))
        else:
            raise _Careful

    try:
        for a in args:
            enc(a, 0)
    except _Careful:
        return False
    return True


def encode_all(args: list) -> tuple:
    """(code, keep) of ``args`` by ``_encode``: every array checked and converted in Python."""
    code: list = []
    keep: list = []
    for a in args:
        _encode(a, code, keep)
    return code, keep


def _constructor_value():
    if not _CV:
        from ..ir.values import ConstructorValue

        _CV.append(ConstructorValue)
    return _CV[0]


_CV: list = []


class _End:
    """Marks where an ADT's fields end in ``_encode``'s work stack."""

    __slots__ = ("tag", "count")

    def __init__(self, tag: int, count: int):
        self.tag, self.count = tag, count


def _encode(value, code: list, keep: list) -> None:
    """Append the postfix encoding of a register value (numpy arrays are passed by address;
    iterative, so a long list is fine)."""
    from ..ir.values import ConstructorValue

    ndarray, codes = np.ndarray, L.DTYPE_CODE_BY_NUM
    work = [value]
    pop, push, extend = work.pop, work.append, work.extend
    while work:
        v = pop()
        cls = v.__class__
        if cls is ndarray and v.flags.c_contiguous and v.ndim <= L.MAX_RANK and v.dtype.num in codes \
                and v.dtype.isnative:
            code += (L.ENC_TENSOR, id(v), codes[v.dtype.num], len(keep))
            keep.append(v)
        elif cls is _End:
            code += (L.ENC_ADT, v.tag, v.count)
        elif cls is ConstructorValue or cls is ADT or cls is tuple:
            fields = v if cls is tuple else v.fields
            push(_End(v.constructor.tag if cls is ConstructorValue else 0 if cls is tuple else v.tag, len(fields)))
            extend(reversed(fields))
        elif isinstance(v, Closure):
            raise NimbleTypeError("the native VM does not take closures as inputs")
        else:
            v = np.ascontiguousarray(v) if isinstance(v, np.ndarray) else np.asarray(v, order="C")
            if not v.dtype.isnative:
                v = v.astype(v.dtype.newbyteorder("="))
            if v.ndim > L.MAX_RANK:
                raise ShapeError(f"the native VM takes tensors of rank <= {L.MAX_RANK}, got shape {v.shape}")
            code += (L.ENC_TENSOR, id(v), dtype_code(v), len(keep))
            keep.append(v)
