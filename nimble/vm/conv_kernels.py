"""conv2d groups of a model through the conv2d template (``schedules/conv2d.py``).

A fused group ``conv2d(x, W const) [+ bias const (O, 1, 1)] [batch_norm (constants)] [* or + per-channel
constants] [activations] [+ residual or + batch_norm(residual)]`` with float32 NCHW data,
static channels, groups 1 and symmetric padding runs the template's direct convolution with the bias, the
activations and the residual in its epilogue; anything else (grouped or depthwise convolution, asymmetric
padding, batch norms after an activation) stays on the generic schedule.
"""
from __future__ import annotations

import numpy as np

from ..errors import NimbleError
from ..ir.expr import Constant
from ..ir.types import TensorType
from ..te.expr import Var
from ..te.simplify import simplify
from .kernels import EPILOGUE_OPS, GroupKernel, _is, _named_shape, _same_shape, _static, shape_json

REPRESENTATIVE_WIDTH = 56  # the fallback config's output width when the width is symbolic


def _pairs(padding) -> tuple | None:
    """(pad_h, pad_w) of symmetric padding (an int, (h, w) or (top, left, bottom, right)); None if asymmetric."""
    p = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,)
    if len(p) == 1:
        return p[0], p[0]
    if len(p) == 2:
        return p
    if len(p) == 4 and p[0] == p[2] and p[1] == p[3]:
        return p[0], p[1]
    return None


def _channel_bias(c: Constant, channels: int):
    """The (O,) vector of a constant that broadcasts along the channel axis only ((O, 1, 1) or (1, O, 1, 1)) or
    is one value for all ((), (1,), (1, 1, 1), (1, 1, 1, 1))."""
    shape = tuple(c.value.shape)
    if c.value.dtype != np.float32:
        return None
    if shape in ((channels, 1, 1), (1, channels, 1, 1)):
        return np.ascontiguousarray(np.asarray(c.value).reshape(channels))
    if shape in ((), (1,), (1, 1, 1), (1, 1, 1, 1)):
        return np.full(channels, float(np.asarray(c.value).reshape(())), np.float32)
    return None


def _batch_norm_affine(bn, channels: int):
    """(s, t) of an inference batch norm over the channels, ``y = x * s + t`` with ``s = gamma / sqrt(var + eps)``,
    ``t = beta - mean * s`` (float64); None when its parameters are not constants of the channels' length."""
    from ..ops.registry import get_op

    attrs = get_op("batch_norm").full_attrs(bn.attrs)
    params = bn.args[1:]
    if attrs["axis"] not in (1, -3) or not all(isinstance(p, Constant) and tuple(p.value.shape) == (channels,)
                                                for p in params):
        return None
    gamma, beta, mean, var = (np.asarray(p.value, dtype=np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(attrs["epsilon"]))
    return scale, beta - mean * scale


def _fold_batch_norm(bn, channels: int, weight: np.ndarray, bias):
    """(weight, bias) with an inference batch norm over the channels folded in: ``w * s``, ``b * s + t``."""
    affine = _batch_norm_affine(bn, channels)
    if affine is None:
        return None
    scale, shift = affine
    new_bias = shift if bias is None else bias.astype(np.float64) * scale + shift
    new_weight = weight.astype(np.float64) * scale[:, None, None, None]
    return new_weight.astype(np.float32), new_bias.astype(np.float32)


def conv2d_group_signature(group, types):
    """(signature, data, weight array, bias array or None, residual inputs, residual scale arrays) of a
    conv2d-template group, or None."""
    from ..ops.registry import get_op
    from ..schedules.conv2d import conv2d_signature

    calls = group.calls
    if not calls or calls[0].op.name != "conv2d" or group.anchor is not calls[0]:
        return None
    conv = calls[0]
    attrs = get_op("conv2d").full_attrs(conv.attrs)
    x, w = conv.args
    xt = types[x]
    if not isinstance(w, Constant) or isinstance(x, Constant) or attrs["groups"] != 1:
        return None
    if not isinstance(xt, TensorType) or xt.ndim != 4 or xt.dtype != "float32" or w.value.dtype != np.float32:
        return None
    weight = np.asarray(w.value)
    if weight.ndim != 4 or not isinstance(xt.shape[1], int) or xt.shape[1] != weight.shape[1]:
        return None
    padding = _pairs(attrs["padding"])
    if padding is None:
        return None
    channels = weight.shape[0]
    bias, epilogue, residuals, scales = None, [], [], []
    side = {}  # id(batch_norm call) on a group input -> (that input, scale, shift)
    prev = conv
    for c in calls[1:]:
        other = [a for a in c.args if not _is(a, prev, group)]
        name = c.op.name
        if name == "batch_norm" and not _is(c.args[0], prev, group) and group.links.get(id(c.args[0])) is None \
                and not isinstance(c.args[0], Constant):
            affine = _batch_norm_affine(c, channels)
            if affine is None:
                return None
            side[id(c)] = (c.args[0],) + affine
            continue
        produced = [group.links.get(id(a), a) for a in other]
        if name == "add" and len(other) == 1 and id(produced[0]) in side:  # + batch_norm(residual)
            if any(e != "residual" for e in epilogue):
                return None  # its shift joins the bias, which must come before any activation
            r, scale, shift = side.pop(id(produced[0]))
            epilogue.append("residual")
            residuals.append(r)
            scales.append(scale.astype(np.float32))
            bias = (shift if bias is None else bias.astype(np.float64) + shift).astype(np.float32)
            prev = c
            continue
        if name == "add" and len(other) == 1 and not epilogue and isinstance(other[0], Constant) \
                and _channel_bias(other[0], channels) is not None and _same_shape(types[c], types[prev]):
            shift = _channel_bias(other[0], channels)
            bias = shift if bias is None else (bias.astype(np.float64) + shift).astype(np.float32)
        elif name == "multiply" and len(other) == 1 and not epilogue and isinstance(other[0], Constant) \
                and _channel_bias(other[0], channels) is not None and _same_shape(types[c], types[prev]):
            scale = _channel_bias(other[0], channels).astype(np.float64)  # folded: w * s, b * s
            weight = (weight.astype(np.float64) * scale[:, None, None, None]).astype(np.float32)
            bias = None if bias is None else (bias.astype(np.float64) * scale).astype(np.float32)
        elif name == "batch_norm" and not epilogue and _is(c.args[0], prev, group) and len(other) == 4:
            folded = _fold_batch_norm(c, channels, weight, bias)
            if folded is None:
                return None
            weight, bias = folded
        elif name in EPILOGUE_OPS and not other:
            epilogue.append(EPILOGUE_OPS[name])
        elif name == "add" and len(other) == 1 and not isinstance(other[0], Constant) and isinstance(
                types[other[0]], TensorType) and _same_shape(types[other[0]], types[c]) and _same_shape(
                types[c], types[conv]) and group.links.get(id(other[0])) is None:
            epilogue.append("residual")
            residuals.append(other[0])
            scales.append(None)
        else:
            return None
        prev = c
    if side or (any(sc is None for sc in scales) and any(sc is not None for sc in scales)):
        return None  # a batch norm the chain does not consume, or scaled and plain residuals mixed
    scales = [sc for sc in scales if sc is not None]
    out_t = types[conv]
    residual_shape = tuple(d if isinstance(d, int) else f"r{k}" for k, d in enumerate(out_t.shape))
    sig = conv2d_signature(_named_shape(xt, "d0_"), weight.shape, strides=tuple(attrs["strides"]), padding=padding,
                           dilation=tuple(attrs["dilation"]), bias=bias is not None, epilogue=epilogue,
                           residual_shapes=[residual_shape] * len(residuals), residual_scale=bool(scales))
    return sig, x, weight, bias, residuals, scales


def conv2d_group_inputs(group, types, cache: dict) -> list:
    """The conv2d kernel's inputs for this group (kernels are shared by groups of one shape; the weights are
    each group's own): data, the weight and bias arrays (batch norms folded in; one copy per group via
    ``cache``), the residuals."""
    key = ("conv2d", id(group.calls[0]))
    if key not in cache:
        cache[key] = conv2d_group_signature(group, types)
    _, x, weight, bias, residuals, scales = cache[key]
    return [x, weight] + ([bias] if bias is not None else []) + residuals + scales


def conv2d_template_instance(group, types):
    """(signature, fallback instance) of a conv2d-family group the conv2d template takes, or None: the group is a
    tuning task (``vm/tasks.py``) exactly when this is not None."""
    from ..schedules import get_template

    found = conv2d_group_signature(group, types)
    if found is None:
        return None
    sig = found[0]
    tmpl = get_template("conv2d")
    width = sig.args[0][0][3]
    try:
        space = tmpl.space(sig)
        inst = tmpl.instantiate(sig, tmpl.fallback(sig, space, {width: REPRESENTATIVE_WIDTH} if isinstance(width, str)
                                                  else {}))
    except NimbleError:
        return None
    return sig, inst


def conv2d_template_kernel(group, types, name: str, db=None, accept_foreign: bool = False):
    """A conv2d-family group through the conv2d template, or None: a dispatch table from the tuning records
    ``db`` of its signature (keyed on its first symbolic dim, per box of several when the records are bucketed
    so), the fallback config (configured for an output of ``REPRESENTATIVE_WIDTH`` columns) where none."""
    from ..dispatch.build import template_dispatch
    from ..tuner.buckets import UNBOUNDED
    from .kernels import dim_places, dispatch_dim

    found = conv2d_template_instance(group, types)
    if found is None:
        return None
    sig, inst = found  # output shapes do not depend on the config
    var_refs = {}
    for k, d in enumerate(inst.args[0].shape):
        if isinstance(d, Var):
            var_refs[d] = (0, k)
    out_shapes = [[shape_json(simplify(d), var_refs) for d in inst.args[-1].shape]]
    if any(d is None for d in out_shapes[0]):
        return None
    n_args = len(sig.args) + 1  # the inputs in signature order, then the output
    dim_name, where = dispatch_dim(sig)
    entry, _ = template_dispatch("conv2d", sig, name, where, lambda cfg, cfgs: tuple(range(n_args)), db, "llvm",
                                 accept_foreign, dim_name=dim_name,
                                 fallback_ranges=((0, UNBOUNDED, REPRESENTATIVE_WIDTH),), dim_places=dim_places(sig))
    inputs = conv2d_group_inputs(group, types, {})
    out_t = types[group.root]
    return GroupKernel(name, entry, inputs, [(_static(out_t), out_t.dtype)], out_shapes, None, "conv2d", sig)
