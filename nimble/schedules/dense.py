"""dense: out = epilogue(x(n, k) @ w(m, k)^T + bias), the workhorse of LSTM and BERT.

The micro-kernel keeps a ``tile_rows x tile_cols`` block of the output in vector registers
(tile_cols / 16 zmm per row), loops over k loading one packed weight vector row and
broadcasting one x element per tile row, so each weight load feeds ``tile_rows`` FMAs. The
weight is used in a blocked layout ``wp[m // bn, k, bn]`` (bn = tile_cols) whose rows are
contiguous vectors: packed once by ``pack_weight`` when the weight is a constant
(``weight="const"``), else by a packing stage inside the kernel (``weight="input"``).

A tail tile of rows (n not a multiple of tile_rows) is overcomputed: x rows are read clamped
to n - 1 and only real rows are stored, so the hot loop never branches.

Knobs: tile_rows, tile_cols, k_unroll (split of k, inner part unrolled), col_block (weight
panels of col_block x tile_cols columns kept in L2), order (rows or columns of tiles outer
inside a panel), parallel (outer loop, fused outer loops, or none).

Fallback (documented heuristic): tile_cols 32 (2 zmm; 16 when m < 32); tile_rows from the
representative n: 1, 2, 4 for n <= 1, 2, 4, else 6 (12 accumulators + 2 weight vectors + 1
broadcast fit the 32 zmm registers); k_unroll 4; col_block so that a weight panel is about
256 KiB (half of L2); rows outer; parallel over the fused outer loops.
"""
from __future__ import annotations

import math

import numpy as np

from .. import te
from .registry import Instance, Signature, Template, TemplateError, template
from .space import ConfigSpace

EPILOGUES = ("relu", "gelu", "tanh", "sigmoid", "residual")


def pack_weight(w: np.ndarray, bn: int) -> np.ndarray:
    """w(m, k) -> wp(ceil(m / bn), k, bn) with wp[a, r, b] = w[a*bn + b, r] (zero padded)."""
    m, k = w.shape
    mo = -(-m // bn)
    padded = np.zeros((mo * bn, k), w.dtype)
    padded[:m] = w
    return np.ascontiguousarray(padded.reshape(mo, bn, k).transpose(0, 2, 1))


def apply_epilogue(name: str, v, extra=None):
    """The te (or numpy, for the reference) expression of one epilogue step."""
    if name == "relu":
        return te.max_(v, 0.0) if isinstance(v, te.Expr) else np.maximum(v, 0)
    if name == "gelu":
        if isinstance(v, te.Expr):
            return v * 0.5 * (te.erf(v * (1 / math.sqrt(2))) + 1.0)
        from math import erf

        return v * 0.5 * (1 + np.vectorize(erf, otypes=[np.float64])(v.astype("float64") / math.sqrt(2))).astype(v.dtype)
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
    (xs, xdt), (ws, wdt) = sig.args[0], sig.args[1]
    if len(xs) != 2 or len(ws) != 2:
        raise TemplateError(f"dense: x and w must be 2-D, got {xs} and {ws}")
    if xs[1] != ws[1]:
        raise TemplateError(f"dense: x has {xs[1]} columns, weight expects {ws[1]}")
    if not isinstance(ws[0], int) or not isinstance(ws[1], int):
        raise TemplateError(f"dense: the weight shape must be static, got {ws}")
    return xs[0], ws[1], ws[0]


@template("dense", "llvm")
class Dense(Template):
    def num_inputs(self, sig):
        return len(sig.args)

    def space(self, sig: Signature) -> ConfigSpace:
        n, k, m = _dims(sig)
        s = ConfigSpace("dense")
        s.define_split("tile_rows", n if isinstance(n, int) else None, candidates=(1, 2, 3, 4, 5, 6, 8), max_factor=8)
        s.define_knob("tile_cols", (16, 32, 48, 64))
        s.define_split("k_unroll", k, candidates=(1, 2, 4, 8), max_factor=8)
        s.define_knob("col_block", (1, 2, 4, 8, 16, 32))
        s.define_reorder("order", (("rows_outer",), ("cols_outer",)))
        s.define_annotate("parallel", ("fused", "outer", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        n, k, m = _dims(sig)
        rep = n if isinstance(n, int) else (hints or {}).get(n, 64)
        rows = 1 if rep <= 1 else 2 if rep <= 2 else 4 if rep <= 4 else 6
        rows = rows if rows in space.knobs["tile_rows"].values else space.knobs["tile_rows"].values[-1]
        cols = 32 if m >= 32 else 16
        ku = 4 if 4 in space.knobs["k_unroll"].values else 1
        panel = max(1, (256 * 1024) // max(1, k * cols * 4))
        cb = max(c for c in space.knobs["col_block"].values if c <= panel)
        return space.config(tile_rows=rows, tile_cols=cols, k_unroll=ku, col_block=cb, order=("rows_outer",),
                            parallel="fused")

    def instantiate(self, sig, cfg) -> Instance:
        n_dim, k, m = _dims(sig)
        bias = bool(sig.attr("bias", False))
        epilogue = tuple(sig.attr("epilogue", ()))
        const_weight = sig.attr("weight", "input") == "const"
        ty, bn, ku = cfg["tile_rows"], cfg["tile_cols"], cfg["k_unroll"]
        mo = -(-m // bn)
        names = ["x", "w"] + (["bias"] if bias else []) + [f"residual{i}" for i, e in enumerate(epilogue) if e == "residual"]
        if len(names) != len(sig.args):
            raise TemplateError(f"dense: attrs ask for inputs {names}, signature has {len(sig.args)}")
        sig_w = sig
        if const_weight:  # the kernel takes the packed weight
            args = list(sig.args)
            args[1] = ((mo, k, bn), args[1][1])
            sig_w = Signature(tuple(args), sig.attrs)
        tensors, dims = sig_w.placeholders(names)
        x, w = tensors[0], tensors[1]
        n = x.shape[0]
        r = te.reduce_axis(k, "r")
        if const_weight:
            wp = w
        else:
            def pack(a, kk, b):
                j = a * bn + b
                if m % bn == 0:
                    return w[j, kk]
                return te.select(j < m, w[te.min_(j, m - 1), kk], 0.0)

            wp = te.compute((mo, k, bn), pack, name="wp")
        last = n - 1
        D = te.compute((n, m), lambda i, j: te.sum(x[te.min_(i, last), r] * wp[j // bn, r, j % bn], axis=r), name="dense")
        extra = list(tensors[2:])

        def out_fn(i, j):
            v = D[i, j]
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

        out = te.compute((n, m), out_fn, name="out")
        s = te.create_schedule(out)
        i, j = s[out].axis
        io, ii = s[out].split(i, ty)
        jo, ji = s[out].split(j, bn)
        jb, jp = s[out].split(jo, cfg["col_block"])
        rows_outer = cfg["order"] == ("rows_outer",)
        s[out].reorder(*((jb, io, jp) if rows_outer else (jb, jp, io)), ii, ji)
        at = jp if rows_outer else io
        s[out].vectorize(ji)
        if cfg["parallel"] == "fused":
            s[out].parallel(s[out].fuse(jb, io if rows_outer else jp))
        elif cfg["parallel"] == "outer":
            s[out].parallel(jb)
        s[D].compute_at(s[out], at)
        s[D].overcompute()
        di, dj = s[D].axis
        (dr,) = s[D].reduce_axis
        dro, dri = s[D].split(dr, ku)
        s[D].reorder(dro, dri, di, dj)
        s[D].unroll(dri)
        s[D].unroll(di)
        s[D].vectorize(dj)
        if not const_weight:
            a, kk, b = s[wp].axis
            s[wp].reorder(a, b, kk)
            s[wp].parallel(a)
        residues = [{n_dim: ty}] if isinstance(n_dim, str) and ty > 1 else []
        prepare = None
        if const_weight:
            def prepare(inputs, bn=bn):
                inputs = list(inputs)
                inputs[1] = pack_weight(inputs[1], bn)
                return inputs
        return Instance(s, list(tensors) + [out], dims, residues, prepare)

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


def dense_signature(n, k: int, m: int, bias: bool = False, epilogue=(), weight: str = "input", dtype="float32"):
    """The signature of a dense call; n may be a symbolic dim name."""
    args = [((n, k), dtype), ((m, k), dtype)]
    if bias:
        args.append(((m,), dtype))
    for e in epilogue:
        if e == "residual":
            args.append(((n, m), dtype))
    return Signature.make(args, bias=bias, epilogue=list(epilogue), weight=weight)

