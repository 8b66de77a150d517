"""dense_integer: out(n, m) int32 = (x(n, k) - x_zero_point) @ w(m, k)^T, uint8 x and a constant int8 w.

The micro-kernel of ``gemm.py`` over groups of four bytes: a step of the reduction reads four consecutive bytes
of x (one 32-bit broadcast) and four bytes of each of tile_cols weight columns, ``wp[j // bn, r, j % bn, 0..3]``
(``pack_weight``: 4 x tile_cols contiguous bytes a step), and adds their ``te.dot4`` to int32 accumulators: one
``vpdpbusd`` per 16 columns where the CPU has AVX512-VNNI (64 multiply-adds an instruction, 4x the float32 FMA
rate), widened integer arithmetic elsewhere. The zero point is applied after the sum, ``acc - zp * colsum[j]``
with the weight's column sums computed when it is packed; every step is exact modulo 2**32, so the result is
numpy's ``(int32(x) - zp) @ int32(w).T`` bit for bit.

Config space, fallback and refit are the gemm micro-kernel's (its docstring) with the reduction counted in
groups of four: k / 4 steps of tile_cols x 4 weight bytes, so the byte-based knobs (col_block's L2 panel,
prefetch distance) see the weight's true size. k must be a multiple of 4 (the byte groups never straddle a row).
"""
from __future__ import annotations

import numpy as np

from .. import te
from .base import Instance, Signature, Template, TemplateError
from .gemm import gemm_fallback, gemm_refit, gemm_schedule, gemm_space


def pack_weight(w: np.ndarray, bn: int) -> np.ndarray:
    """w(m, k) int8 -> wp(ceil(m / bn), k / 4, bn, 4) with wp[a, r, b, t] = w[a*bn + b, 4r + t] (zero padded)."""
    from ..codegen.build import aligned_empty

    m, k = w.shape
    mo = -(-m // bn)
    padded = np.zeros((mo * bn, k), w.dtype)
    padded[:m] = w
    out = aligned_empty((mo, k // 4, bn, 4), w.dtype)  # AMX tile rows must not straddle cache lines
    out[...] = padded.reshape(mo, bn, k // 4, 4).transpose(0, 2, 1, 3)
    return out


def column_sums(w: np.ndarray) -> np.ndarray:
    """The int32 sum of each weight row (an output column): what a zero point of x takes off each output."""
    return w.astype(np.int32).sum(axis=1, dtype=np.int32)


def _dims(sig: Signature):
    if len(sig.args) != 3:
        raise TemplateError("dense_integer: expected inputs x(n, k), w(m, k) and x_zero_point()")
    (xs, xd), (ws, wd), (zs, zd) = sig.args
    if len(xs) != 2 or len(ws) != 2 or zs != ():
        raise TemplateError(f"dense_integer: x and w must be 2-D and the zero point a scalar, got {xs}, {ws}, {zs}")
    if (xd, wd, zd) != ("uint8", "int8", "uint8"):
        raise TemplateError(f"dense_integer: the template takes uint8 x, int8 w and a uint8 zero point, got {xd}, {wd}, "
                            f"{zd}")
    if xs[1] != ws[1]:
        raise TemplateError(f"dense_integer: x has {xs[1]} columns, weight expects {ws[1]}")
    if not isinstance(ws[0], int) or not isinstance(ws[1], int):
        raise TemplateError(f"dense_integer: the weight shape must be static, got {ws}")
    if ws[1] % 4:
        raise TemplateError(f"dense_integer: k must be a multiple of 4, got {ws[1]}")
    return xs[0], ws[1], ws[0]


class DenseInteger(Template):
    def space(self, sig: Signature):
        n, k, m = _dims(sig)
        return gemm_space("dense_integer", n, k // 4)

    def fallback(self, sig, space, hints=None):
        n, k, m = _dims(sig)
        return gemm_fallback(space, n, k // 4, m, hints, streamed=True)

    def refit(self, sig, space, cfg, dim, n):
        n_dim, _, _ = _dims(sig)
        return gemm_refit(space, cfg, n) if dim == n_dim else None

    def instantiate(self, sig, cfg) -> Instance:
        n_dim, k, m = _dims(sig)
        bn = cfg["tile_cols"]
        groups = k // 4
        args = (sig.args[0], ((-(-m // bn), groups, bn, 4), "int8"), ((m,), "int32"), sig.args[2])
        (x, wp, colsum, zero), dims = Signature(args, sig.attrs).placeholders(["x", "wp", "colsum", "zero"])
        n = x.shape[0]
        r = te.reduce_axis(groups, "r")
        last = n - 1

        def dense(i, j):
            row = te.min_(i, last)
            return te.sum(te.dot4([x[row, r.var * 4 + t] for t in range(4)],
                                  [wp[j // bn, r.var, j % bn, t] for t in range(4)]), axis=r)

        D = te.compute((n, m), dense, name="dense")
        out = te.compute((n, m), lambda i, j: D[i, j] - te.cast("int32", zero[()]) * colsum[j], name="out")
        s = te.create_schedule(out)
        gemm_schedule(s, out, D, None, cfg, weight=wp, step_bytes=4 * bn)
        residues = [{n_dim: cfg["tile_rows"]}] if isinstance(n_dim, str) and cfg["tile_rows"] > 1 else []

        def prepare(inputs, bn=bn):
            x_, w_, zero_, *outputs = inputs
            return [x_, pack_weight(np.asarray(w_), bn), column_sums(np.asarray(w_)), zero_, *outputs]

        return Instance(s, [x, wp, colsum, zero, out], dims, residues, prepare)

    def reference(self, sig, inputs):
        x, w, zero = inputs
        with np.errstate(over="ignore"):
            return [np.matmul(x.astype(np.int32) - np.int32(zero), w.astype(np.int32).T)]

    def random_inputs(self, sig, dims, rng):
        (xs, ws, _) = sig.concrete(dims)
        return [rng.integers(0, 256, xs).astype(np.uint8), rng.integers(-128, 128, ws).astype(np.int8),
                np.array(rng.integers(0, 256), np.uint8)]

    def flops(self, sig, dims):
        n, k, m = _dims(sig)
        n = dims[n] if isinstance(n, str) else n
        return 2 * n * k * m


def dense_integer_signature(n, k: int, m: int) -> Signature:
    """The signature of a dense_integer call with a constant weight; n may be a symbolic dim name."""
    return Signature.make([((n, k), "uint8"), ((m, k), "int8"), ((), "uint8")], weight="const")
