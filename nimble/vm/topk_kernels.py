"""topk / topk_values / topk_indices groups through the hand-written loop-IR kernel of ``schedules/topk.py``.

A topk call is opaque (alone in its group); its kernel takes ``(data, k, *outs)`` (topk: values and indices). The
outputs' axis length is k: static when the model's k is a constant, else ``["value", 1]`` in the shape expression
(k's value, read by native code: no Python shape function at run time). The kernel raises OutOfRangeError for a k
above the axis length; a negative k is a negative output shape (ShapeError).
"""
from __future__ import annotations

from .. import te
from ..dispatch.kernel_entry import KernelEntry
from ..ir.types import TensorType, TupleType
from ..ops.registry import get_op
from ..ops.relations import normalize_axis
from ..schedules.topk import DTYPES, build_topk
from .kernels import GroupKernel, _static

TOPK_OPS = {"topk": ("values", "indices"), "topk_values": ("values",), "topk_indices": ("indices",)}


def topk_group_kernel(group, types, name: str) -> GroupKernel | None:
    """The kernel of a lone topk / topk_values / topk_indices call (None for any other group)."""
    if len(group.calls) != 1 or group.calls[0].op.name not in TOPK_OPS:
        return None
    call = group.calls[0]
    op = call.op.name
    attrs = get_op(op).full_attrs(call.attrs)
    data_t, k_t, out_t = types[call.args[0]], types[call.args[1]], types[call]
    outs = list(out_t.fields) if isinstance(out_t, TupleType) else [out_t]
    if not all(isinstance(t, TensorType) for t in (data_t, k_t, *outs)) or data_t.dtype not in DTYPES:
        return None
    axis = normalize_axis(op, attrs["axis"], len(data_t.shape))
    shape = tuple(d if isinstance(d, int) else te.var(f"d{i}") for i, d in enumerate(data_t.shape))
    k_shape = tuple(d if isinstance(d, int) else te.var(f"kd{i}") for i, d in enumerate(k_t.shape))
    ks = {t.shape[axis] for t in outs}
    out_k = ks.pop() if len(ks) == 1 and isinstance(outs[0].shape[axis], int) else None
    kernel = build_topk(name, shape, data_t.dtype, k_shape, k_t.dtype, axis, bool(attrs["largest"]), TOPK_OPS[op],
                        out_k)
    # the k of the outputs' axis: static, or k's value (the kernel checks k <= n; a negative k is a negative shape)
    k_dim = out_k if out_k is not None else ["value", 1]
    out_shapes = [[k_dim if i == axis else d if isinstance(d, int) else ["dim", 0, i] for i, d in enumerate(data_t.shape)]
                  for _ in outs]
    return GroupKernel(name, KernelEntry.from_kernel(kernel), list(call.args), [(_static(t), t.dtype) for t in outs],
                       out_shapes, None, "topk")
