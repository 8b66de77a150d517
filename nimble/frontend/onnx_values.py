"""What the ONNX frontend knows about one value: its IR expression, its type, its value when constant, and, for a
1-D int shape tensor, which of its elements are static ints and which are run-time dims of some tensor."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.expr import Constant, Expr
from ..ir.types import AnyDim, SymDim, TensorType, Type


@dataclass(frozen=True)
class DimRef:
    """Axis `axis` of the tensor bound to `expr`, known only at run time."""

    expr: Expr
    axis: int


@dataclass(frozen=True)
class Value:
    """One ONNX value. `const` is its numpy value when known at conversion time; `dims` (for a rank-0/1 int
    tensor) holds each element as an int or a `DimRef`."""

    expr: Expr
    type: Type
    const: np.ndarray | None = None
    dims: tuple | None = None
    boxed: bool = False  # a bool tensor held as an int32 0/1 tensor (see GraphConverter.emit)

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def ndim(self) -> int:
        return self.type.ndim

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def shape(self) -> tuple:
        return self.type.shape


def const_value(array, dtype=None) -> Value:
    """A constant value (numpy keeps the dtype)."""
    array = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype)
    dims = tuple(int(v) for v in array.reshape(-1)) if array.dtype.kind in "iu" and array.ndim <= 1 else None
    return Value(Constant(array), TensorType(array.shape, array.dtype.name), array, dims)


def is_dynamic(d) -> bool:
    return isinstance(d, (AnyDim, SymDim))


def shape_dims(v: Value) -> tuple:
    """The shape of `v` as ints and `DimRef`s (what `Shape` of it would hold)."""
    return tuple(DimRef(v.expr, i) if is_dynamic(d) else int(d) for i, d in enumerate(v.shape))
