"""nonzero groups through the O(size) loop-IR kernel of ``schedules/nonzero.py``.

A nonzero call is opaque (alone in its group); its kernel takes ``(x, out, shape)``. The output's column count is
data: ``out`` is allocated at the upper bound ``(rank, size)`` (every element non-zero) from x's dims, the kernel
writes the real shape into ``shape`` and the VM views the result in the same storage (``GroupKernel.bounded``).
"""
from __future__ import annotations

from .. import te
from ..dispatch.kernel_entry import KernelEntry
from ..ir.types import TensorType
from ..schedules.nonzero import build_nonzero
from .kernels import GroupKernel, _static


def nonzero_group_kernel(group, types, name: str) -> GroupKernel | None:
    """The kernel of a lone nonzero call (None for any other group)."""
    if len(group.calls) != 1 or group.calls[0].op.name != "nonzero":
        return None
    call = group.calls[0]
    x_t, out_t = types[call.args[0]], types[call]
    if not isinstance(x_t, TensorType) or not isinstance(out_t, TensorType) or not x_t.shape:
        return None
    shape = tuple(d if isinstance(d, int) else te.var(f"d{i}") for i, d in enumerate(x_t.shape))
    kernel = build_nonzero(name, shape, x_t.dtype)
    size = 1
    for i, d in enumerate(x_t.shape):
        size = ["*", size, d if isinstance(d, int) else ["dim", 0, i]]
    return GroupKernel(name, KernelEntry.from_kernel(kernel), list(call.args), [(_static(out_t), out_t.dtype)],
                       [[len(x_t.shape), size]], None, "nonzero", bounded=True)
