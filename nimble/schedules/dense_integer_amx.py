"""dense_integer_amx: ``dense_integer`` (uint8 x, int8 constant w, int32 out) on Intel AMX tiles.

The same operator and inputs as ``dense_integer`` (its module docstring), for CPUs with AMX-INT8 (Sapphire Rapids
and later): a hand-written loop-IR kernel around ``tir.TileMatmul`` (code generation: ``codegen/llvm_amx.py``).
One ``tdpbusd`` multiplies a 16 x 64-byte tile of x by 64 x 16 weight bytes: 16,384 multiply-adds, 16 times a
512-bit ``vpdpbusd``.

The kernel: rows of x in panels of about ``panel_kb`` KiB (a multiple of the block height); per panel, the output
columns in groups of ``16 x col_tiles`` (weight packed 16 columns a block, ``dense_integer.pack_weight(w, 16)``),
the groups in parallel ("cols"; "fused": the (panel, group) pairs in parallel), each group's rows in blocks of
``16 x row_tiles`` (``tiles``: accumulators held in tile registers over the whole reduction), the accumulators
starting from ``-zero_point * colsum[j]`` (a row computed once per call, loaded into every tile row). x is first
copied into 16 x 64-byte tiles (``a_layout`` "tiles": a tile load of rows k bytes apart ran ~3x slower) unless
``a_layout`` is "rows". Every operand starts on a cache line (packed weights, workspace and the VM's storage are
64-byte aligned; a tile row straddling two lines ran at a third of the speed). Rows, columns and k need no multiple
of 16 or 64: the last rows run a narrower tile, the last columns fewer and narrower tiles, and a k that is not a
multiple of 64 a last narrower step.

``build`` refuses (``TemplateError``) on a host whose JIT target lacks AMX-INT8 or whose OS did not grant the
tile state; ``dense_integer_template`` names the template a model's dense_integer groups take here.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..te.expr import IntImm, Var
from ..tir.nodes import Allocate, Buffer, For, IfThenElse, Load, PrimFunc, Store, TileMatmul, seq
from ..tir.transform import substitute_stmt
from .base import Signature, Template, TemplateError, TemplateKernel
from .dense_integer import DenseInteger, _dims, column_sums, pack_weight
from .space import ConfigSpace

TILES = ("1x1", "1x2", "1x4", "2x1", "2x2", "4x1")
PANEL_KB = (64, 128, 256, 512, 1024)
PARALLEL = ("cols", "fused")
A_LAYOUTS = ("tiles", "rows")  # x copied into 16 x 64-byte tiles first, or read in place (rows k bytes apart)
SMALL_ROWS = 16  # below this many rows a block is one partial tile: wide groups (1 x 4) read x once


def dense_integer_template() -> str:
    """The template a model's dense_integer groups take on this host: AMX tiles where the CPU has them (unless
    ``NIMBLE_AMX=0``)."""
    from .. import settings
    from ..codegen.isa import host_amx_int8

    return "dense_integer_amx" if settings.current().amx and host_amx_int8() else "dense_integer"


def _pack(x: Buffer, tiles: Buffer, n, k: int, kp: int):
    """x (n, k) into 16 x 64-byte tiles: ``tiles[(i // 16) * 16 * kp + (q // 64) * 1024 + (i % 16) * 64 + q % 64]``
    (``TileMatmul``'s packed a; the bytes past k in a row's last tile are never read)."""
    i, s, q = Var("pi"), Var("ps"), Var("pq")
    steps, tail = divmod(k, 64)
    base = (i // 16) * 16 * kp + (i % 16) * 64

    def copy(step, width):
        return For(q, IntImm(0), IntImm(width), "vectorized",
                   Store(tiles, base + step * 1024 + q, Load(x, i * k + step * 64 + q)))

    body = seq(For(s, IntImm(0), IntImm(steps), "serial", copy(s, 64)) if steps else None,
               copy(IntImm(steps), tail) if tail else None)
    return For(i, IntImm(0), n, "parallel", body)


def _tiles(cfg) -> tuple:
    rt, ct = cfg["tiles"].split("x")
    return int(rt), int(ct)


class DenseIntegerAmx(DenseInteger):
    """dense_integer on AMX tiles; inputs, outputs, reference and FLOPs as ``DenseInteger``."""

    def space(self, sig: Signature) -> ConfigSpace:
        _dims(sig)
        s = ConfigSpace("dense_integer_amx")
        s.define_knob("tiles", TILES)
        s.define_knob("panel_kb", PANEL_KB)
        s.define_knob("parallel", PARALLEL)
        s.define_knob("a_layout", A_LAYOUTS)
        return s

    def fallback(self, sig, space, hints=None):
        n, k, m = _dims(sig)
        rep = n if isinstance(n, int) else (hints or {}).get(n, 64)
        tiles = "1x4" if rep <= SMALL_ROWS else "2x2"
        return space.config(tiles=tiles, panel_kb=256, parallel="cols", a_layout="tiles")

    def refit(self, sig, space, cfg, dim, n):
        n_dim, _, _ = _dims(sig)
        if dim != n_dim:
            return None
        want = "1x4" if n <= SMALL_ROWS else cfg["tiles"]
        return None if want == cfg["tiles"] else space.config(**{**cfg.values, "tiles": want})

    def instantiate(self, sig, cfg):
        raise TemplateError("dense_integer_amx is hand-written loop IR, not a te schedule: use build or lower")

    def lower(self, sig: Signature, cfg, name: str = "kernel") -> PrimFunc:
        n_dim, k, m = _dims(sig)
        rt, ct = _tiles(cfg)
        n = Var(n_dim) if isinstance(n_dim, str) else IntImm(n_dim)
        blocks = -(-m // 16)
        x = Buffer("x", "uint8", (n, IntImm(k)))
        wp = Buffer("wp", "int8", (IntImm(blocks), IntImm(k // 4), IntImm(16), IntImm(4)))
        colsum = Buffer("colsum", "int32", (IntImm(m),))
        zero = Buffer("zero", "uint8", ())
        out = Buffer("out", "int32", (n, IntImm(m)))
        group_cols = 16 * ct
        groups, rest = divmod(m, group_cols)
        height = 16 * rt
        panel = max(height, (cfg["panel_kb"] * 1024 // k) // height * height)
        p, g, i, j = Var("p"), Var("g"), Var("i"), Var("j")
        first_row = p * panel
        rows = te.min_(IntImm(panel), n - first_row)
        zp = te.cast("int32", Load(zero, IntImm(0)))

        packed = cfg["a_layout"] == "tiles"
        kp = -(-k // 64) * 64
        a = Buffer("x_tiles", "uint8", (te.ceildiv(n, IntImm(16)) * 16 * kp,), "global") if packed else x

        start = Buffer("start", "int32", (IntImm(m),), "local")  # every row's sum starts at -zp * colsum[j]

        def group(col0, cols):
            a_index = (first_row // 16) * 16 * kp if packed else first_row * k
            return TileMatmul(out, first_row * m + col0, m, a, a_index, k, wp, col0 * k, rows, cols, k, rt, ct,
                              packed, start, col0)

        col0 = g * group_cols
        if groups and rest:
            body = IfThenElse(g < groups, group(col0, group_cols), group(IntImm(groups * group_cols), rest))
        else:
            body = group(col0, group_cols if groups else rest)
        n_groups = groups + (1 if rest else 0)
        panels = te.ceildiv(n, IntImm(panel)) if isinstance(n, Var) else IntImm(-(-n.value // panel))
        if cfg["parallel"] == "fused":
            q = Var("q")
            body = For(q, IntImm(0), panels * n_groups, "parallel",
                       substitute_stmt(body, {p: q // n_groups, g: q % n_groups}))
        else:
            body = For(p, IntImm(0), panels, "serial", For(g, IntImm(0), IntImm(n_groups), "parallel", body))
        body = seq(For(j, IntImm(0), IntImm(m), "vectorized", Store(start, j, -zp * Load(colsum, j))), body)
        if packed:
            body = seq(_pack(x, a, n, k, kp), body)
        body = Allocate(start, IntImm(m), body)
        if packed:
            body = Allocate(a, a.shape[0], body)
        shape_vars = (n,) if isinstance(n, Var) else ()
        return PrimFunc(name, (x, wp, colsum, zero, out), shape_vars, body)

    def build(self, sig: Signature, cfg, name: str | None = None):
        from ..codegen.build import build_func
        from ..codegen.isa import host_amx_int8

        if not host_amx_int8():
            raise TemplateError("dense_integer_amx: this CPU (or its OS) does not provide AMX-INT8 tiles; use the "
                                "dense_integer template")
        kernel = build_func(self.lower(sig, cfg, name or self.name), outputs=[4])

        def prepare(inputs):
            x_, w_, zero_, *outputs = inputs
            return [x_, pack_weight(np.asarray(w_), 16), column_sums(np.asarray(w_)), zero_, *outputs]

        return TemplateKernel(kernel, prepare)
