"""cumsum / cumprod groups through the O(size) loop-IR scan of ``schedules/cumulative.py``.

A cumulative call is opaque (alone in its group); its kernel takes ``(x, out)``, out of x's shape and dtype.
"""
from __future__ import annotations

from .. import te
from ..dispatch.kernel_entry import KernelEntry
from ..ir.types import TensorType
from ..ops.registry import get_op
from ..ops.relations import normalize_axis
from ..schedules.cumulative import IDENTITY, build_cumulative
from .kernels import GroupKernel, _static


def cumulative_group_kernel(group, types, name: str) -> GroupKernel | None:
    """The kernel of a lone cumsum / cumprod call (None for any other group)."""
    if len(group.calls) != 1 or group.calls[0].op.name not in IDENTITY:
        return None
    call = group.calls[0]
    op = call.op.name
    x_t, out_t = types[call.args[0]], types[call]
    if not isinstance(x_t, TensorType) or not isinstance(out_t, TensorType) or not x_t.shape:
        return None
    attrs = get_op(op).full_attrs(call.attrs)
    axis = normalize_axis(op, attrs["axis"], len(x_t.shape))
    shape = tuple(d if isinstance(d, int) else te.var(f"d{i}") for i, d in enumerate(x_t.shape))
    kernel = build_cumulative(name, op, shape, x_t.dtype, axis, bool(attrs["exclusive"]), bool(attrs["reverse"]))
    out_shape = [d if isinstance(d, int) else ["dim", 0, i] for i, d in enumerate(x_t.shape)]
    return GroupKernel(name, KernelEntry.from_kernel(kernel), list(call.args), [(_static(out_t), out_t.dtype)],
                       [out_shape], None, "cumulative")
