"""conv2d: NCHW data (symbolic batch and spatial size), OIHW weight (static), strides/padding/dilation.

Direct convolution vectorized over the output width. The micro-kernel keeps a tile of
``tile_oc`` output channels x ``tile_w`` output columns of one output row in zmm registers and
loops over (input channel, ky, kx): each step loads one vector of ``tile_w`` input pixels
(contiguous: at a column stride s the padded input is stored as s phases of every s-th column)
and broadcasts ``tile_oc`` weights into as
many FMAs. Padding is a stage (``pad``) of zeros around the input, made wide enough that the
last, partial column tile reads inside it: tail tiles are overcomputed and only real output
columns are stored.

Knobs: tile_w (8, 16, 32, 64 output columns), tile_oc (divisors of the output channels among
1, 2, 3, 4, 6, 8), parallel ("rows": batch x channel blocks x output rows fused; "batch").

Fallback (documented heuristic): tile_w 32 when the representative output width is >= 32, 8
when it is <= 8 on a host with 8 float lanes (AVX2: a 7-wide map computes 8 columns, not 16), else 16; tile_oc the largest candidate dividing O whose tile_oc x tile_w accumulators take at
most half the host's vector registers (16 zmm on AVX-512, 8 ymm on AVX2); parallel over rows.
"""
from __future__ import annotations

import numpy as np

from .. import te
from ..codegen.isa import host_isa
from .base import Instance, Signature, Template, TemplateError
from .dense import EPILOGUES, apply_epilogue
from .rowwise import fuse_rows
from .space import ConfigSpace

OC_TILES = (1, 2, 3, 4, 6, 8)


def _pair(v, name):
    v = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
    if len(v) != 2 or not all(isinstance(a, int) for a in v):
        raise TemplateError(f"conv2d: {name} must be an int or a pair of ints, got {v}")
    return v


def _extra_names(sig: Signature) -> list:
    """Names of the inputs after data and weight: the bias (o,) and one residual (n, o, oh, ow) per "residual"."""
    epilogue = tuple(sig.attr("epilogue", ()))
    unknown = [e for e in epilogue if e not in EPILOGUES]
    if unknown:
        raise TemplateError(f"conv2d: unknown epilogue {unknown}; known: {EPILOGUES}")
    residuals = [f"residual{i}" for i, e in enumerate(epilogue) if e == "residual"]
    scales = [f"residual_scale{i}" for i in range(len(residuals))] if sig.attr("residual_scale", False) else []
    return (["bias"] if sig.attr("bias", False) else []) + residuals + scales


def _check(sig: Signature):
    extra = _extra_names(sig)
    if len(sig.args) != 2 + len(extra):
        raise TemplateError(f"conv2d: expected data(n, c, h, w), weight(o, c, kh, kw) and {extra}, got "
                            f"{len(sig.args)} args")
    (ds, ddt), (ws, wdt) = sig.args[:2]
    if len(ds) != 4 or len(ws) != 4 or ddt != "float32" or wdt != "float32":
        raise TemplateError(f"conv2d: data and weight must be float32 4-D, got {ddt} {ds} and {wdt} {ws}")
    if not all(isinstance(d, int) for d in ws) or not isinstance(ds[1], int):
        raise TemplateError(f"conv2d: weight shape and data channels must be static, got {ws} and {ds[1]}")
    if ds[1] != ws[1]:
        raise TemplateError(f"conv2d: data has {ds[1]} channels, weight expects {ws[1]}")
    if sig.attr("bias", False) and tuple(sig.args[2][0]) != (ws[0],):
        raise TemplateError(f"conv2d: the bias must have shape ({ws[0]},), got {sig.args[2][0]}")
    if sig.attr("groups", 1) != 1:
        raise TemplateError(f"conv2d: only groups=1 is supported, got {sig.attr('groups')}")
    strides, padding, dilation = (_pair(sig.attr(k, dflt), k) for k, dflt in
                                  (("strides", 1), ("padding", 0), ("dilation", 1)))
    if min(strides + dilation) < 1 or min(padding) < 0:
        raise TemplateError(f"conv2d: strides/dilation must be >= 1 and padding >= 0, got {strides}, {dilation}, {padding}")
    return ds, ws, strides, padding, dilation


def out_size(size, k: int, s: int, p: int, d: int):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


class Conv2d(Template):
    def space(self, sig):
        _, ws, *_ = _check(sig)
        s = ConfigSpace("conv2d")
        s.define_knob("tile_w", (16, 32, 64, 8))
        s.define_knob("tile_oc", tuple(t for t in OC_TILES if ws[0] % t == 0))
        s.define_annotate("parallel", ("rows", "batch"))
        return s

    def fallback(self, sig, space, hints=None):
        ds, ws, strides, padding, dilation = _check(sig)
        w = ds[3] if isinstance(ds[3], int) else int((hints or {}).get(ds[3], 56))
        ow = out_size(w, ws[3], strides[1], padding[1], dilation[1])
        isa = host_isa()  # tile_oc x tile_w accumulators in half the vector registers
        tw = 32 if ow >= 32 else 16 if ow > 8 or isa.f32_lanes > 8 else 8
        toc = max(t for t in space.knobs["tile_oc"].values if t * -(-tw // isa.f32_lanes) <= isa.registers // 2)
        return space.config(tile_w=tw, tile_oc=toc, parallel="rows")

    def instantiate(self, sig, cfg) -> Instance:
        _, (O, C, KH, KW), (sh, sw), (ph, pw), (dh, dw) = _check(sig)
        bias = bool(sig.attr("bias", False))
        epilogue = tuple(sig.attr("epilogue", ()))
        n_first = 3 if bias else 2
        first = Signature(sig.args[:n_first], sig.attrs)
        tensors, dims = first.placeholders(["data", "weight", "bias"][:n_first])
        tensors = list(tensors)
        data, weight = tensors[0], tensors[1]

        scaled = bool(sig.attr("residual_scale", False))

        def finish(v, b, o, y, x):
            pos = 0
            if bias:
                v, pos = v + extra[0][o], 1
            n_res = epilogue.count("residual")
            for e in epilogue:
                if e == "residual":
                    r = extra[pos][b, o, y, x]
                    v = apply_epilogue(e, v, r * extra[pos + n_res][o] if scaled else r)
                    pos += 1
                else:
                    v = apply_epilogue(e, v)
            return v

        n, _, h, w = data.shape
        oh = out_size(h, KH, sh, ph, dh)
        ow = out_size(w, KW, sw, pw, dw)
        # residuals have the output's shape, as expressions of the data's dims: the kernel checks them on entry
        n_res = epilogue.count("residual")
        tensors += [te.placeholder((n, O, oh, ow), "float32", f"residual{i}") for i in range(n_res)]
        if sig.attr("residual_scale", False):
            tensors += [te.placeholder((O,), "float32", f"residual_scale{i}") for i in range(n_res)]
        extra = tensors[2:]
        TW, TO = cfg["tile_w"], cfg["tile_oc"]
        pad_h = h + 2 * ph
        # wide enough for the last column tile: ceil(ow / TW) * TW columns of output
        pad_w = te.max_(w + 2 * pw, ((ow + TW - 1) // TW * TW - 1) * sw + (KW - 1) * dw + 1)

        def pad_fn(b, c, y, x):
            inside = te.all_(y >= ph, y < h + ph, x >= pw, x < w + pw)
            yy = te.min_(te.max_(y - ph, 0), h - 1)
            xx = te.min_(te.max_(x - pw, 0), w - 1)
            return te.select(inside, data[b, c, yy, xx], 0.0)

        rc, ry, rx = te.reduce_axis(C, "rc"), te.reduce_axis(KH, "ry"), te.reduce_axis(KW, "rx")
        if sw == 1:
            pad = te.compute((n, C, pad_h, pad_w), pad_fn, name="pad")

            def tap(b, y, x):
                return pad[b, rc, y * sh + ry.var * dh, x + rx.var * dw]
        else:  # columns split into sw phases, pad[b, c, y, p, q] = column q * sw + p: unit-stride vector loads
            pad = te.compute((n, C, pad_h, sw, (pad_w + sw - 1) // sw), lambda b, c, y, p, q: pad_fn(b, c, y, q * sw + p),
                             name="pad")

            def tap(b, y, x):
                return pad[b, rc, y * sh + ry.var * dh, (rx.var * dw) % sw, x + (rx.var * dw) // sw]
        acc = te.compute((n, O, oh, ow), lambda b, o, y, x: te.sum(tap(b, y, x) * weight[o, rc, ry, rx],
                                                                   axis=[rc, ry, rx]), name="acc")
        out = te.compute((n, O, oh, ow), lambda b, o, y, x: finish(acc[b, o, y, x], b, o, y, x), name="out")
        s = te.create_schedule(out)
        st = s[out]
        b, o, y, x = st.axis
        oo, oi = st.split(o, TO)
        xo, xi = st.split(x, TW)
        st.reorder(b, oo, y, xo, oi, xi)
        st.vectorize(xi)
        st.unroll(oi)
        st.parallel(fuse_rows(st, [b, oo, y]) if cfg["parallel"] == "rows" else b)
        s[acc].compute_at(st, xo)
        s[acc].overcompute()
        ab, ao, ay, ax = s[acc].axis
        s[acc].reorder(ab, ay, rc, ry, rx, ao, ax)
        for a in (ab, ay, ao):
            s[acc].unroll(a)
        s[acc].vectorize(ax)
        pb, pc = s[pad].axis[:2]
        s[pad].parallel(s[pad].fuse(pb, pc))
        return Instance(s, list(tensors) + [out], dims)

    def random_inputs(self, sig, dims, rng):
        ds, (O, C, KH, KW), (sh, sw), (ph, pw), (dh, dw) = _check(sig)
        n, _, h, w = (dims[d] if isinstance(d, str) else d for d in ds)
        shapes = [(n, C, h, w), (O, C, KH, KW)] + ([(O,)] if sig.attr("bias", False) else [])
        n_res = tuple(sig.attr("epilogue", ())).count("residual")
        shapes += [(n, O, out_size(h, KH, sh, ph, dh), out_size(w, KW, sw, pw, dw))] * n_res
        shapes += [(O,)] * (n_res if sig.attr("residual_scale", False) else 0)
        return [rng.standard_normal(shape).astype("float32") for shape in shapes]

    def reference(self, sig, inputs):
        _, (O, C, KH, KW), (sh, sw), (ph, pw), (dh, dw) = _check(sig)
        data, weight = (a.astype("float64") for a in inputs[:2])
        n, _, h, w = data.shape
        oh, ow = out_size(h, KH, sh, ph, dh), out_size(w, KW, sw, pw, dw)
        padded = np.pad(data, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out = np.zeros((n, O, max(oh, 0), max(ow, 0)))
        for ky in range(KH):
            for kx in range(KW):
                win = padded[:, :, ky * dh: ky * dh + (oh - 1) * sh + 1: sh, kx * dw: kx * dw + (ow - 1) * sw + 1: sw]
                out += np.einsum("nchw,oc->nohw", win, weight[:, :, ky, kx])
        pos = 2
        if sig.attr("bias", False):
            out, pos = out + inputs[2].astype("float64")[None, :, None, None], 3
        n_res = tuple(sig.attr("epilogue", ())).count("residual")
        for e in sig.attr("epilogue", ()):
            if e == "residual":
                r = inputs[pos].astype("float64")
                if sig.attr("residual_scale", False):
                    r = r * inputs[pos + n_res].astype("float64")[None, :, None, None]
                out = apply_epilogue(e, out, r)
                pos += 1
            else:
                out = apply_epilogue(e, out)
        return [out.astype(inputs[0].dtype)]

    def flops(self, sig, dims):
        ds, (O, C, KH, KW), (sh, sw), (ph, pw), (dh, dw) = _check(sig)
        n, _, h, w = (dims[d] if isinstance(d, str) else d for d in ds)
        return 2 * n * O * out_size(h, KH, sh, ph, dh) * out_size(w, KW, sw, pw, dw) * C * KH * KW

    def bytes_moved(self, sig, dims):
        """Bytes of the data, the weight, the bias, the output and each residual (read once each)."""
        ds, (O, C, KH, KW), (sh, sw), (ph, pw), (dh, dw) = _check(sig)
        n, _, h, w = (dims[d] if isinstance(d, str) else d for d in ds)
        outputs = n * O * max(out_size(h, KH, sh, ph, dh), 0) * max(out_size(w, KW, sw, pw, dw), 0)
        n_res = tuple(sig.attr("epilogue", ())).count("residual")
        return 4 * (n * C * h * w + O * C * KH * KW + (O if sig.attr("bias", False) else 0) + outputs * (1 + n_res))


def conv2d_signature(data_shape, weight_shape, strides=1, padding=0, dilation=1, bias: bool = False,
                     epilogue=(), residual_shapes=(), residual_scale: bool = False) -> Signature:
    """conv2d of NCHW data (n, h, w may be dim names) with an OIHW weight (static), then ``+ bias[o]`` and the
    ``epilogue`` steps (activations of ``dense.EPILOGUES``; "residual" adds the next of ``residual_shapes``,
    times a per-channel scale input (O,) each with ``residual_scale``)."""
    args = [(tuple(data_shape), "float32"), (tuple(weight_shape), "float32")]
    if bias:
        args.append(((weight_shape[0],), "float32"))
    args += [(tuple(r), "float32") for r in residual_shapes]
    if residual_scale:
        args += [((weight_shape[0],), "float32")] * len(residual_shapes)
    attrs = {}
    if bias or epilogue:
        attrs = {"bias": bool(bias), "epilogue": list(epilogue)}
    if residual_scale:
        attrs["residual_scale"] = True
    return Signature.make(args, strides=list(_pair(strides, "strides")), padding=list(_pair(padding, "padding")),
                          dilation=list(_pair(dilation, "dilation")), groups=1, **attrs)
