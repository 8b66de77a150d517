"""Run-time axes: a node whose `axes` arrive as a run-time tensor is converted once per possible value and the
copies are chosen by an IR `if` chain on the value.

The axes decide which output dims change, so the converters need them while typing the graph; but their length
is static and each element is an axis of a known rank, so the possible values are few (a reduction over 2 of 4
axes: 6 sets). Each copy is typed with its constant axes; the `if` joins the copies' types (a dim that differs
becomes `Any`), and the chosen copy runs. Sets (Reduce*, Squeeze, Unsqueeze) match in any order; ordered axes
(Slice, Pad, whose other inputs are per axis) match position by position. Negative axes count from the end.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ..errors import NimbleError
from ..ir.builder import if_
from .onnx_graph import ConversionError
from .onnx_values import Value, const_value

MAX_COPIES = 64

_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1",
           "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
# op type -> (input position of the axes, "set" or "ordered")
RUNTIME_AXES = {op: (1, "set") for op in _REDUCE} | {
    "Squeeze": (1, "set"), "Unsqueeze": (1, "set"), "Slice": (3, "ordered"), "Pad": (3, "ordered"),
    "CumSum": (1, "set"), "CumProd": (1, "set"),
}


def can_specialize(node, inputs) -> bool:
    spec = RUNTIME_AXES.get(node.op_type)
    if spec is None or len(inputs) <= spec[0] or inputs[spec[0]] is None:
        return False
    axes = inputs[spec[0]]
    return not axes.is_const and axes.ndim <= 1 and all(isinstance(d, int) for d in axes.shape)


def convert_per_axes(ctx, node, inputs, attrs, convert) -> list[Value]:
    """`convert(ctx, node, inputs, attrs)` once per possible value of the run-time axes input, chosen at run time."""
    from .onnx_control import _join, _scalar_bool

    position, kind = RUNTIME_AXES[node.op_type]
    axes = inputs[position]
    count = int(np.prod(axes.shape, dtype=np.int64))
    rank = inputs[0].ndim + (count if node.op_type == "Unsqueeze" else 0)
    if count > rank:
        raise ConversionError(f"input {position} (axes) has {count} elements, more than the rank {rank}")
    n_copies = math.comb(rank, count) if kind == "set" else math.perm(rank, count)
    if n_copies > MAX_COPIES:
        raise ConversionError(f"input {position} (axes) is a run-time value with {n_copies} possible values (rank "
                              f"{rank}, {count} axes), more than {MAX_COPIES} copies of the node; make it a constant")
    choices = (itertools.combinations if kind == "set" else itertools.permutations)(range(rank), count)
    choices = [np.array(c, np.int64) for c in choices]
    flat = ctx.emit("reshape", ctx.emit("cast", axes, dtype="int64"), newshape=(count,))
    normal = ctx.emit("where", ctx.emit("less", flat, np.array(0, np.int64)),
                      ctx.emit("add", flat, np.array(rank, np.int64)), flat)
    normal = _checked_axes(ctx, normal, count, rank)
    copies, types, refused = [], None, None
    for choice in choices:
        child = ctx.child()
        fixed = list(inputs)
        fixed[position] = const_value(choice)
        try:
            outputs = convert(child, node, fixed, attrs)
        except NimbleError as err:  # a value the input types rule out (Squeeze of a dim that is not 1, ...)
            refused = err
            continue
        branch_types = [v.type for v in outputs]
        types = branch_types if types is None else [_join(a, b) for a, b in zip(types, branch_types)]
        copies.append((choice, child, outputs))
    if not copies:
        raise ConversionError(f"no value of the run-time axes (input {position}) can be converted; the last "
                              f"refused: {refused}")
    branches = [(choice, child.result([_loosened(child, v, t) for v, t in zip(outputs, types)]))
                for choice, child, outputs in copies]
    expr = branches[-1][1]  # the last value is the one left when no other matched
    for choice, body in reversed(branches[:-1]):
        expr = if_(_matches(ctx, normal, choice, kind, _scalar_bool).expr, body, expr)
    if len(types) == 1:
        return [ctx.bind(expr, types[0], f"{node.op_type}_axes")]
    return ctx.tuple_fields(expr, types, f"{node.op_type}_axes")


def _checked_axes(ctx, normal: Value, count: int, rank: int) -> Value:
    """``normal`` when its axes are distinct and in ``[0, rank)``; else an ``OutOfRangeError`` at run time (an
    index 1 into a 1-element table), never a copy chosen by default."""
    in_range = ctx.emit("logical_and", ctx.emit("greater_equal", normal, np.array(0, np.int64)),
                        ctx.emit("less", normal, np.array(rank, np.int64)))
    good = ctx.emit("sum", ctx.emit("cast", in_range, dtype="int64"), axis=None, keepdims=False)
    pairs = ctx.emit("equal", ctx.emit("reshape", normal, newshape=(-1, 1)), ctx.emit("reshape", normal, newshape=(1, -1)))
    same = ctx.emit("sum", ctx.emit("cast", pairs, dtype="int64"), axis=None, keepdims=False)
    # 0 when every axis is in range and no two are equal (the equal pairs are the diagonal), else >= 1
    bad = ctx.emit("add", ctx.emit("subtract", np.array(count, np.int64), good),
                   ctx.emit("subtract", same, np.array(count, np.int64)))
    flag = ctx.emit("cast", ctx.emit("not_equal", bad, np.array(0, np.int64)), dtype="int64")
    zero = ctx.emit("take", np.zeros(1, np.int64), flag, axis=0, mode="raise")  # raises when flag is 1
    return ctx.emit("add", normal, zero)


def _loosened(ctx, v: Value, joint) -> Value:
    """`v` typed with the joint type's run-time dims (the IR's `if` needs branches whose static dims agree)."""
    if v.type == joint:
        return v
    v = ctx.plain(v)
    return ctx.emit("dyn.reshape", v, ctx.emit("shape_of", v), type_=joint)


def _matches(ctx, normal: Value, choice: np.ndarray, kind: str, scalar_bool) -> Value:
    """A scalar bool: the run-time axes equal `choice` (as a set of distinct axes, or element by element)."""
    if kind == "set":
        hits = ctx.emit("equal", ctx.emit("reshape", normal, newshape=(-1, 1)), choice.reshape(1, -1))
    else:
        hits = ctx.emit("equal", normal, choice)
    found = ctx.emit("sum", ctx.emit("cast", hits, dtype="int32"), axis=None, keepdims=False)
    return scalar_bool(ctx, ctx.emit("equal", found, np.array(len(choice), np.int32)))
