"""topk_values / topk_indices: the k largest (or smallest) elements along an axis and their int64 indices, k a
run-time scalar (or 1-element) tensor. Sorted best first; equal elements keep their order (the lower index
first), as ONNX TopK specifies and ONNX Runtime does; -0.0 equals 0.0. NaN (unspecified in ONNX) is ordered as
ONNX Runtime orders it: above every number, so NaNs come first (in index order) when largest, last otherwise.
``topk`` returns both (one kernel computes them, as ONNX TopK does); ``topk_values`` and ``topk_indices`` one
each. No te compute: a sort is beyond
te; the loop-IR kernel of ``nimble.schedules.topk`` (a bounded heap per row, O(n log k)) computes both."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import AnyDim, TensorType, TupleType
from .registry import OpPattern, ShapeFuncKind, register
from .relations import FLOAT_DTYPES, INT_DTYPES, normalize_axis, tensor_arg

Any = AnyDim()
ATTRS = {"axis": -1, "largest": True, "sorted": True}


def k_of(op: str, k, dim: int) -> int:
    """The value of k (a scalar or 1-element array), checked against the axis length."""
    k = np.asarray(k)
    if k.size != 1 or k.dtype.kind not in "iu":
        raise ShapeError(f"{op}: k must be one integer, got {k.dtype} of shape {k.shape}")
    value = int(k.reshape(-1)[0])
    if not 0 <= value <= dim:
        raise ShapeError(f"{op}: k = {value} is out of range for an axis of length {dim} (0 <= k <= {dim})")
    return value


def _rel(op: str, indices: bool | None):
    """The type relation; ``indices`` None: both outputs, a tuple (values, indices)."""
    def rel(data, k, axis, largest, sorted):  # noqa: A002 - ONNX's attribute name
        data = tensor_arg(op, "data", data, FLOAT_DTYPES + INT_DTYPES)
        k = tensor_arg(op, "k", k, ("int32", "int64"))
        if k.ndim > 1 or (k.ndim == 1 and k.shape[0] not in (1, Any) and isinstance(k.shape[0], int)):
            raise ShapeError(f"{op}: k must be a scalar or hold one value, got {k!r}")
        if data.ndim == 0:
            raise ShapeError(f"{op}: data must have rank >= 1, got a scalar")
        ax = normalize_axis(op, axis, data.ndim)
        shape = data.shape[:ax] + (Any,) + data.shape[ax + 1:]
        if indices is None:
            return TupleType((TensorType(shape, data.dtype), TensorType(shape, "int64")))
        return TensorType(shape, "int64" if indices else data.dtype)

    return rel


def _shape(op: str, outputs: int = 1):
    def shape_func(data, k, axis, largest, sorted):  # noqa: A002
        ax = normalize_axis(op, axis, len(data))
        out = np.array(data, dtype=np.int64)
        out[ax] = k_of(op, k, int(data[ax]))
        return [out.copy() for _ in range(outputs)]

    return shape_func


def reference_indices(data: np.ndarray, k, axis: int, largest: bool) -> np.ndarray:
    """A stable sort along `axis` (descending for largest, equal elements in index order, NaN above every
    number), first k."""
    ax = normalize_axis("topk", axis, data.ndim)
    count = k_of("topk", k, data.shape[ax])
    rows = np.moveaxis(data, ax, -1)
    if data.dtype.kind == "f":
        keys = -rows.astype(np.float64) if largest else rows  # NaN stays NaN: np.argsort puts it last
        order = np.argsort(keys, axis=-1, kind="stable")
        if largest:  # NaNs first, still in index order
            nan_last = ~np.isnan(np.take_along_axis(rows, order, axis=-1))
            order = np.take_along_axis(order, np.argsort(nan_last, axis=-1, kind="stable"), axis=-1)
    else:
        keys = ~rows if largest else rows  # ~x = -x - 1 reverses the order and cannot overflow
        order = np.argsort(keys, axis=-1, kind="stable")
    return np.moveaxis(order[..., :count], -1, ax).astype(np.int64)


def _reference(data, k, axis, largest, sorted):  # noqa: A002
    indices = reference_indices(data, k, axis, largest)
    return np.take_along_axis(data, indices, axis=normalize_axis("topk", axis, data.ndim)), indices


topk = register(
    "topk", args=("data", "k"), attrs=dict(ATTRS), type_rel=_rel("topk", None), shape_func=_shape("topk", 2),
    shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(1,), reference=_reference, pattern=OpPattern.OPAQUE,
    doc="(values, int64 indices) of the k largest (largest=True) or smallest elements of data along axis, best "
    "first (ties: lower index first); k is a run-time scalar tensor. ONNX TopK.",
)
topk_values = register(
    "topk_values", args=("data", "k"), attrs=dict(ATTRS), type_rel=_rel("topk_values", False),
    shape_func=_shape("topk_values"), shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(1,),
    reference=lambda data, k, axis, largest, sorted: np.take_along_axis(
        data, reference_indices(data, k, axis, largest), axis=normalize_axis("topk", axis, data.ndim)),
    pattern=OpPattern.OPAQUE,
    doc="The k largest (largest=True) or smallest elements of data along axis, best first (ties: lower index "
    "first); k is a run-time scalar tensor.",
)
topk_indices = register(
    "topk_indices", args=("data", "k"), attrs=dict(ATTRS), type_rel=_rel("topk_indices", True),
    shape_func=_shape("topk_indices"), shape_kind=ShapeFuncKind.DATA_DEPENDENT, value_inputs=(1,),
    reference=lambda data, k, axis, largest, sorted: reference_indices(data, k, axis, largest),
    pattern=OpPattern.OPAQUE,
    doc="The int64 indices along axis of topk_values' elements.",
)
