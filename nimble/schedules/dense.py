"""dense: out = epilogue(x(n, k) @ w(m, k)^T + bias), the workhorse of LSTM and BERT.

Scheduled by the shared micro-kernel of ``gemm.py`` (its docstring gives the knobs and the
fallback heuristic). The weight is constant in a compiled model (attr ``weight="const"``):
the kernel then takes it packed once by ``pack_weight``; with ``weight="input"`` the kernel
packs it itself on every call.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from .. import te
from .gemm import GemmOperands, gemm_compute, gemm_fallback, gemm_refit, gemm_schedule, gemm_space, pack_columns
from .base import Instance, Signature, Template, TemplateError

EPILOGUES = ("relu", "gelu", "gelu_tanh", "tanh", "sigmoid", "residual")
GELU_TANH_C = math.sqrt(2.0 / math.pi)


def gelu_tanh(v, tanh):
    """GPT-2's GELU, ``0.5 v (1 + tanh(sqrt(2 / pi) (v + 0.044715 v^3)))``, with ``tanh`` te's or numpy's."""
    return v * 0.5 * (tanh((v + v * v * v * 0.044715) * GELU_TANH_C) + 1.0)


def pack_weight(w: np.ndarray, bn: int, dtype=None) -> np.ndarray:
    """w(m, k) -> wp(ceil(m / bn), k, bn) with wp[a, r, b] = w[a*bn + b, r] (zero padded), stored as ``dtype``
    (default w's)."""
    wp = pack_columns(np.ascontiguousarray(w.T), bn)
    return wp if dtype is None or wp.dtype == np.dtype(dtype) else wp.astype(dtype)


def half_exact(w: np.ndarray) -> bool:
    """Whether every value of a float32 weight is a float16 one (a float16 model computed in float32): the dense
    template then stores it packed as float16, half the bytes to stream, widened exactly on load."""
    if w.dtype != np.float32:
        return False
    key = id(w)
    found = _HALF_EXACT.get(key)
    if found is None or found[0]() is not w:
        with np.errstate(over="ignore"):
            found = (weakref.ref(w), bool(np.array_equal(w.astype(np.float16).astype(np.float32), w)))
        _HALF_EXACT[key] = found
    return found[1]


_HALF_EXACT: dict = {}  # id(weight) -> (weakref to it, answer): the check reads every value, once


def apply_epilogue(name: str, v, extra=None):
    """The te (or numpy, for the reference) expression of one epilogue step."""
    if name == "relu":
        return te.max_(v, 0.0) if isinstance(v, te.Expr) else np.maximum(v, 0)
    if name == "gelu":
        if isinstance(v, te.Expr):
            return v * 0.5 * (te.erf(v * (1 / math.sqrt(2))) + 1.0)
        from math import erf

        return v * 0.5 * (1 + np.vectorize(erf, otypes=[np.float64])(v.astype("float64") / math.sqrt(2))).astype(v.dtype)
    if name == "gelu_tanh":
        if isinstance(v, te.Expr):
            return gelu_tanh(v, te.tanh)
        return gelu_tanh(v.astype("float64"), np.tanh).astype(v.dtype)
    if name == "tanh":
        return te.tanh(v) if isinstance(v, te.Expr) else np.tanh(v)
    if name == "sigmoid":
        return te.sigmoid(v) if isinstance(v, te.Expr) else 1 / (1 + np.exp(-v))
    if name == "residual":
        return v + extra
    raise TemplateError(f"dense: unknown epilogue {name!r}; known: {EPILOGUES}")


def _dims(sig: Signature):
    if len(sig.args) < 2:
        raise TemplateError("dense: expected inputs x(n, k) and w(m, k)")
    (xs, _), (ws, _) = sig.args[0], sig.args[1]
    if len(xs) != 2 or len(ws) != 2:
        raise TemplateError(f"dense: x and w must be 2-D, got {xs} and {ws}")
    if xs[1] != ws[1]:
        raise TemplateError(f"dense: x has {xs[1]} columns, weight expects {ws[1]}")
    if not isinstance(ws[0], int) or not isinstance(ws[1], int):
        raise TemplateError(f"dense: the weight shape must be static, got {ws}")
    return xs[0], ws[1], ws[0]


class Dense(Template):
    def num_inputs(self, sig):
        return len(sig.args)

    def space(self, sig: Signature):
        n, k, m = _dims(sig)
        return gemm_space("dense", n, k)

    def fallback(self, sig, space, hints=None):
        n, k, m = _dims(sig)
        return gemm_fallback(space, n, k, m, hints, streamed=sig.attr("weight", "input") == "const")

    def refit(self, sig, space, cfg, dim, n):
        n_dim, _, _ = _dims(sig)
        return gemm_refit(space, cfg, n) if dim == n_dim else None

    def instantiate(self, sig, cfg) -> Instance:
        n_dim, k, m = _dims(sig)
        bias = bool(sig.attr("bias", False))
        epilogue = tuple(sig.attr("epilogue", ()))
        const_weight = sig.attr("weight", "input") == "const"
        weight_dtype = sig.attr("weight_dtype", sig.args[1][1])
        if weight_dtype != sig.args[1][1] and not const_weight:
            raise TemplateError("dense: weight_dtype applies to a constant weight (weight='const') only")
        bn = cfg["tile_cols"]
        names = ["x", "w"] + (["bias"] if bias else []) + [f"residual{i}" for i, e in enumerate(epilogue) if e == "residual"]
        if len(names) != len(sig.args):
            raise TemplateError(f"dense: attrs ask for inputs {names}, signature has {len(sig.args)}")
        sig_w = sig
        if const_weight:  # the kernel takes the packed weight
            args = list(sig.args)
            args[1] = ((-(-m // bn), k, bn), weight_dtype)
            sig_w = Signature(tuple(args), sig.attrs)
        tensors, dims = sig_w.placeholders(names)
        extra = list(tensors[2:])

        def finish(v, i, j):
            pos = 0
            if bias:
                v = v + extra[0][j]
                pos = 1
            for e in epilogue:
                if e == "residual":
                    v = apply_epilogue(e, v, extra[pos][i, j])
                    pos += 1
                else:
                    v = apply_epilogue(e, v)
            return v

        ops = GemmOperands(tensors[0], k, m, tensors[1], "packed" if const_weight else "mk")
        out, D, pack = gemm_compute(ops, bn, finish)
        s = te.create_schedule(out)
        gemm_schedule(s, out, D, pack, cfg, weight=tensors[1])
        residues = [{n_dim: cfg["tile_rows"]}] if isinstance(n_dim, str) and cfg["tile_rows"] > 1 else []
        prepare = None
        if const_weight:
            def prepare(inputs, bn=bn):
                inputs = list(inputs)
                inputs[1] = pack_weight(inputs[1], bn, weight_dtype)
                return inputs
        return Instance(s, list(tensors) + [out], dims, residues, prepare)

    def random_inputs(self, sig, dims, rng):
        inputs = super().random_inputs(sig, dims, rng)
        if sig.attr("weight_dtype") == "float16":  # the values such a weight holds
            inputs[1] = inputs[1].astype(np.float16).astype(inputs[1].dtype)
        return inputs

    def reference(self, sig, inputs):
        x, w = inputs[0], inputs[1]
        v = x @ w.T
        pos = 2
        if sig.attr("bias", False):
            v = v + inputs[2]
            pos = 3
        for e in sig.attr("epilogue", ()):
            if e == "residual":
                v = apply_epilogue(e, v, inputs[pos])
                pos += 1
            else:
                v = apply_epilogue(e, v)
        return [v.astype(x.dtype)]

    def flops(self, sig, dims):
        n, k, m = _dims(sig)
        n = dims[n] if isinstance(n, str) else n
        return 2 * n * k * m


def dense_signature(n, k: int, m: int, bias: bool = False, epilogue=(), weight: str = "input", dtype="float32",
                    weight_dtype: str | None = None):
    """The signature of a dense call; n may be a symbolic dim name. ``weight_dtype`` "float16": a constant weight
    whose values are all float16 ones, stored packed as float16 (``half_exact``)."""
    args = [((n, k), dtype), ((m, k), dtype)]
    if bias:
        args.append(((m,), dtype))
    for e in epilogue:
        if e == "residual":
            args.append(((n, m), dtype))
    extra = {"weight_dtype": weight_dtype} if weight_dtype not in (None, dtype) else {}
    return Signature.make(args, bias=bias, epilogue=list(epilogue), weight=weight, **extra)

