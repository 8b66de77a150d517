"""Neural-network operators: dense, matmul, batch_matmul, softmax, log_softmax, layer_norm, batch_norm."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from .registry import OpPattern, register
from .relations import (
    FLOAT_DTYPES,
    broadcast_dim,
    dims_equal,
    normalize_axis,
    rank_at_least,
    rank_is,
    same_dtype,
    tensor_arg,
)


# ---- dense: x (..., k) @ weight (m, k)^T -> (..., m), the layout of torch.nn.Linear ---------------------------
def _dense_rel(x, weight):
    x = tensor_arg("dense", "x", x)
    weight = tensor_arg("dense", "weight", weight)
    rank_at_least("dense", "x", x, 1)
    rank_is("dense", "weight", weight, 2)
    same_dtype("dense", ("x", x), ("weight", weight))
    dims_equal("dense", x.shape[-1], weight.shape[1], "x has {a} columns, weight expects {b}")
    return TensorType(x.shape[:-1] + (weight.shape[0],), x.dtype)


dense = register(
    "dense", args=("x", "weight"), type_rel=_dense_rel,
    shape_func=lambda x, weight: [np.concatenate([x[:-1], weight[:1]])],
    reference=lambda x, weight: np.matmul(x, weight.T), pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="x (..., k) times weight (m, k) transposed: (..., m), like torch.nn.Linear without bias (add it with add).",
)


# ---- matmul: numpy's matmul for rank >= 2, batch dims broadcast --------------------------------------------
def _matmul_rel(a, b):
    a, b = tensor_arg("matmul", "a", a), tensor_arg("matmul", "b", b)
    rank_at_least("matmul", "a", a, 2)
    rank_at_least("matmul", "b", b, 2)
    same_dtype("matmul", ("a", a), ("b", b))
    dims_equal("matmul", a.shape[-1], b.shape[-2], "a has {a} columns, b has {b} rows")
    batch = _broadcast_batch("matmul", a.shape[:-2], b.shape[:-2])
    return TensorType(batch + (a.shape[-2], b.shape[-1]), a.dtype)


def _broadcast_batch(op, a, b) -> tuple:
    ndim = max(len(a), len(b))
    a, b = (1,) * (ndim - len(a)) + a, (1,) * (ndim - len(b)) + b
    out = []
    for axis, (x, y) in enumerate(zip(a, b)):
        d = broadcast_dim(x, y)
        if d is None:
            raise ShapeError(f"{op}: batch dims {x} and {y} at axis {axis} do not broadcast")
        out.append(d)
    return tuple(out)


def _matmul_shape(a, b):
    batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    return [np.array(batch + (a[-2], b[-1]), dtype=np.int64)]


matmul = register(
    "matmul", args=("a", "b"), type_rel=_matmul_rel, shape_func=_matmul_shape, reference=np.matmul,
    pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="a (..., n, k) @ b (..., k, m) -> (..., n, m), numpy semantics for rank >= 2 (batch dims broadcast).",
)


# ---- batch_matmul: x (b, n, k) @ y (b, m, k)^T like TVM; transpose_b=False takes y as (b, k, m) -------------
def _batch_matmul_rel(x, y, transpose_b):
    x, y = tensor_arg("batch_matmul", "x", x), tensor_arg("batch_matmul", "y", y)
    rank_is("batch_matmul", "x", x, 3)
    rank_is("batch_matmul", "y", y, 3)
    same_dtype("batch_matmul", ("x", x), ("y", y))
    k_y, m = (y.shape[2], y.shape[1]) if transpose_b else (y.shape[1], y.shape[2])
    dims_equal("batch_matmul", x.shape[2], k_y, "x has {a} columns, y expects {b}")
    batch = _broadcast_batch("batch_matmul", x.shape[:1], y.shape[:1])
    return TensorType(batch + (x.shape[1], m), x.dtype)


def _batch_matmul_shape(x, y, transpose_b):
    m = y[1] if transpose_b else y[2]
    batch = np.broadcast_shapes((int(x[0]),), (int(y[0]),))
    return [np.array(batch + (x[1], m), dtype=np.int64)]


def _batch_matmul_ref(x, y, transpose_b):
    return np.matmul(x, np.swapaxes(y, 1, 2) if transpose_b else y)


batch_matmul = register(
    "batch_matmul", args=("x", "y"), attrs={"transpose_b": True}, type_rel=_batch_matmul_rel,
    shape_func=_batch_matmul_shape, reference=_batch_matmul_ref, pattern=OpPattern.OUT_ELEMWISE_FUSABLE,
    doc="x (b, n, k) @ y (b, m, k)^T -> (b, n, m) as in TVM; with transpose_b=False y is (b, k, m). "
    "A batch of 1 broadcasts.",
)


# ---- softmax / log_softmax ---------------------------------------------------------------------------------
def _softmax_rel(name):
    def rel(x, axis):
        x = tensor_arg(name, "x", x, FLOAT_DTYPES)
        normalize_axis(name, axis, x.ndim)
        return x

    return rel


def _softmax_ref(x, axis):
    if x.size == 0:
        return x.copy()
    shifted = x.astype(np.float64) - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


def _log_softmax_ref(x, axis):
    if x.size == 0:
        return x.copy()
    shifted = x.astype(np.float64) - np.max(x, axis=axis, keepdims=True)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))).astype(x.dtype)


softmax = register(
    "softmax", args=("x",), attrs={"axis": -1}, type_rel=_softmax_rel("softmax"), shape_func=lambda x, axis: [x],
    reference=_softmax_ref, pattern=OpPattern.OPAQUE, doc="exp(x) / sum(exp(x)) along axis.",
)
log_softmax = register(
    "log_softmax", args=("x",), attrs={"axis": -1}, type_rel=_softmax_rel("log_softmax"),
    shape_func=lambda x, axis: [x], reference=_log_softmax_ref, pattern=OpPattern.OPAQUE,
    doc="log(softmax(x)) along axis, computed stably.",
)


# ---- normalisation -----------------------------------------------------------------------------------------
def _vector_param(op, name, t, expected_dim, what):
    t = tensor_arg(op, name, t)
    rank_is(op, name, t, 1)
    dims_equal(op, expected_dim, t.shape[0], f"{what} has length {{a}}, but {name} has length {{b}}")
    return t


def _layer_norm_rel(x, gamma, beta, axis, epsilon):
    x = tensor_arg("layer_norm", "x", x, FLOAT_DTYPES)
    ax = normalize_axis("layer_norm", axis, x.ndim)
    for name, t in (("gamma", gamma), ("beta", beta)):
        _vector_param("layer_norm", name, t, x.shape[ax], f"x's axis {axis}")
        same_dtype("layer_norm", ("x", x), (name, t))
    return x


def _layer_norm_ref(x, gamma, beta, axis, epsilon):
    if x.size == 0:
        return x.copy()
    ax = axis % x.ndim
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=ax, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=ax, keepdims=True)
    shape = [1] * x.ndim
    shape[ax] = -1
    out = (x64 - mean) / np.sqrt(var + epsilon) * gamma.reshape(shape) + beta.reshape(shape)
    return out.astype(x.dtype)


layer_norm = register(
    "layer_norm", args=("x", "gamma", "beta"), attrs={"axis": -1, "epsilon": 1e-5}, type_rel=_layer_norm_rel,
    shape_func=lambda x, gamma, beta, axis, epsilon: [x], reference=_layer_norm_ref, pattern=OpPattern.OPAQUE,
    doc="(x - mean) / sqrt(var + epsilon) * gamma + beta, statistics along axis (biased variance, like torch).",
)


def _batch_norm_rel(x, gamma, beta, moving_mean, moving_var, axis, epsilon):
    x = tensor_arg("batch_norm", "x", x, FLOAT_DTYPES)
    ax = normalize_axis("batch_norm", axis, x.ndim)
    named = (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean), ("moving_var", moving_var))
    for name, t in named:
        _vector_param("batch_norm", name, t, x.shape[ax], f"x's channel axis {axis}")
        same_dtype("batch_norm", ("x", x), (name, t))
    return x


def _batch_norm_ref(x, gamma, beta, moving_mean, moving_var, axis, epsilon):
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    scale = gamma.astype(np.float64) / np.sqrt(moving_var.astype(np.float64) + epsilon)
    out = (x - moving_mean.reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)
    return out.astype(x.dtype)


batch_norm = register(
    "batch_norm", args=("x", "gamma", "beta", "moving_mean", "moving_var"), attrs={"axis": 1, "epsilon": 1e-5},
    type_rel=_batch_norm_rel, shape_func=lambda x, *params, axis, epsilon: [x], reference=_batch_norm_ref,
    pattern=OpPattern.BROADCAST,
    doc="Inference batch norm: (x - moving_mean) / sqrt(moving_var + epsilon) * gamma + beta along axis.",
)
