"""Lone operator groups routed to a template beyond those of ``kernels.py``: lstm_cell and reductions.

A fused group that is one ``sum`` / ``mean`` / ``max`` / ``min`` call over float32 data (any non-empty set
of axes, keepdims or not) runs the ``reduce`` template with a dispatch table from the tuning records, and is
a tuning task (``vm/tasks.py``). The ``take`` and ``injective`` templates stay off: their fallback configs
are slower than the generic schedule on some shapes of BERT-base, an LSTM or a CNN
(``scripts/bench_template_vs_generic.py``, one thread: take 0.88-1.05x the generic time, elementwise
chains 1.0-1.15x on (n, 768) / (n, 3072) rows and 2-33x on (n, 64, 56, 56) maps). ``take``'s template also
differs from the operator: it rejects the negative indices mode "raise" accepts, and a row whose index
fails its check leaves that row's index unwritten, which the row copy then reads.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import TensorType
from ..ops.registry import get_op
from .kernels import (GroupKernel, _named_shape, _outputs_of, _static, dim_places, dispatch_dim, instance_out_shapes,
                      recurrent_cell_inputs, recurrent_cell_kernel_signature)

REDUCE_OPS = ("sum", "mean", "max", "min")  # the reduce template's ops, named as the operators are


def reduce_group_signature(group, types):
    """("reduce", signature, kernel args) of a lone sum / mean / max / min over float32 data, else None."""
    from ..schedules.reduce import reduce_signature

    if len(group.calls) != 1 or group.calls[0].op.name not in REDUCE_OPS:
        return None
    call = group.calls[0]
    xt = types[call.args[0]]
    if not isinstance(xt, TensorType) or xt.dtype != "float32" or xt.ndim == 0:
        return None
    attrs = get_op(call.op.name).full_attrs(call.attrs)
    axis = attrs["axis"]
    axes = tuple(range(xt.ndim)) if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes:
        return None  # numpy's axis=(): a copy, the generic schedule's
    axes = tuple(sorted(a % xt.ndim for a in axes))
    sig = reduce_signature(_named_shape(xt, "d0_"), axes, call.op.name, bool(attrs["keepdims"]))
    return "reduce", sig, list(call.args)


LONE_TEMPLATES = (reduce_group_signature,)


def lone_template_signature(group, types):
    """(template, signature, kernel args) of a group ``lone_template_kernel`` builds, else None."""
    from ..errors import NimbleError
    from ..schedules import get_template

    for find in LONE_TEMPLATES:
        found = find(group, types)
        if found is None:
            continue
        template, sig, _ = found
        tmpl = get_template(template)
        try:
            tmpl.space(sig)
        except NimbleError:
            return None
        return found
    return None


def lone_template_kernel(group, types, name: str, db=None, accept_foreign: bool = False):
    """A lone reduction through the reduce template, or None: a dispatch table keyed on the signature's first
    symbolic dim (per box of several when the records are bucketed so) from the records of ``db``, the
    fallback ranges' configs where none."""
    from ..dispatch.build import template_dispatch
    from ..schedules import get_template

    found = lone_template_signature(group, types)
    if found is None:
        return None
    template, sig, kernel_args = found
    tmpl = get_template(template)
    inst = tmpl.instantiate(sig, tmpl.fallback(sig, tmpl.space(sig), {d: 64 for d in sig.symbolic_dims}))
    n_in, out_types = len(kernel_args), _outputs_of(types[group.root])
    out_shapes = instance_out_shapes(inst, n_in)
    if out_shapes is None:
        return None
    dim_name, where = dispatch_dim(sig)
    n_args = n_in + len(out_types)
    entry, _ = template_dispatch(template, sig, name, where, lambda cfg, cfgs: tuple(range(n_args)), db, "llvm",
                                 accept_foreign, dim_name=dim_name, dim_places=dim_places(sig))
    return GroupKernel(name, entry, kernel_args, [(_static(t), t.dtype) for t in out_types], out_shapes, None,
                       template, sig)


def recurrent_cell_template_kernel(group, types, name: str, db=None, accept_foreign: bool = False):
    """A lone lstm_cell or gru_cell with a constant recurrent weight through its template, the weight packed here
    once for the config: a one-range dispatch table (a step costs the same at any sequence length) from the best
    record of its workload in any bucket, else the fallback config."""
    from ..dispatch.build import any_bucket_dispatch
    from ..schedules import get_template

    if len(group.calls) != 1:
        return None
    call = group.calls[0]
    op = call.op.name
    sig = recurrent_cell_kernel_signature(call, [types[a] for a in call.args], get_op(op).full_attrs(call.attrs))
    if sig is None:
        return None  # not a recurrent cell, or a weight that is not a constant: the op's generic schedule serves it
    tmpl = get_template(op)
    inst = tmpl.instantiate(sig, tmpl.fallback(sig, tmpl.space(sig)))  # output shapes do not depend on the config
    n_args = len(sig.args)
    out_shapes = instance_out_shapes(inst, n_args)  # (the packed weight's dims are static)
    if out_shapes is None:
        return None
    entry, (cfg,) = any_bucket_dispatch(op, sig, name, (0, 0), lambda cfg, cfgs: tuple(range(n_args + 1)), db,
                                        "llvm", accept_foreign,
                                        dim_name=sig.symbolic_dims[0] if sig.symbolic_dims else "n")
    out_t = types[call]
    return GroupKernel(name, entry, recurrent_cell_inputs(call, sig, cfg["block"], {}),
                       [(_static(out_t), out_t.dtype)], out_shapes, None, op, sig, (cfg["block"],))


def dense_integer_group_signature(group, types):
    """(signature, x, weight constant, zero point) of a lone dense_integer(x (n, k) uint8, W int8 constant, zp)
    whose k is a multiple of 4 (the dense_integer template's calls), else None."""
    from ..ir.expr import Constant
    from ..schedules.dense_integer import dense_integer_signature

    if len(group.calls) != 1 or group.calls[0].op.name != "dense_integer":
        return None
    x, w, zero = group.calls[0].args
    xt = types[x]
    if not isinstance(w, Constant) or isinstance(x, Constant) or not isinstance(xt, TensorType) or xt.ndim != 2:
        return None
    m, k = w.value.shape
    if xt.dtype != "uint8" or str(w.value.dtype) != "int8" or k % 4:
        return None
    return dense_integer_signature(xt.shape[0] if isinstance(xt.shape[0], int) else "n", k, m), x, w, zero


def dense_integer_inputs(call, weight_layouts, cache: dict) -> list:
    """The kernel inputs of a dense_integer call: x, the weight packed for each tile width, its column sums, the
    zero point (packed once per weight and width in ``cache``)."""
    from ..schedules.dense_integer import column_sums, pack_weight

    x, w, zero = call.args
    packed = []
    for key, make in [(("dense_integer", id(w), bn), lambda bn=bn: pack_weight(np.asarray(w.value), bn))
                      for bn in weight_layouts] + [(("dense_integer", id(w)), lambda: column_sums(np.asarray(w.value)))]:
        if key not in cache:
            cache[key] = make()
        packed.append(cache[key])
    return [x] + packed + [zero]


def dense_integer_template_kernel(group, types, name: str, db=None, accept_foreign: bool = False):
    """A lone dense_integer with a constant int8 weight through its template (AMX tiles where the CPU has them,
    else VNNI dot products: ``dense_integer_template``), with a dispatch table on the row count from the records
    of ``db``, fallback configs where none; else None."""
    from ..dispatch.build import template_dispatch
    from ..schedules.dense_integer_amx import dense_integer_template

    found = dense_integer_group_signature(group, types)
    if found is None:
        return None
    sig, x, w, zero = found
    template = dense_integer_template()

    def widths(configs):
        return (16,) if template == "dense_integer_amx" else tuple(sorted({c["tile_cols"] for c in configs}))

    def layout(cfg, configs):
        bns = widths(configs)
        base = 1 + len(bns)
        width = 16 if template == "dense_integer_amx" else cfg["tile_cols"]
        return (0, 1 + bns.index(width), base, base + 1, base + 2)  # x, wp, colsum, zero, the output

    entry, configs = template_dispatch(template, sig, name, (0, 0), layout, db, "llvm", accept_foreign)
    bns = widths(configs)
    out_t = types[group.root]
    out_shapes = [[["dim", 0, 0] if not isinstance(out_t.shape[0], int) else out_t.shape[0], w.value.shape[0]]]
    return GroupKernel(name, entry, dense_integer_inputs(group.calls[0], bns, {}), [(_static(out_t), out_t.dtype)],
                       out_shapes, None, template, sig, bns)
