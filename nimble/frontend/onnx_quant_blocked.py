"""Blocked quantization (QuantizeLinear / DequantizeLinear with `block_size` B > 0): a scale or zero point of x's rank
whose dim along `axis` is ceil(D / B) (D: x's dim there) and x's dims elsewhere; element i along the axis uses entry
i // B. It is gathered to x's shape with ``take(v, arange(D) // B, axis)``: a constant index when D is static (a
constant v then folds to a constant of x's shape: memory for speed), a (D,) index computed once per run (a cumsum
of block starts, its own small kernel) when D is known only at run time (the gather then costs ~4-5x the static
form's, down from ~20x: the index is an input whose dim the kernel cannot tie to x's).

Shapes are checked as the ONNX spec states them (ONNX's reference accepts more blocks than needed; the spec and
ONNX Runtime do not): a mismatch between static dims is a `MalformedNodeError` naming the node (the converter loop
adds the name), one involving a run-time dim an `OutOfRangeError` when the model runs.
"""
from __future__ import annotations

import numpy as np

from .onnx_attrs import axis_in
from .onnx_graph import MalformedNodeError
from .onnx_values import Value, const_value

_I64 = np.int64


def _ceil_div(d: int, b: int) -> int:
    return -(-d // b)


def blocked(ctx, v: Value, x: Value, axis, block_size, what: str) -> Value:
    """`v` (a blocked scale / zero point of `x`, called `what`) gathered to x's shape."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
        raise MalformedNodeError(f"block_size must be a positive integer, got {block_size!r}")
    if v.ndim != x.ndim:
        raise MalformedNodeError(f"blocked quantization (block_size={block_size}): {what} must have x's rank "
                                 f"{x.ndim}, got shape {v.shape} for x of shape {x.shape}")
    axis = axis_in(axis, max(x.ndim, 1))
    checked = True
    for k, (d, s) in enumerate(zip(x.shape, v.shape)):
        if not (isinstance(d, int) and isinstance(s, int)):
            checked = False
            continue
        want = _ceil_div(d, block_size) if k == axis else d
        if s != want:
            rule = f"ceil({d} / block_size {block_size}) = {want}" if k == axis else f"x's dim {d}"
            raise MalformedNodeError(f"blocked quantization: {what} has shape {v.shape}, x {x.shape}; its dim {k} "
                                     f"must be {rule}, got {s}")
    d = x.shape[axis]
    if isinstance(d, int):  # a constant index: a constant v folds to a constant of x's shape (a plain load)
        index = const_value(np.arange(d, dtype=_I64) // block_size)
    else:
        index = _block_index(ctx, x, axis, block_size)
    if not checked:
        index = ctx.emit("add", index, _shape_check(ctx, v, x, axis, block_size))
    return ctx.emit("take", v, index, axis=axis, mode="clip")


def _block_index(ctx, x: Value, axis: int, block_size: int) -> Value:
    """``arange(D) // block_size`` for x's run-time dim D along `axis`, as a (D,) array of its own: the count of
    block starts in 1..j, a cumsum (opaque: its own O(D) kernel, so the gather only loads it). The plain
    ``dim_arange // block_size`` fuses into the gather and divides by a run-time operand once per element of x
    (~20x the static form's time; float arithmetic, floor((j + 0.5) / B), fused the same way, ~10x)."""
    j = ctx.emit("dim_arange", x, axis=axis, dtype="int64")
    at_start = ctx.emit("equal", ctx.emit("mod", j, np.array(block_size, _I64)), np.array(0, _I64))
    starts = ctx.emit("logical_and", at_start, ctx.emit("greater", j, np.array(0, _I64)))
    return ctx.emit("cumsum", ctx.emit("cast", starts, dtype="int64"), axis=0)


def _shape_check(ctx, v: Value, x: Value, axis: int, block_size: int) -> Value:
    """A rank-0 int64 zero that raises `OutOfRangeError` at run time when v's shape is not x's with ceil(D /
    block_size) along `axis`."""
    dims = ctx.emit("shape_of", x)
    blocks = ctx.emit("divide", ctx.emit("add", dims, np.array(block_size - 1, _I64)), np.array(block_size, _I64))
    want = ctx.emit("where", np.arange(x.ndim) == axis, blocks, dims)
    wrong = ctx.emit("sum", ctx.emit("cast", ctx.emit("not_equal", ctx.emit("shape_of", v), want), dtype="int64"),
                     axis=None, keepdims=False)
    flag = ctx.emit("cast", ctx.emit("not_equal", wrong, np.array(0, _I64)), dtype="int64")
    return ctx.emit("take", np.zeros(1, _I64), flag, axis=0, mode="raise")  # index 1 of 1 element when wrong
