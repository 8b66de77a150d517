"""Multi-head attention in one kernel, reading the heads straight out of the projections.

``out[i, h*D + e] = sum_j softmax_j(scale * q_h[i] . k_h[j] + mask[i, j])  v_h[j, e]`` where the head
``h`` of q is the column block ``q[:, q_col + h*D : q_col + (h+1)*D]`` of a 2-D (n, Wq) tensor (k and v
likewise, over nk rows): the head split and the head merge are index arithmetic, not copies. The mask
broadcasts over (n, nk) (each of its dims is 1 or full); ``causal`` hides every key j > i. A 3-D mask
(B, 1 or s, sk) batches B sequences: rows b*s .. (b+1)*s - 1 of q attend to rows b*sk .. of k and v only, with
mask[b] (the stages then lead with (B, heads) instead of heads; no residue variant, the tiles run over s).

Stages, each a root loop nest of the one kernel:

* ``scores[h, i, j]``: the gemm micro-kernel of ``gemm.py`` over q_h (n, D) and k_h (nk, D)^T (k packed
  per head inside the kernel) with the epilogue ``acc * scale + mask`` (``select`` for causal);
* ``e[h, i, j] = exp(scores - rowmax)`` with the row max a lane reduction attached to the row (rowwise.py),
  and ``inv[h, i] = 1 / sum_j e`` attached to its own row loop;
* ``ctx[h, i, c]``: the gemm micro-kernel over e (n, nk) and v_h (nk, D) (read in place: its rows are
  contiguous), with the epilogue ``acc * inv[h, i]``: softmax's normalisation never touches the n x nk
  probabilities;
* ``out[i, h*D + c] = ctx[h, i, c]``: the merged (n, H*D) layout the output projection reads.

Knobs: s_rows / s_cols / s_unroll (tile of the scores gemm), c_rows / c_cols / c_unroll (tile of the context
gemm), lanes (the max's accumulator width), parallel ("fused": each stage's outer loops in parallel, "none").

Fallback (documented heuristic): with 16 vector registers (AVX2), tiles of 6 rows x 16 columns (12
accumulators, two weight vectors and a broadcast: 15 registers) for both gemms; with 32 (AVX-512), 8 x 32
score tiles and 6 x 32 context tiles (16 columns where the head size is no multiple of 32): on a 2-vCPU Xeon
guest (session 32, BERT-base heads, 1 thread) 1.31x faster than 6 x 16 at n = 32 and 1.2x at n = 128, the best
of the 16 combinations of 6/8 rows and 16/32 columns for the two gemms within 3%. Fewer rows for a short
representative n; k unrolled by 4; lanes 16; parallel.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..codegen.isa import host_isa
from .gemm import GemmOperands, gemm_compute, gemm_schedule, wide_tiles
from .base import Instance, Signature, Template, TemplateError
from .rowwise import fuse_rows, row_len_hint, row_reduction, schedule_rows
from .space import ConfigSpace

NEG_INF = float("-inf")


def attention_dims(sig: Signature) -> dict:
    """Checked sizes of an attention signature: n, nk, heads, head_size and the column offsets."""
    if len(sig.args) not in (3, 4):
        raise TemplateError(f"attention: expected q, k, v [, mask], got {len(sig.args)} arguments")
    (qs, qd), (ks, kd), (vs, vd) = sig.args[:3]
    for name, shape, dtype in (("q", qs, qd), ("k", ks, kd), ("v", vs, vd)):
        if len(shape) != 2 or dtype != "float32":
            raise TemplateError(f"attention: {name} must be a 2-D float32 tensor, got {shape} {dtype}")
    heads, d = sig.attr("heads"), sig.attr("head_size")
    if not isinstance(heads, int) or not isinstance(d, int) or heads < 1 or d < 1:
        raise TemplateError(f"attention: heads and head_size must be positive ints, got {heads} and {d}")
    cols = {c: sig.attr(f"{c}_col", 0) for c in "qkv"}
    for name, shape in (("q", qs), ("k", ks), ("v", vs)):
        if not isinstance(shape[1], int) or cols[name] + heads * d > shape[1] or cols[name] < 0:
            raise TemplateError(f"attention: {name} has {shape[1]} columns; heads {heads} x {d} from column "
                                f"{cols[name]} do not fit")
    if ks[0] != vs[0]:
        raise TemplateError(f"attention: k and v must have the same rows, got {ks[0]} and {vs[0]}")
    batched = False
    if len(sig.args) == 4:
        ms, md = sig.args[3]
        if md != "float32" or len(ms) not in (2, 3):
            raise TemplateError(f"attention: the mask must be a 2-D or 3-D float32 tensor, got {ms} {md}")
        batched = len(ms) == 3
        if not batched and (ms[0] not in (1, qs[0]) or ms[1] not in (1, ks[0])):
            raise TemplateError(f"attention: the mask must be float32 (1 or {qs[0]}, 1 or {ks[0]}), got {ms} {md}")
    return {"n": qs[0], "nk": ks[0], "heads": heads, "d": d, "cols": cols, "batched": batched}


def attention_compute(q, k, v, mask, heads: int, d: int, cols: dict, scale: float, causal: bool, s_cols: int,
                      c_cols: int, lanes: int, sum_method: str = "plain"):
    """The stages (dict) of attention over te tensors q (n, .), k (nk, .), v (nk, .), mask or None.

    A 3-D mask (B, 1 or s, sk) makes it batched: q holds B sequences of s = n / B rows, k and v B sequences of
    sk = nk / B rows, and sequence b attends to its own keys only, with mask[b]."""
    batched = mask is not None and len(mask.shape) == 3
    if batched:
        nb = mask.shape[0]
        per = te.max_(nb, 1)  # a batch of 0 has no rows: no division by 0
        n, nk = q.shape[0] // per, k.shape[0] // per
        lead = (nb, heads)
    else:
        n, nk = q.shape[0], k.shape[0]
        lead = (heads,)

    def heads_of(x, rows, col, name):
        if batched:
            return te.compute((*lead, rows, d), lambda b, h, i, c: x[b * rows + i, col + h * d + c], name=name)
        return te.compute((*lead, rows, d), lambda h, i, c: x[i, col + h * d + c], name=name)

    qh, kh, vh = (heads_of(x, rows, cols[c], f"{c}_heads") for x, rows, c in ((q, n, "q"), (k, nk, "k"), (v, nk, "v")))
    m_off = 1 if batched else 0

    def score(acc, *idx):
        i, j = idx[-2:]
        val = acc * scale
        if mask is not None:
            mi = 0 if _is_one(mask.shape[m_off]) else i
            mj = 0 if _is_one(mask.shape[m_off + 1]) else j
            val = val + (mask[idx[0], mi, mj] if batched else mask[mi, mj])
        return te.select(j <= i, val, NEG_INF) if causal else val

    scores, s_dense, s_pack = gemm_compute(GemmOperands(qh, d, nk, kh, "mk"), s_cols, score)
    mx = row_reduction("lanes", "rowmax", (*lead, n), nk, lambda r, _, j: scores[(*r, j)], "max", lanes)
    def row_max(*ix):  # a row whose every key is masked (max -inf) gets probabilities 0, hence context 0
        m = mx.value(*ix)
        return m if mask is None else te.select(m > NEG_INF, m, 0.0)

    e = te.compute((*lead, n, nk), lambda *ix: te.exp(scores[ix] - row_max(*ix[:-1])), name="e")
    total = row_reduction(sum_method, "rowsum", (*lead, n), nk, lambda r, _, j: e[(*r, j)], "sum", lanes)
    # the sum is >= 1 (the max's own exp) except over no keys at all, where the context is a sum of nothing: 0
    inv = te.compute((*lead, n), lambda *ix: 1.0 / te.max_(total.value(*ix), 1e-30), name="inv")
    ctx, c_dense, c_pack = gemm_compute(GemmOperands(e, nk, d, vh, "km"), c_cols, lambda acc, *ix: acc * inv[ix[:-1]])
    if batched:
        out = te.compute((q.shape[0], heads * d), lambda r, c: ctx[r // n, c // d, r % n, c % d], name="out")
    else:
        out = te.compute((q.shape[0], heads * d), lambda i, c: ctx[c // d, i, c % d], name="out")
    return {"q_heads": qh, "k_heads": kh, "v_heads": vh, "scores": (scores, s_dense, s_pack), "rowmax": mx, "e": e,
            "rowsum": total, "inv": inv, "ctx": (ctx, c_dense, c_pack), "out": out}


def _is_one(d) -> bool:
    return isinstance(d, int) and d == 1 or isinstance(d, te.IntImm) and d.value == 1


def attention_reference(q, k, v, mask, heads: int, d: int, cols: dict, scale: float, causal: bool) -> np.ndarray:
    """numpy (float64 inside) attention of the layout described above (a 3-D mask: batched, see attention_compute)."""
    if mask is not None and np.ndim(mask) == 3:
        nb = mask.shape[0]
        s, sk = q.shape[0] // max(nb, 1), k.shape[0] // max(nb, 1)
        parts = [attention_reference(q[b * s:(b + 1) * s], k[b * sk:(b + 1) * sk], v[b * sk:(b + 1) * sk], mask[b],
                                     heads, d, cols, scale, causal) for b in range(nb)]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, heads * d), np.float32)
    n, nk = q.shape[0], k.shape[0]
    out = np.zeros((n, heads * d), np.float32)
    for h in range(heads):
        qh = q[:, cols["q"] + h * d: cols["q"] + (h + 1) * d].astype(np.float64)
        kh = k[:, cols["k"] + h * d: cols["k"] + (h + 1) * d].astype(np.float64)
        vh = v[:, cols["v"] + h * d: cols["v"] + (h + 1) * d].astype(np.float64)
        s = qh @ kh.T * scale
        if mask is not None:
            s = s + mask
        if causal:
            s = np.where(np.arange(nk)[None, :] <= np.arange(n)[:, None], s, -np.inf)
        if n and nk:
            top = s.max(axis=-1, keepdims=True)
            p = np.exp(s - np.where(top > -np.inf, top, 0.0))  # an all-masked row: probabilities 0
            out[:, h * d:(h + 1) * d] = (p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-30)) @ vh
    return out


class Attention(Template):
    def space(self, sig):
        attention_dims(sig)
        s = ConfigSpace("attention")
        for g in ("s", "c"):
            s.define_knob(f"{g}_rows", (1, 2, 3, 4, 6, 8))
            s.define_knob(f"{g}_cols", (8, 16, 32))
            s.define_knob(f"{g}_unroll", (1, 2, 4, 8))
        s.define_knob("lanes", (8, 16, 32))
        s.define_annotate("parallel", ("fused", "none"))
        return s

    def fallback(self, sig, space, hints=None):
        dims = attention_dims(sig)
        rep = row_len_hint(dims["n"], hints, 64)
        small = 1 if rep <= 1 else 2 if rep <= 2 else 4 if rep <= 4 else None
        c_cols = 16 if dims["d"] % 16 == 0 or dims["d"] > 16 else 8
        if wide_tiles(host_isa()):  # 32 vector registers: 8 x 32 score tiles, 6 x 32 context tiles
            s_rows, s_cols, c_rows = small or 8, 32, small or 6
            c_cols = 32 if dims["d"] % 32 == 0 else c_cols
        else:
            s_rows, s_cols, c_rows = small or 6, 16, small or 6
        return space.config(s_rows=s_rows, s_cols=s_cols, s_unroll=4, c_rows=c_rows, c_cols=c_cols, c_unroll=4,
                            lanes=16, parallel="fused")

    def instantiate(self, sig, cfg):
        dims = attention_dims(sig)
        names = ["q", "k", "v", "mask"][:len(sig.args)]
        phs, tvars = sig.placeholders(names)
        mask = phs[3] if len(phs) == 4 else None
        st = attention_compute(*phs[:3], mask, dims["heads"], dims["d"], dims["cols"], float(sig.attr("scale", 1.0)),
                               bool(sig.attr("causal", False)), cfg["s_cols"], cfg["c_cols"], cfg["lanes"])
        out = st["out"]
        s = te.create_schedule(out)
        par = cfg["parallel"] == "fused"
        for t in (st["q_heads"], st["k_heads"], st["v_heads"]):
            s[t].compute_inline()
        vec = host_isa().f32_lanes  # a vector register of exps (16 on AVX-512: 6-10% over 8 at BERT's heads)
        for g, (o, dense, pack) in (("s", st["scores"]), ("c", st["ctx"])):
            gemm_schedule(s, o, dense, pack, {"tile_rows": cfg[f"{g}_rows"], "tile_cols": cfg[f"{g}_cols"],
                                              "k_unroll": cfg[f"{g}_unroll"], "col_block": 1024,
                                              "order": ("rows_outer",), "parallel": "fused" if par else "none",
                                              "prefetch": 0})
        e, inv = st["e"], st["inv"]
        st["rowmax"].schedule(s, s[e], schedule_rows(s[e], vec, par))
        row = fuse_rows(s[inv], list(s[inv].axis))
        if par:
            s[inv].parallel(row)
        st["rowsum"].schedule(s, s[inv], row)
        _schedule_merge(s[out], dims["d"], vec, par)
        residues = []
        if isinstance(dims["n"], str) and max(cfg["s_rows"], cfg["c_rows"]) > 1 and not dims["batched"]:
            residues = [{dims["n"]: _lcm(cfg["s_rows"], cfg["c_rows"])}]
        return Instance(s, [*phs, out], tvars, residues)

    def reference(self, sig, inputs):
        dims = attention_dims(sig)
        mask = inputs[3] if len(inputs) == 4 else None
        return [attention_reference(*inputs[:3], mask, dims["heads"], dims["d"], dims["cols"],
                                    float(sig.attr("scale", 1.0)), bool(sig.attr("causal", False)))]

    def flops(self, sig, dims):
        a = attention_dims(sig)
        get = lambda x: dims[x] if isinstance(x, str) else x  # noqa: E731
        batch = get(sig.args[3][0][0]) if a["batched"] else 1
        return 4 * a["heads"] * get(a["n"]) * get(a["nk"]) * a["d"] // max(1, batch)


def _schedule_merge(stage, d: int, vec: int, parallel: bool) -> None:
    """The head merge ``out[i, h*d + c] = ctx[h, i, c]``: columns split by the head size first, so a vector of
    ``vec`` columns reads ``vec`` contiguous floats of one head (split by ``vec`` alone, ``c // d`` and ``c % d``
    of a vector's columns were computed per lane: a 16-element gather took 11% of the kernel at n = 128)."""
    row, col = stage.axis
    if d % vec:
        schedule_rows(stage, vec, parallel)
        return
    _, within = stage.split(col, d)
    _, lanes = stage.split(within, vec)
    stage.vectorize(lanes)
    if parallel:
        stage.parallel(row)


def _lcm(a: int, b: int) -> int:
    import math

    return a * b // math.gcd(a, b)


def attention_signature(q_shape, k_shape, v_shape, mask_shape=None, *, heads: int, head_size: int, scale: float,
                        causal: bool = False, q_col: int = 0, k_col: int = 0, v_col: int = 0) -> Signature:
    """The signature of an attention call over 2-D q, k, v (ints and symbolic dim names), mask optional."""
    args = [(tuple(q_shape), "float32"), (tuple(k_shape), "float32"), (tuple(v_shape), "float32")]
    if mask_shape is not None:
        args.append((tuple(mask_shape), "float32"))
    return Signature.make(args, heads=heads, head_size=head_size, scale=float(scale), causal=bool(causal),
                          q_col=q_col, k_col=k_col, v_col=v_col)
