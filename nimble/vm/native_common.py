"""What the native VM's code generator modules share: the unsupported-executable error, the
program layout Python reads, dtype codes and the argument kinds a packed function takes."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..dispatch.table import DispatchEntry
from ..errors import NimbleError
from . import native_layout as L
from .executable import KernelEntry

SHAPE_STATUS = 1 << 20


class NativeUnsupported(NimbleError):
    """The executable uses something the native VM cannot run (the Python VM runs it)."""


@dataclass
class ProgramLayout:
    """What Python must know about a generated program: the kernel-pointer table, immediates,
    dispatch tables' histogram rows and the opcode numbering of the instruction counters."""

    kernel_symbols: list = field(default_factory=list)  # (packed index, KernelEntry, symbol) per table slot
    immediates: list = field(default_factory=list)  # values of LoadConsti beyond 0..255 (index 256 + k)
    hist_rows: dict = field(default_factory=dict)  # packed index of a dispatch table -> histogram row
    prof_kinds: tuple = ()  # an instrumented program's timed kinds (``native_profile``), else empty


def dtype_code(name: str) -> int:
    code = L.DTYPE_CODE.get(str(name))
    if code is None:
        raise NativeUnsupported(f"dtype {name!r} has no native VM code")
    return code


def kernels_of(p) -> list:
    if isinstance(p, KernelEntry):
        return [p]
    if isinstance(p, DispatchEntry):
        return list(p.kernels)
    return []


def expected_args(p) -> list | None:
    """(dtype code, rank) each call argument of a kernel or dispatch entry must have."""
    if isinstance(p, KernelEntry):
        return [(dtype_code(dt), nd) for dt, nd in zip(p.arg_dtypes, p.arg_ndims)]
    if isinstance(p, DispatchEntry):
        want: dict = {}
        for k, amap in zip(p.kernels, p.arg_maps):
            for j, a in enumerate(amap):
                want.setdefault(a, (dtype_code(k.arg_dtypes[j]), k.arg_ndims[j]))
        return [want.get(a) for a in range(max(want) + 1)] if want else []
    return None


def itemsize(dtype: str) -> int:
    return L.ITEMSIZE_OF_CODE[dtype_code(dtype)]
