"""Converters of elementwise, activation and reduction ONNX operators."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .onnx_dims import fold_binary, fold_where
from .onnx_attrs import axes_in, axis_in, flag_of
from .onnx_e8m0 import E8M0, cast_to_e8m0
from .onnx_graph import ConversionError, converter
from .onnx_values import Value, const_value


def scalar(value, like: Value) -> np.ndarray:
    """A rank-0 constant of `like`'s dtype."""
    return np.asarray(value, dtype=like.dtype)


def _dims_of(v):
    return v.dims if v.dims is not None and v.ndim <= 1 else None


# ---- binary arithmetic / comparison / logic ---------------------------------------------------------------
_BINARY = {
    "Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "Equal": "equal", "Greater": "greater",
    "Less": "less", "GreaterOrEqual": "greater_equal", "LessOrEqual": "less_equal", "And": "logical_and",
    "Or": "logical_or", "Xor": "not_equal",
}


@converter(*_BINARY)
def binary(ctx, node, inputs, attrs):
    a, b = inputs
    if a.dtype != b.dtype:
        raise ConversionError(f"inputs have dtypes {a.dtype} and {b.dtype}")
    return [fold_binary(node.op_type, a, b, ctx.emit(_BINARY[node.op_type], a, b))]


@converter("Pow")
def pow_(ctx, node, inputs, attrs):
    base, exponent = inputs
    if exponent.dtype != base.dtype:
        exponent = ctx.emit("cast", exponent, dtype=base.dtype)
    if exponent.is_const and exponent.const.size == 1:
        e = float(exponent.const.reshape(()))
        if e == 2.0:
            return [ctx.emit("multiply", base, base)]
        if e == 0.5 and base.dtype.startswith("float"):
            return [ctx.emit("sqrt", base)]
    return [ctx.emit("power", base, exponent)]


@converter("Mod")
def mod(ctx, node, inputs, attrs):
    """fmod=1: C's fmod (the dividend's sign); else the divisor's sign (numpy's mod); exact for floats, infinities
    and signed zeros included; an integer divisor 0 gives 0."""
    return [ctx.emit("fmod" if attrs.get("fmod", 0) else "mod", *inputs)]


@converter("Not")
def not_(ctx, node, inputs, attrs):
    return [ctx.emit("equal", inputs[0], np.asarray(False))]


_VARIADIC = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}


@converter(*_VARIADIC)
def variadic(ctx, node, inputs, attrs):
    acc = inputs[0]
    for v in inputs[1:]:
        acc = fold_binary(node.op_type, acc, v, ctx.emit(_VARIADIC[node.op_type], acc, v))
    if node.op_type == "Mean":
        acc = ctx.emit("divide", acc, scalar(len(inputs), acc))
    return [acc]


# ---- unary ------------------------------------------------------------------------------------------------
_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
          "Erf": "erf", "Abs": "abs", "Neg": "negative", "Round": "round",
          "Floor": "floor", "Ceil": "ceil",
          **{name: name.lower() for name in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh",
                                             "Acosh", "Atanh")}}


@converter(*_UNARY)
def unary(ctx, node, inputs, attrs):
    return [ctx.emit(_UNARY[node.op_type], inputs[0])]


@converter("Identity", "Dropout")
def identity(ctx, node, inputs, attrs):
    x = inputs[0]
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        training = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        if training is not None and (not training.is_const or bool(training.const)):
            raise ConversionError("Dropout in training mode is not supported")
        return [x, _true_like(ctx, x)]
    return [x]


def _true_like(ctx, x: Value) -> Value:
    return ctx.emit("logical_or", ctx.emit("equal", x, x), ctx.emit("not_equal", x, x))


@converter("Reciprocal")
def reciprocal(ctx, node, inputs, attrs):
    return [ctx.emit("divide", scalar(1, inputs[0]), inputs[0])]


@converter("Sign")
def sign(ctx, node, inputs, attrs):
    x = inputs[0]
    pos = ctx.emit("cast", ctx.emit("greater", x, scalar(0, x)), dtype=x.dtype)
    neg = ctx.emit("cast", ctx.emit("less", x, scalar(0, x)), dtype=x.dtype)
    return [ctx.emit("subtract", pos, neg)]


@converter("IsNaN")
def isnan(ctx, node, inputs, attrs):
    return [ctx.emit("not_equal", inputs[0], inputs[0])]


@converter("IsInf")
def isinf(ctx, node, inputs, attrs):
    x = inputs[0]
    pos = ctx.emit("equal", x, scalar(np.inf, x))
    neg = ctx.emit("equal", x, scalar(-np.inf, x))
    if not attrs.get("detect_negative", 1):
        return [pos]
    if not attrs.get("detect_positive", 1):
        return [neg]
    return [ctx.emit("logical_or", pos, neg)]


@converter("Clip")
def clip(ctx, node, inputs, attrs):
    x = inputs[0]
    lo = inputs[1] if len(inputs) > 1 else None
    hi = inputs[2] if len(inputs) > 2 else None
    if lo is not None:
        x = ctx.emit("maximum", x, lo)
    if hi is not None:
        x = ctx.emit("minimum", x, hi)
    return [x]


def _where_negative(ctx, x, negative_value):
    return ctx.emit("where", ctx.emit("less", x, scalar(0, x)), negative_value, x)


@converter("LeakyRelu")
def leaky_relu(ctx, node, inputs, attrs):
    x = inputs[0]
    return [_where_negative(ctx, x, ctx.emit("multiply", x, scalar(attrs.get("alpha", 0.01), x)))]


@converter("PRelu")
def prelu(ctx, node, inputs, attrs):
    x, slope = inputs
    return [_where_negative(ctx, x, ctx.emit("multiply", x, slope))]


def _expm1_scaled(ctx, x, alpha):
    return ctx.emit("multiply", ctx.emit("subtract", ctx.emit("exp", x), scalar(1, x)), scalar(alpha, x))


@converter("Elu")
def elu(ctx, node, inputs, attrs):
    x = inputs[0]
    return [_where_negative(ctx, x, _expm1_scaled(ctx, x, attrs.get("alpha", 1.0)))]


@converter("Selu")
def selu(ctx, node, inputs, attrs):
    x = inputs[0]
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
    inner = ctx.emit("where", ctx.emit("greater", x, scalar(0, x)), x, _expm1_scaled(ctx, x, alpha))
    return [ctx.emit("multiply", inner, scalar(gamma, x))]


@converter("Celu")
def celu(ctx, node, inputs, attrs):
    x = inputs[0]
    alpha = attrs.get("alpha", 1.0)
    neg = _expm1_scaled(ctx, ctx.emit("divide", x, scalar(alpha, x)), alpha)
    return [ctx.emit("add", ctx.emit("maximum", x, scalar(0, x)), ctx.emit("minimum", neg, scalar(0, x)))]


@converter("ThresholdedRelu")
def thresholded_relu(ctx, node, inputs, attrs):
    x = inputs[0]
    above = ctx.emit("greater", x, scalar(attrs.get("alpha", 1.0), x))
    return [ctx.emit("where", above, x, scalar(0, x))]


def _hard_sigmoid(ctx, x, alpha, beta):
    y = ctx.emit("add", ctx.emit("multiply", x, scalar(alpha, x)), scalar(beta, x))
    return ctx.emit("minimum", ctx.emit("maximum", y, scalar(0, x)), scalar(1, x))


@converter("HardSigmoid")
def hard_sigmoid(ctx, node, inputs, attrs):
    return [_hard_sigmoid(ctx, inputs[0], attrs.get("alpha", 0.2), attrs.get("beta", 0.5))]


@converter("HardSwish")
def hard_swish(ctx, node, inputs, attrs):
    x = inputs[0]
    return [ctx.emit("multiply", x, _hard_sigmoid(ctx, x, 1.0 / 6.0, 0.5))]


def _softplus(ctx, x):
    # log(1 + exp(x)) computed as max(x, 0) + log(1 + exp(-|x|)), which does not overflow
    tail = ctx.emit("log", ctx.emit("add", scalar(1, x), ctx.emit("exp", ctx.emit("negative", ctx.emit("abs", x)))))
    return ctx.emit("add", ctx.emit("maximum", x, scalar(0, x)), tail)


@converter("Softplus")
def softplus(ctx, node, inputs, attrs):
    return [_softplus(ctx, inputs[0])]


@converter("Softsign")
def softsign(ctx, node, inputs, attrs):
    x = inputs[0]
    return [ctx.emit("divide", x, ctx.emit("add", scalar(1, x), ctx.emit("abs", x)))]


@converter("Mish")
def mish(ctx, node, inputs, attrs):
    x = inputs[0]
    return [ctx.emit("multiply", x, ctx.emit("tanh", _softplus(ctx, x)))]


@converter("Gelu")
def gelu(ctx, node, inputs, attrs):
    x = inputs[0]
    if attrs.get("approximate", "none") == "none":
        return [ctx.emit("gelu", x)]
    cube = ctx.emit("multiply", ctx.emit("multiply", x, x), x)
    inner = ctx.emit("multiply", ctx.emit("add", x, ctx.emit("multiply", cube, scalar(0.044715, x))),
                     scalar(np.sqrt(2.0 / np.pi), x))
    half = ctx.emit("multiply", x, scalar(0.5, x))
    return [ctx.emit("multiply", half, ctx.emit("add", scalar(1, x), ctx.emit("tanh", inner)))]


# the largest finite value of each float8 format: ONNX's saturate=1 clips to it before rounding
FLOAT8_MAX = {"float8_e4m3fn": 448.0, "float8_e4m3fnuz": 240.0, "float8_e5m2": 57344.0, "float8_e5m2fnuz": 57344.0}


def cast_to(ctx, x: Value, dtype: str, saturate: bool = True, round_mode: str = "up") -> Value:
    """x as `dtype` (numpy's / ml_dtypes' astype: round to nearest even, a format's own overflow); to a float8 dtype
    with `saturate`, values beyond its range (infinities included) become its largest finite value, NaN stays NaN;
    to float8 e8m0 as ONNX's reference (`round_mode`, see onnx_e8m0)."""
    if dtype == x.dtype:
        return x
    if dtype == E8M0:
        return cast_to_e8m0(ctx, x, saturate, round_mode)
    if dtype in FLOAT8_MAX and saturate:
        if not x.dtype.startswith(("float", "bfloat")) or x.dtype == E8M0:  # (e8m0 has no +-top to clip to)
            x = ctx.emit("cast", x, dtype="float64" if x.dtype in ("int64", "uint64", "int32", "uint32") else "float32")
        top = FLOAT8_MAX[dtype]
        if x.dtype in FLOAT8_MAX and FLOAT8_MAX[x.dtype] <= top or x.dtype == "float4_e2m1fn":
            return ctx.emit("cast", x, dtype=dtype)  # nothing to clip
        hi, lo = scalar(top, x), scalar(-top, x)
        x = ctx.emit("where", ctx.emit("greater", x, hi), hi, ctx.emit("where", ctx.emit("less", x, lo), lo, x))
    return ctx.emit("cast", x, dtype=dtype)


@converter("Cast")
def cast(ctx, node, inputs, attrs):
    from .onnx import onnx_dtype

    x = inputs[0]
    dtype = onnx_dtype(attrs["to"])
    if dtype == x.dtype:
        return [x]
    out = cast_to(ctx, x, dtype, bool(attrs.get("saturate", 1)), attrs.get("round_mode", "up"))
    if _dims_of(x) is not None and dtype in ("int32", "int64") and out.dims is None and not out.is_const:
        out = replace(out, dims=x.dims)
    return [out]


@converter("CastLike")
def cast_like(ctx, node, inputs, attrs):
    x, like = inputs
    return [cast_to(ctx, x, like.dtype, bool(attrs.get("saturate", 1)), attrs.get("round_mode", "up"))]


@converter("Where")
def where(ctx, node, inputs, attrs):
    return [fold_where(*inputs, ctx.emit("where", *inputs))]


# ---- reductions -------------------------------------------------------------------------------------------
def reduce_axes(ctx, node, inputs, attrs):
    """The reduced axes (None = all) or "noop" — from the `axes` input (ReduceSum 13+, all 18+) or attribute."""
    axes = attrs.get("axes")
    if len(inputs) > 1 and inputs[1] is not None:
        if not inputs[1].is_const:
            raise ConversionError("reduction axes must be a constant")
        axes = [int(a) for a in inputs[1].const.reshape(-1)]
    if not axes:
        return "noop" if attrs.get("noop_with_empty_axes", 0) else None
    rank = inputs[0].ndim
    return tuple(sorted(axes_in(axes, rank))) if rank else None


def _reduce(ctx, op, x, axes, keepdims):
    if x.ndim == 0:
        return x
    return ctx.emit(op, x, axis=axes, keepdims=bool(keepdims))


_REDUCE = {"ReduceSum": "sum", "ReduceMean": "mean", "ReduceMax": "max", "ReduceMin": "min", "ReduceProd": "prod"}


@converter(*_REDUCE, "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp")
def reduce(ctx, node, inputs, attrs):
    x = inputs[0]
    axes = reduce_axes(ctx, node, inputs, attrs)
    keep = flag_of(attrs.get("keepdims", 1), "keepdims")
    op = node.op_type
    if axes == "noop":
        if op in ("ReduceSumSquare",):
            return [ctx.emit("multiply", x, x)]
        if op == "ReduceL1":
            return [ctx.emit("abs", x)]
        if op == "ReduceL2":
            return [ctx.emit("abs", x)]
        if op == "ReduceLogSum":
            return [ctx.emit("log", x)]
        return [x]
    if op in _REDUCE:
        return [_reduce(ctx, _REDUCE[op], x, axes, keep)]
    if op == "ReduceSumSquare":
        return [_reduce(ctx, "sum", ctx.emit("multiply", x, x), axes, keep)]
    if op == "ReduceL1":
        return [_reduce(ctx, "sum", ctx.emit("abs", x), axes, keep)]
    if op == "ReduceL2":
        return [ctx.emit("sqrt", _reduce(ctx, "sum", ctx.emit("multiply", x, x), axes, keep))]
    if op == "ReduceLogSum":
        return [ctx.emit("log", _reduce(ctx, "sum", x, axes, keep))]
    top = _reduce(ctx, "max", x, axes, True)
    total = _reduce(ctx, "sum", ctx.emit("exp", ctx.emit("subtract", x, top)), axes, True)
    out = ctx.emit("add", ctx.emit("log", total), top)
    if not keep:
        out = ctx.emit("squeeze", out, axis=axes if axes is not None else tuple(range(x.ndim)))
    return [out]


@converter("ArgMax", "ArgMin")
def argmax(ctx, node, inputs, attrs):
    x = inputs[0]
    if x.dtype == "bool":
        raise ConversionError(f"{node.op_type} of bool is not supported")
    if node.op_type == "ArgMin":
        if x.dtype == "uint8":
            raise ConversionError(f"ArgMin of {x.dtype} is not supported")
        x = ctx.emit("negative", x)
    axis = axis_in(attrs.get("axis", 0), max(x.ndim, 1))
    if x.ndim and x.shape[axis] == 0:  # numpy and ONNX Runtime refuse it: there is no index to return
        raise ConversionError(f"{node.op_type} over axis {axis} of size 0")
    keepdims = flag_of(attrs.get("keepdims", 1), "keepdims")
    if not attrs.get("select_last_index", 0) or x.ndim == 0:
        return [ctx.emit("argmax", x, axis=axis, keepdims=keepdims)]
    # the last maximum: the first one of the input reversed along the axis, counted from the end
    from .onnx_ops_dynamic import dim_of

    last = ctx.emit("subtract", dim_of(ctx, x, axis), np.array(1, np.int64))
    backwards = ctx.emit("arange", last, np.array(-1, np.int64), np.array(-1, np.int64), dtype="int64")
    first = ctx.emit("argmax", ctx.emit("take", x, backwards, axis=axis, mode="clip"), axis=axis, keepdims=keepdims)
    return [ctx.emit("subtract", last, first)]


def const_of(v: Value, what: str) -> np.ndarray:
    if not v.is_const:
        raise ConversionError(f"{what} must be a constant")
    return v.const


__all__ = ["scalar", "const_of", "reduce_axes", "const_value"]
