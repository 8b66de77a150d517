"""Element types numpy lacks: bfloat16, float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0fnu), float4 e2m1 and int4 /
uint4 / int2 / uint2. Their numpy dtypes come from ``ml_dtypes`` (a dependency of onnx), imported only when one of them is
first used: ``numpy_dtype(name)`` or ``load()``; the numpy type numbers ml_dtypes assigns exist only after that.

Every one is a storage type: one element per byte (two for bfloat16), as ml_dtypes stores them; the 4- and 2-bit
integers keep their value in the low bits (two's complement for the signed ones), the high bits zero.
"""
from __future__ import annotations

import numpy as np

from .errors import TypeError as NimbleTypeError

# name -> bytes per element
EXTENDED_DTYPES = {
    "bfloat16": 2, "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1,
    "float4_e2m1fn": 1, "int4": 1, "uint4": 1, "int2": 1, "uint2": 1, "float8_e8m0fnu": 1,
}  # (new names go last: the VM's dtype codes follow this order)
# the integer ones: name -> (bits, signed)
SMALL_INTS = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}

_listeners: list = []
_loaded: list = []


def is_extended(name) -> bool:
    return str(name) in EXTENDED_DTYPES


def int_range(name: str) -> tuple[int, int]:
    """(min, max) of an integer dtype, the small ones included."""
    if name in SMALL_INTS:
        bits, signed = SMALL_INTS[name]
        return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    info = np.iinfo(name)
    return int(info.min), int(info.max)


def load():
    """Import ml_dtypes (registering its dtypes with numpy) and tell the listeners; returns the module."""
    if _loaded:
        return _loaded[0]
    try:
        import ml_dtypes
    except ImportError as err:
        raise NimbleTypeError(f"the dtypes {sorted(EXTENDED_DTYPES)} need the ml_dtypes package "
                              f"(pip install ml_dtypes; onnx depends on it)") from err
    _loaded.append(ml_dtypes)
    for fn in _listeners:
        fn()
    return ml_dtypes


def when_loaded(fn) -> None:
    """Call `fn()` once ml_dtypes is loaded (now when it already is)."""
    _listeners.append(fn)
    if _loaded:
        fn()


def numpy_dtype(name) -> np.dtype:
    """The numpy dtype of a dtype name (ml_dtypes' for the extended names)."""
    if is_extended(name):
        return np.dtype(getattr(load(), str(name)))
    return np.dtype(name)


def dtype_name(dtype) -> str:
    """The name of a numpy dtype, a dtype name or a scalar type (the extended names loading ml_dtypes)."""
    if isinstance(dtype, str) and is_extended(dtype):
        load()
        return dtype
    return np.dtype(dtype).name
