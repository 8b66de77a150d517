"""Host functions the VM compiler emits to size dynamic outputs before a kernel runs.

Both write, per output, its shape (a 1-D int64 array) and its byte size (a 0-d int64 array)
into preallocated registers (destination passing, like kernels):

* ``shape_expr``: output dims as expressions of the input dims (``kernels.shape_json``) —
  every data-independent fused group — and of one-element int inputs (``["value", i]``: topk's k);
* ``op_shape``: an operator's own shape function (data-dependent operators: arange, nonzero,
  a reshape to a runtime shape ...), on the inputs' values or shapes as the op declares.
"""
from __future__ import annotations

import numpy as np

from ..errors import FormatError, NimbleError, ShapeError
from .executable import HostFuncEntry, LinkedHostFunc
from .values import ADT


_MAX_BYTES = (1 << 63) - 1


def _write(outs: list, shapes: list, itemsizes: list, name: str) -> None:
    if len(outs) != 2 * len(shapes):
        raise ShapeError(f"{name}: {len(shapes)} output shapes for {len(outs)} output registers")
    for k, (shape, size) in enumerate(zip(shapes, itemsizes)):
        dims = [int(d) for d in shape]
        if any(d < 0 for d in dims):
            raise ShapeError(f"{name}: output {k} would have the negative shape {tuple(dims)}")
        nbytes = int(size)
        for d in dims:  # Python ints: no silent int64 wrap-around
            nbytes *= d
        if nbytes > _MAX_BYTES or any(d > _MAX_BYTES for d in dims):
            raise ShapeError(f"{name}: output {k} of shape {tuple(dims)} would need {nbytes} bytes, more than "
                             f"an int64 byte count can hold")
        outs[2 * k][...] = dims
        outs[2 * k + 1][...] = nbytes


class ShapeExprFunc(LinkedHostFunc):
    """Output shapes from expressions of the input dims."""

    def __init__(self, entry: HostFuncEntry):
        from .kernels import eval_shape_json

        self.name = entry.name
        self.op = "shape_expr"
        self.shapes = entry.attrs["shapes"]
        self.itemsizes = entry.attrs["itemsizes"]
        self._eval = eval_shape_json

    def __call__(self, vals: list, output_count: int) -> None:
        n_in = len(vals) - output_count
        in_shapes = [v.shape for v in vals[:n_in]]
        _write(vals[n_in:], [[self._eval(d, in_shapes, vals[:n_in]) for d in s] for s in self.shapes], self.itemsizes,
               self.name)


class OpShapeFunc(LinkedHostFunc):
    """Output shapes from an operator's shape function."""

    def __init__(self, entry: HostFuncEntry):
        from ..ops import get_op

        try:
            op = get_op(entry.op)
            self.attrs = op.full_attrs(dict(entry.attrs.get("attrs", {})))
        except NimbleError as exc:
            raise FormatError(f"host function {entry.name}: {exc}") from None
        self.name = entry.name
        self.op = entry.op
        self.shape_func = op.shape_func
        self.value_inputs = set(op.value_inputs)
        self.itemsizes = entry.attrs["itemsizes"]

    def _input(self, i: int, v):
        if isinstance(v, ADT):
            return [self._input(i, x) for x in v.fields]
        return v if i in self.value_inputs else np.array(v.shape, dtype=np.int64)

    def __call__(self, vals: list, output_count: int) -> None:
        n_in = len(vals) - output_count
        try:
            shapes = self.shape_func(*[self._input(i, v) for i, v in enumerate(vals[:n_in])], **self.attrs)
        except (ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError) as exc:
            if isinstance(exc, NimbleError):
                raise
            raise ShapeError(f"{self.name}: the shape function of {self.op} failed on these inputs "
                             f"({type(exc).__name__}: {exc})") from None
        _write(vals[n_in:], shapes, self.itemsizes, self.name)


HOST_KINDS = {"shape_expr": ShapeExprFunc, "op_shape": OpShapeFunc}
