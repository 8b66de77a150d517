"""The register-tiled matrix-multiply micro-kernel shared by dense, matmul and batch_matmul.

``out[b..., i, j] = sum_r x[b..., i, r] * W(b..., r, j)``: a ``tile_rows x tile_cols`` block of
the output stays in vector registers (tile_cols / 16 zmm per row) while r runs; each step loads
one contiguous row of ``tile_cols`` weights and broadcasts one x element per tile row, so a
weight load feeds ``tile_rows`` FMAs. The weight operand is read either directly (when its
columns are contiguous and their count a multiple of tile_cols) or from a blocked copy
``wp[b..., m // bn, k, bn]``: packed once outside the kernel for a constant weight, else by a
packing stage inside it. Tail rows are overcomputed from clamped x rows and not stored.

Knobs: tile_rows, tile_cols, k_unroll (split of k, inner part unrolled), col_block (panels of
col_block x tile_cols weight columns kept in L2), order (rows or columns of tiles outer within
a panel), parallel (fused outer loops, the outermost loop, or none), prefetch (how many bytes ahead
in the weight stream each step of r prefetches, every cache line of its tile_cols weights; 0 leaves
the stream to the hardware prefetcher), stream (1: the passes of row tiles over a column block
prefetch the next block into L2 at an even rate, so that the first pass over a block does not wait for
memory; 0: none), k_streams (the reduction read as that many interleaved parts of k: that many weight streams
from memory at once; ``K_STREAMS``).

Fallback (documented heuristic): tile_rows from the representative n: 1, 2, 4 for n <= 1, 2, 4,
else the one of 4, 5, 6 (and 8, 10, 12 where 32 vector registers hold 12 x 32 tiles) that computes the
fewest rows for n (the tail tile overcomputes; ``row_cost`` weighs a short tile's lower reuse): on AVX2 4
for n = 8, 16, 32, 6 for n = 64; on AVX-512 8 for n = 8, 16, 32, 64, 12 for n = 12, 24; tile_cols the widest of 32
and 16 (16 when m < 32) whose accumulator block, one weight row and a broadcast fit the host's vector
registers (``codegen.isa``): 8 x 32 on AVX-512 (16 zmm accumulators + 2 + 1 of 32), 6 x 16 on AVX2
(12 ymm + 2 + 1 of 16; 6 x 32 would spill and runs 2-4x slower on a Zen 3); 64 for a static n whose tile
has fewer than ``GEMV_CHAINS`` accumulators (1 row on AVX-512) when m >= 64; k_unroll 4; col_block so that a
weight panel is about 256 KiB (half of L2); rows outer; parallel over the fused outer loops; prefetch
``FALLBACK_PREFETCH_STEPS`` steps of r ahead (1 KiB on AVX2, 2 KiB on AVX-512) when the weight is a model
constant of at least 1 MiB (``STREAMED_WEIGHT_BYTES``: it streams from L3 or memory on every call) and a tile
has more than 2 rows, none otherwise; stream where it prefetches; k_streams 4 where it prefetches and the rows
(up to ``K_STREAMS_MAX_ROWS`` a tile) make at most ``K_STREAMS_MAX_PASSES`` passes over the weights, else 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import te
from ..codegen.caches import host_cache_bytes
from ..codegen.isa import VectorISA, host_isa
from ..dtypes import numpy_dtype
from .space import ConfigSpace


def pack_columns(w_kxm: np.ndarray, bn: int) -> np.ndarray:
    """w[..., k, m] -> wp[..., ceil(m / bn), k, bn] with wp[..., a, r, b] = w[..., r, a*bn + b], zero padded."""
    *batch, k, m = w_kxm.shape
    mo = -(-m // bn)
    padded = np.zeros((*batch, k, mo * bn), w_kxm.dtype)
    padded[..., :m] = w_kxm
    out = padded.reshape(*batch, k, mo, bn)
    return np.ascontiguousarray(np.moveaxis(out, -2, -3))


# How far ahead in the weight stream the micro-kernel prefetches, in bytes (0: none, the hardware's own).
PREFETCH_BYTES = (0, 1024, 2048, 4096)
# Measured on Zen 1 (BERT-base dense shapes, weights from memory, 1 thread, 6 x 16 tiles): 1 KiB ahead gains
# 11-14% at 4 rows, 5-40% at 8-32 and 1-3% at 128 over the hardware prefetcher alone; at 1 row (a GEMV: 2 FLOPs a
# weight, the stream alone) it loses 8-27%, at 2 it is even, so tiles of 1 or 2 rows do not prefetch. On a Xeon
# guest (AVX-512, 8 x 32 tiles, weights from memory) 2 KiB beat 1 KiB by 2-18% and none by 4-48% at n = 8..128.
# Both are 16 steps of r ahead (a step reads tile_cols weights: 64 bytes on AVX2, 128 on AVX-512), the
# fallback's distance. Weights under STREAMED_WEIGHT_BYTES stay in L2 between calls (Tree-LSTM's 0.4-0.5 MB:
# no gain, 2% slower at 2 threads).
FALLBACK_PREFETCH_STEPS = 16
STREAMED_WEIGHT_BYTES = 1 << 20
# k_streams: the reduction of a tile read as that many interleaved parts of k (step j reads r = j, j + k/p, ...),
# so that the weight panel streams from memory as p sequences at once, not one (a core keeps more misses in
# flight over several streams: a C loop read memory at 14 GB/s from one stream, 17 GB/s from four), each with
# its own prefetch (``_prefetch_k_streams``). Taken only where k is a static multiple of p * k_unroll. It pays
# where the rows make few passes over weights streamed from memory. In-model A/B (BERT-base, 1 thread, Xeon
# guest), once each stream had its prefetch: 8-9% faster at n = 3..8 (8-row tiles, one pass), 13-17% at n = 9..12
# (10- and 12-row tiles), 14% at n = 16 and 7% at n = 24 (two passes); 4% slower at n = 32 (4 passes), 8-13% at
# 48..128 (the passes after the first read the panel from L2, where the interleaving only costs). Before the
# per-stream prefetch it lost 7% at n = 12.
# With 4 parts k_unroll 1 runs as fast as 4 (the parts are the unrolled steps) and keeps the loop body, and the
# compile time, of a k_unroll-4 kernel (unrolled 4 x 4, BERT-base compiled in 20 s instead of 15).
K_STREAMS = (1, 2, 4)
FEW_PASS_K_STREAMS = 4
K_STREAMS_MAX_ROWS = 12
K_STREAMS_MAX_PASSES = 2
K_STREAMS_K_UNROLL = 1


def fallback_prefetch(tile_cols: int, itemsize: int = 4) -> int:
    """The fallback's prefetch distance in bytes: ``FALLBACK_PREFETCH_STEPS`` steps of ``tile_cols`` weights,
    rounded up to a value of the knob (0 when the steps are 0)."""
    want = FALLBACK_PREFETCH_STEPS * tile_cols * itemsize
    return 0 if want <= 0 else min([b for b in PREFETCH_BYTES if b >= want] or [PREFETCH_BYTES[-1]])


# Whether the micro-kernel prefetches the next column block into L2 across its passes over the current one
# (the ``stream`` knob; ``_stream_next_block``). Measured on the Xeon guest (session 32, BERT-base inside the
# model, weights from memory, 8 x 32 tiles, 196 KiB blocks): at seq 32 (4 passes over each block) the first pass
# waited for memory, the in-model dense ran at 96 GFLOP/s against 140 with the weights in cache; the even stream
# took the model from 58.3 to 46.9 ms. Fetching the whole next block from every pass gained 1-3%, and a stream
# at twice the even rate none: the prefetches crowd out the loads of the block being computed.
STREAM = (0, 1)
# The passes over a block between which the stream prefetches (``_stream_next_block``); a refit whose tile height
# puts n outside them drops the stream: taller tiles keep more x row pointers live than x86's 16 registers hold
# beside the stream's address and condition, and the allocator then reloads them every group of k steps even
# when the stream is not taken (10 x 32 tiles at n = 128, 13 passes: 6% slower with it compiled in and off).
# Up to 16 passes against up to 8: BERT-base 1.08-1.14x at n = 100..128; up to 32: 0.97x at 128, 1.03x at 200.
STREAM_PASSES = (2, 16)
# What a row computed in a streaming tile costs, relative to one without the stream, where its passes over a block
# are ``STREAM_CREDITED`` (``gemm_refit``). Measured in BERT-base on the Xeon guest (session 32): the stream gained
# 12-21% at 4..8 passes (n = 32..96) and 0-7% at 2..3, so only 4..8 passes were credited; but those were the pass
# counts where its shares were exact (powers of two, then). With exact shares at every count (``SHARE_BITS``),
# crediting all of ``STREAM_PASSES`` picked better heights: 4-11% faster at n = 17, 26, 30, 33, 36 and 88 (there
# 12-row tiles, 8 passes, 96 rows computed, became 8-row ones), within 2% elsewhere (session 35). Only tiles of 8 rows or more
# (6-row tiles streaming at 4..6 passes lost 4% to 12-row ones at 2..3 at n = 24, 33, 36).
STREAM_ROW_COST = 0.88
STREAM_CREDITED = STREAM_PASSES
STREAM_CREDITED_ROWS = 8


def _weight_bytes(k, m) -> int:
    return 4 * k * m if isinstance(k, int) and isinstance(m, int) else STREAMED_WEIGHT_BYTES


# Tile heights the space offers: 10 and 12 only where 32 vector registers hold their accumulators (12 x 32:
# 24 + 2 + 1 zmm); on AVX2 they would spill, and the tuner would spend trials on them.
TILE_ROWS = (1, 2, 3, 4, 5, 6, 8)
TILE_ROWS_WIDE = TILE_ROWS + (10, 12)


def gemm_space(name: str, n, k, isa: VectorISA | None = None) -> ConfigSpace:
    """The gemm micro-kernel's knobs (module docstring) for ``n`` rows and ``k`` (ints or symbolic)."""
    isa = isa or host_isa()
    rows = TILE_ROWS_WIDE if wide_tiles(isa) else TILE_ROWS
    s = ConfigSpace(name)
    s.define_split("tile_rows", n if isinstance(n, int) else None, candidates=rows, max_factor=max(rows))
    s.define_knob("tile_cols", (16, 32, 48, 64))
    s.define_split("k_unroll", k if isinstance(k, int) else None, candidates=(1, 2, 4, 8), max_factor=8)
    s.define_knob("col_block", (1, 2, 4, 8, 16, 32))
    s.define_reorder("order", (("rows_outer",), ("cols_outer",)))
    s.define_annotate("parallel", ("fused", "outer", "none"))
    s.define_knob("prefetch", PREFETCH_BYTES, default=0)
    s.define_knob("stream", STREAM, default=0)
    s.define_knob("k_streams", K_STREAMS, default=1)
    return s


# A static 1-row product (a Tree-LSTM cell's linear layers) reads its weights from L2 once per call: with 32
# columns (2 zmm accumulators, each FMA waiting 4 cycles for the last) a 300 x 448 weight took 4.3 us, with 64
# columns (4) 3.3 us, the speed of a hand-written C loop (3.0 us).
GEMV_CHAINS = 4


def gemm_fallback(space: ConfigSpace, n, k, m, hints: dict | None, isa: VectorISA | None = None,
                  streamed: bool = False):
    """The documented heuristic config (module docstring); ``streamed``: the weight is a model constant, so
    the kernel prefetches it ``fallback_prefetch`` bytes ahead when it is too big to stay in L2 between calls
    (``STREAMED_WEIGHT_BYTES``)."""
    isa = isa or host_isa()
    rep = n if isinstance(n, int) else (hints or {}).get(n, 64)
    rows = 1 if rep <= 1 else 2 if rep <= 2 else 4 if rep <= 4 else _rows_for(rep, space, isa)
    rows = rows if rows in space.knobs["tile_rows"].values else space.knobs["tile_rows"].values[-1]
    cols = 32 if (not isinstance(m, int) or m >= 32) and isa.fits(rows, 32) else 16
    chains = rows * (-(-cols // isa.f32_lanes))
    if isinstance(n, int) and chains < GEMV_CHAINS and isinstance(m, int) and m >= 64 and isa.fits(rows, 64):
        cols = 64  # a matrix-vector product: enough accumulator chains to hide the FMA latency
    ku = 4 if 4 in space.knobs["k_unroll"].values else space.knobs["k_unroll"].values[-1]
    kk = k if isinstance(k, int) else 256
    panel = max(1, (256 * 1024) // max(1, kk * cols * 4))
    cb = max(c for c in space.knobs["col_block"].values if c <= panel)
    ahead = fallback_prefetch(cols) if streamed and rows > 2 and _weight_bytes(k, m) >= STREAMED_WEIGHT_BYTES else 0
    parts = FEW_PASS_K_STREAMS if ahead and rep <= K_STREAMS_MAX_PASSES * rows and rows <= K_STREAMS_MAX_ROWS else 1
    ku = ku if parts == 1 else K_STREAMS_K_UNROLL
    return space.config(tile_rows=rows, tile_cols=cols, k_unroll=ku, col_block=cb, order=("rows_outer",),
                        parallel="fused", prefetch=ahead, stream=1 if ahead else 0, k_streams=parts)


# A tile of fewer rows reuses each weight load for fewer FMAs: the cost of a row in a tile of r rows,
# relative to the best height (measured on Zen 1: 4 x 16 and 6 x 16 run within 3% of each other per computed
# row). With 32 vector registers (AVX-512) 8 x 32 tiles fit (16 accumulators + 2 + 1) and win: on a 2-vCPU
# Xeon guest (session 30; BERT's dense shapes, k = 768 or 3072, m = 768 or 3072, const weights) 8 x 32 ran
# 1.09-1.45x faster than the heights this table gave before (6 x 32 at n = 64, 128; 4 x 32 at n = 8..32), the
# row costs below within ~5%. 10 x 32 and 12 x 32 cost about what 8 x 32 does per computed row (1.00-1.07x at
# n = 64, 128, weights from memory) and cover n = 9..12 in one pass over the weights: 1.3-1.45x faster there.
ROW_COST = {4: 1.08, 5: 1.04, 6: 1.0}
ROW_COST_WIDE = {4: 1.22, 5: 1.12, 6: 1.08, 8: 1.0, 10: 0.98, 12: 0.97}


def wide_tiles(isa: VectorISA) -> bool:
    """Whether the register file holds the tall tiles (12 rows of two vectors each, AVX-512's 32 registers)."""
    return isa.fits(12, 2 * isa.f32_lanes)


def row_cost(isa: VectorISA) -> dict:
    """``ROW_COST`` of the host's register file: the wide table where the tall tiles fit."""
    return ROW_COST_WIDE if wide_tiles(isa) else ROW_COST


def _rows_for(rep: int, space: ConfigSpace, isa: VectorISA) -> int:
    """The tile height that computes the fewest rows (weighted by ``row_cost``) for ``rep`` rows:
    the last tile overcomputes, so 8 rows run as 2 tiles of 4 rather than 2 of 6 (on AVX2)."""
    cost = row_cost(isa)
    allowed = [r for r in cost if r in space.knobs["tile_rows"].values and isa.fits(r, min(32, 2 * isa.f32_lanes))]
    if not allowed:
        return 6
    return min(allowed, key=lambda r: (-(-rep // r) * r * cost[r], -r))


def gemm_refit(space: ConfigSpace, config, n: int, isa: VectorISA | None = None):
    """``config`` (tuned for a range of the row count) with the tile height that computes the fewest rows at
    ``n`` rows, weighted by ``row_cost`` (the last tile overcomputes: 6-row tiles compute 12 rows at n = 8,
    4-row tiles 8); 1 or 2 rows at n = 1, 2, without prefetch (the fallback's rules); k_streams dropped where the
    rows make more than ``K_STREAMS_MAX_PASSES`` passes, taken (``FEW_PASS_K_STREAMS``) where they make that many
    or fewer over streamed weights. For a
    streaming config a height of ``STREAM_CREDITED_ROWS`` or more at ``STREAM_CREDITED`` passes costs
    ``STREAM_ROW_COST`` a row, and a height outside ``STREAM_PASSES`` drops the stream (also the config's own).
    None when the config's own height is best (and keeps its stream and k_streams) or is not one ``row_cost``
    weighs. Its other knobs stay as tuned."""
    isa = isa or host_isa()
    cost = row_cost(isa)
    own, values = config["tile_rows"], space.knobs["tile_rows"].values
    if own not in cost or n < 1:
        return None
    if n <= 2:
        rows = n if n < own and n in values else own
    else:
        allowed = [r for r in cost if r in values and isa.fits(r, config["tile_cols"])] + [own]
        streams = bool(config.values.get("stream"))

        def weighted(r):
            passes = -(-n // r)
            credited = streams and r >= STREAM_CREDITED_ROWS and STREAM_CREDITED[0] <= passes <= STREAM_CREDITED[1]
            credit = STREAM_ROW_COST if credited else 1.0
            return passes * r * cost[r] * credit

        rows = min(allowed, key=lambda r: (weighted(r), r != own))
    outside = not STREAM_PASSES[0] <= -(-n // rows) <= STREAM_PASSES[1]
    parts = config.values.get("k_streams", 1)
    few_passes = n <= K_STREAMS_MAX_PASSES * rows and 2 < rows <= K_STREAMS_MAX_ROWS and config.values.get("prefetch", 0) > 0
    knob = space.knobs.get("k_streams")
    want_parts = FEW_PASS_K_STREAMS if few_passes and knob and FEW_PASS_K_STREAMS in knob.values else 1
    if rows == own and not (config.values.get("stream") and outside) and parts == want_parts:
        return None
    values = {**config.values, "tile_rows": rows, **({"prefetch": 0, "stream": 0} if rows <= 2 else {})}
    if outside:  # the stream's code costs 2-3% where it is compiled in and not taken (one pass at n = 8)
        values["stream"] = 0
    if knob:
        values["k_streams"] = want_parts
        if want_parts > 1:
            values["k_unroll"] = K_STREAMS_K_UNROLL
        elif parts > 1 and values["k_unroll"] == K_STREAMS_K_UNROLL:  # the fallback's one-pass config, n grown
            values["k_unroll"] = 4 if 4 in space.knobs["k_unroll"].values else values["k_unroll"]
    return space.config(**values)


# The share of the next block a pass fetches is (offset * share) >> SHARE_BITS with share = ceil(2**32 / passes):
# a fixed-point division by the pass count. Before, the share was by the largest power of two <= passes (a
# shift): at 7 passes the first 4 fetched the whole next block and the other 3 ran ahead into the block after it,
# so BERT-base took as long at 52..63 rows as at 64 (1 thread, Xeon guest). Exact shares: 6-11% faster at
# 52, 56, 68, 72, 84 and 104 rows, the same at powers of two.
SHARE_BITS = 32


def _stream_next_block(stage, weight, at, ty: int, bn: int, ku: int, cb: int, step_elems: int, itemsize: int,
                       passes_range: tuple = STREAM_PASSES) -> None:
    """Prefetch the next column block into L2, spread over the passes of row tiles over the current one: at
    each iteration of ``at`` (the outer k loop), pass ``io`` of block ``jb`` fetches the lines of block
    ``jb + 1`` at its share of the way through, so the passes together fetch it at an even rate instead of the
    first pass over each block waiting for memory. The weight is laid out in panels ``[m / bn, k, step_elems]``,
    a block being ``cb`` panels. The pass count is known at run time only: the share is a fixed-point fraction
    (``SHARE_BITS``) picked from the pass counts in ``passes_range`` by a select chain (no divide in the loops),
    the address an induction variable of the k loop, and each fetch takes the lines of 2 passes' share, so
    consecutive fetches overlap rather than leave holes.

    No prefetch outside ``passes_range``: with fewer passes there is no later pass to hide the fetch behind, with
    more (a block's first pass is a small part of its time, and the fetches cost more than they save),
    or where the rows of x (4 bytes a step) alone do not fit in L2. It used to be off already where x and two
    blocks did not fit together (the fetch evicts rows of x the next passes read again); measured in BERT-base's
    second FFN product (k = 3072, 1 thread, Xeon guest, 2 MiB L2), streaming anyway was 3-6% faster in the whole
    model at 112..160 tokens."""
    n = stage.op.axis[-2].extent
    k = stage.op.reduce_axis[0].extent
    plan = stream_plan(n, k.value if isinstance(k, te.IntImm) else k, ty, bn, ku, cb, step_elems, itemsize,
                       passes_range)
    if plan is not None:
        index, lines, when = plan
        stage.prefetch_index(weight, at, index, lines, level=2, when=when)


def stream_plan(n, k, ty: int, bn: int, ku: int, cb: int, step_elems: int, itemsize: int,
                passes_range: tuple = STREAM_PASSES):
    """(index(i, j, r), lines, when) of ``_stream_next_block`` for ``n`` rows (int or te expr) and reduction ``k``;
    None where a static row count rules the stream out."""
    min_passes, max_passes = passes_range
    k_groups = -(-k // ku) if isinstance(k, int) else te.ceildiv(k, ku)
    per_pass = cb * k_groups
    block = cb * k * step_elems
    passes = te.ceildiv(n, ty) if not isinstance(n, int) else -(-n // ty)
    fits = n * k * 4 <= host_cache_bytes("l2", 1 << 20)
    if isinstance(n, int):  # a static row count decides here
        if not (fits and min_passes <= passes <= max_passes):
            return None
        share = te.const(-(-(1 << SHARE_BITS) // passes), "int64")
    else:
        share = te.const(0, "int64")
        for p in range(min_passes, max_passes + 1):
            share = te.select(te.eq(passes, p), te.const(-(-(1 << SHARE_BITS) // p), "int64"), share)
    rate = ku * step_elems  # elements of a block a group of ku steps reads
    bits = te.const(SHARE_BITS, "int64")
    step = te.math_call("shift_right", te.const(rate, "int64") * share, bits)

    def index(i, j, r):
        jo = j // bn
        start = ((i // ty) * per_pass + (jo % cb) * k_groups) * rate
        return (jo // cb + 1) * block + te.math_call("shift_right", start * share, bits) + (r // ku) * step

    lines = -(-ku * step_elems * itemsize // (64 * min_passes))
    when = None if isinstance(n, int) else (lambda *v: te.all_(fits, passes >= min_passes, passes <= max_passes))
    return index, lines, when


def _prefetch_k_streams(stage, weight, at, parts: int, k: int, bn: int, ahead_bytes: int, itemsize: int,
                        step_bytes: int) -> None:
    """``prefetch`` bytes ahead in each of the ``parts`` weight streams of a k_streams tile (a packed weight
    ``[m / bn, k, bn]``), the lines of one step each. A plain prefetch covered the first stream only (16 lines of
    it a step, mostly again): per stream, BERT-base at 3..8 tokens ran 8-9% faster (1 thread, Xeon guest)."""
    lines = max(1, -(-step_bytes // 64))
    ahead = max(1, ahead_bytes // step_bytes)  # steps of r
    per = k // parts
    step_elems = step_bytes // itemsize

    for p in range(parts):
        def index(*v, p=p):
            *_, j, r = v
            return ((j // bn) * k + p * per + r + ahead) * step_elems

        stage.prefetch_index(weight, at, index, lines, level=1)


@dataclass
class GemmOperands:
    """How the micro-kernel reads its operands (te tensors and shapes)."""

    x: te.Tensor  # (batch..., n, k)
    k: object  # reduction extent (int or te expr)
    m: object  # output columns (int or te expr)
    weight: te.Tensor  # the user's weight tensor, or an already packed one
    weight_layout: str  # "mk": w[b..., j, r]; "km": w[b..., r, j]; "packed": wp[b..., j // bn, r, j % bn]


def gemm_compute(ops: GemmOperands, bn: int, epilogue=None):
    """(out tensor, dense tensor, packing stage or None) of the micro-kernel's computation.

    ``epilogue(value, b..., i, j)`` turns the accumulated value into the output element.
    """
    x, w = ops.x, ops.weight
    nb = len(x.shape) - 2
    n = x.shape[nb]
    m_static = isinstance(ops.m, int) or isinstance(ops.m, te.IntImm)
    m_val = ops.m.value if isinstance(ops.m, te.IntImm) else ops.m
    pack = None
    if ops.weight_layout == "packed":
        wp = w
    elif ops.weight_layout == "km" and m_static and m_val % bn == 0:
        wp = None  # read w[b..., r, j] directly: its rows are contiguous vectors
    else:
        mo = te.ceildiv(ops.m, bn) if not m_static else -(-m_val // bn)

        def packed(*idx):
            *b, a, r, c = idx
            j = a * bn + c
            jc = j if m_static and m_val % bn == 0 else te.min_(j, ops.m - 1)
            v = w[(*b, jc, r)] if ops.weight_layout == "mk" else w[(*b, r, jc)]
            return v if m_static and m_val % bn == 0 else te.select(j < ops.m, v, 0.0)

        wp = te.compute((*x.shape[:nb], mo, ops.k, bn), packed, name="wp")
        pack = wp
    r = te.reduce_axis(ops.k, "r")
    last = n - 1

    def dense(*idx):
        *b, i, j = idx
        xv = x[(*b, te.min_(i, last), r)]
        wv = w[(*b, r, j)] if wp is None else wp[(*b, j // bn, r, j % bn)]
        if wv.dtype != xv.dtype:  # a weight stored narrower (float16): widened on load
            wv = te.cast(xv.dtype, wv)
        return te.sum(xv * wv, axis=r)

    out_shape = (*x.shape[:nb], n, ops.m)
    D = te.compute(out_shape, dense, name="dense")
    out = te.compute(out_shape, lambda *idx: epilogue(D[idx], *idx) if epilogue else D[idx], name="out")
    return out, D, pack


def gemm_schedule(s, out, D, pack, cfg, pack_reads_rows: bool = False, weight=None, step_bytes=None) -> None:
    """Apply a config of the gemm space to the stages of ``gemm_compute``; ``pack_reads_rows``
    when the weight is laid out (k, m) so that packing reads contiguous rows; ``weight``: the
    tensor the kernel reads weights from when it does not pack them (what ``prefetch`` streams);
    ``step_bytes``: the weight bytes a step of the reduction reads (default: tile_cols weights)."""
    ty, bn, ku = cfg["tile_rows"], cfg["tile_cols"], cfg["k_unroll"]
    axes = list(s[out].axis)
    *batch, i, j = axes
    io, ii = s[out].split(i, ty)
    jo, ji = s[out].split(j, bn)
    jb, jp = s[out].split(jo, cfg["col_block"])
    rows_outer = cfg["order"] == ("rows_outer",)
    order = (jb, io, jp) if rows_outer else (jb, jp, io)
    s[out].reorder(*batch, *order, ii, ji)
    at = order[2]
    s[out].vectorize(ji)
    outer = batch[0] if batch else jb
    if len(batch) > 1:
        outer = batch[0]
        for b in batch[1:]:
            outer = s[out].fuse(outer, b)
    if cfg["parallel"] == "fused":
        fused = s[out].fuse(outer, jb) if batch else jb
        fused = s[out].fuse(fused, order[1])
        s[out].parallel(fused)
    elif cfg["parallel"] == "outer":
        s[out].parallel(outer)
    s[D].compute_at(s[out], at)
    s[D].overcompute()
    *_, di, dj = s[D].axis
    (dr,) = s[D].reduce_axis
    parts = (cfg if isinstance(cfg, dict) else cfg.values).get("k_streams", 1)
    extent = dr.extent.value if isinstance(dr.extent, te.IntImm) else dr.extent
    if parts > 1 and isinstance(extent, int) and extent % (parts * ku) == 0:
        rh, rl = s[D].split(dr, nparts=parts)  # step j reads r = j and j + k / parts, ...: parts weight streams
        dro, dri = s[D].split(rl, ku)
        s[D].reorder(dro, dri, rh, di, dj)
        s[D].unroll(rh)
    else:
        dro, dri = s[D].split(dr, ku)
        s[D].reorder(dro, dri, di, dj)
    s[D].unroll(dri)
    s[D].unroll(di)
    s[D].vectorize(dj)
    streamed = pack if pack is not None else weight
    itemsize = numpy_dtype(streamed.dtype).itemsize if streamed is not None else 4
    step = step_bytes or bn * itemsize  # the weight bytes a step of r reads
    split_k = parts > 1 and isinstance(extent, int) and extent % (parts * ku) == 0
    packed_panels = streamed is not None and len(streamed.shape) == 3 and not batch  # [m / bn, k, bn]
    if cfg["prefetch"] and split_k and pack is None and packed_panels:
        _prefetch_k_streams(s[D], streamed, dri, parts, extent, bn, cfg["prefetch"], itemsize, step)
    elif cfg["prefetch"] and streamed is not None:
        s[D].prefetch(streamed, dri, max(1, cfg["prefetch"] // step))
    stream = (cfg if isinstance(cfg, dict) else cfg.values).get("stream", 0)
    if stream and streamed is not None and not batch and rows_outer:
        _stream_next_block(s[D], streamed, dro, ty, bn, ku, cfg["col_block"], step // itemsize, itemsize)
    if pack is not None:
        *pb, a, kk, c = s[pack].axis
        if pack_reads_rows:  # w[..., r, j]: contiguous along the packed columns
            s[pack].vectorize(c)
        else:
            s[pack].reorder(*pb, a, c, kk)
        par = pb[0] if pb else a
        if pb:
            for b in pb[1:] + [a]:
                par = s[pack].fuse(par, b)
        s[pack].parallel(par)
