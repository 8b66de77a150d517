"""Kernels of fused groups: a group of operator calls -> te graph -> schedule -> compiled kernel.

The te graph is built from each operator's compute (``nimble.ops.compute``) over placeholders
whose ``Any`` dims are symbolic vars. A group that is a dense with a constant weight (plus a
constant bias, activations and a residual add) uses the tuned ``dense`` template with the
weight packed here, once; a lone softmax, layer_norm, batch_matmul or attention call uses its
template, as do conv2d groups (``conv_kernels.py``) and lone reductions (``template_kernels.py``);
each template group gets a dispatch table from the tuning records (``nimble.dispatch.build``).
Every other group gets the generic schedule of ``nimble.schedules.auto``. Each group records how
the VM computes its output shapes at run time: expressions of the input dims (data-independent
groups), or the operator's own shape function (a data-dependent operator, alone in its group).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import te
from ..codegen.build import build
from ..errors import NimbleError
from ..ir.expr import Call, Constant, Expr
from ..ir.types import TensorType, TupleType
from ..ops.compute import get_compute
from ..ops.registry import get_op
from ..schedules.auto import auto_schedule
from ..te.expr import BinaryOp, IntImm, Var
from ..te.simplify import simplify

EPILOGUE_OPS = {"gelu": "gelu", "gelu_tanh": "gelu_tanh", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}


class KernelBuildError(NimbleError, ValueError):
    """A fused group could not be turned into a kernel."""


@dataclass(frozen=True)
class TupleField:
    """Field ``index`` of the tuple value ``expr``: a kernel input the VM reads with GetField."""

    expr: Expr
    index: int


def flat_inputs_of(group, types) -> list:
    """The kernel inputs of a group: its input values, a tuple value as its fields."""
    out = []
    for inp in group.inputs:
        t = types[inp]
        if isinstance(t, TupleType):
            out.extend(TupleField(inp, j) for j in range(len(t.fields)))
        else:
            out.append(inp)
    return out


@dataclass
class GroupKernel:
    """A compiled group: call ``kernel`` with ``inputs`` (IR exprs or constant arrays) then outputs."""

    name: str
    entry: object  # the packed-function entry: a KernelEntry, or a DispatchEntry for a template
    inputs: list  # IR expressions (values in registers) or numpy arrays (new constants)
    out_types: list  # [(static shape with None for Any, dtype)]
    out_shapes: list | None  # per output: dims as JSON shape expressions over (input, dim); None: use shape_func
    shape_op: Call | None = None  # the data-dependent call whose shape function gives the output shapes
    template: str = "auto"
    signature: object = None
    weight_layouts: tuple = ()  # dense: the tile_cols of each packed copy of the weight the call passes
    bounded: bool = False  # out_shapes are upper bounds; the kernel writes each output's real shape (int64, rank)
    #                         into an extra argument after the outputs, and the result views that much of it


def _te_shape(t: TensorType, prefix: str) -> tuple:
    return tuple(d if isinstance(d, int) else te.var(f"{prefix}{k}") for k, d in enumerate(t.shape))


def _static(t: TensorType) -> tuple:
    return tuple(d if isinstance(d, int) else None for d in t.shape)


def _outputs_of(t) -> list:
    if isinstance(t, TensorType):
        return [t]
    if isinstance(t, TupleType) and all(isinstance(f, TensorType) for f in t.fields):
        return list(t.fields)
    raise KernelBuildError(f"a kernel result must be a tensor or a tuple of tensors, got {t}")


def shape_json(e, var_refs: dict):
    """A dim expression as JSON over input dims: int | ["dim", input, axis] | [op, a, b]."""
    if isinstance(e, int):
        return e
    if isinstance(e, IntImm):
        return e.value
    if isinstance(e, Var):
        if e not in var_refs:
            return None
        return ["dim", *var_refs[e]]
    if isinstance(e, BinaryOp) and e.symbol in ("+", "-", "*", "//", "%", "min", "max"):
        a, b = shape_json(e.a, var_refs), shape_json(e.b, var_refs)
        return None if a is None or b is None else [e.symbol, a, b]
    return None


def eval_shape_json(j, shapes: list, values: list | None = None) -> int:
    """Evaluate a ``shape_json`` expression given the input shapes (and, for ``["value", input]``: the value of
    an input holding one int32 / int64 element, such as topk's k, the input arrays ``values``)."""
    if isinstance(j, int):
        return j
    if j[0] == "dim":
        return int(shapes[j[1]][j[2]])
    if j[0] == "value":
        v = None if values is None else values[j[1]]
        if not isinstance(v, np.ndarray) or v.size != 1 or v.ndim > 1 or v.dtype not in (np.int32, np.int64):
            raise NimbleError(f"a shape expression reads input {j[1]} as one int32 / int64 value, got "
                              f"{getattr(v, 'dtype', type(v).__name__)} of shape {getattr(v, 'shape', None)}")
        return int(v.reshape(-1)[0])
    a, b = eval_shape_json(j[1], shapes, values), eval_shape_json(j[2], shapes, values)
    return _SHAPE_OPS[j[0]](a, b)


_SHAPE_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
              "//": lambda a, b: a // b, "%": lambda a, b: a % b, "min": min, "max": max}


def build_group_kernel(group, types, name: str, db=None, accept_foreign: bool = False) -> GroupKernel:
    """Compile a fused group (see ``nimble.passes.fuse``); template groups get a dispatch table
    from the tuning records ``db`` (fallback configs without one)."""
    dense = _dense_template_kernel(group, types, name, db, accept_foreign)
    if dense is not None:
        return dense
    from .conv_kernels import conv2d_template_kernel
    from .cumulative_kernels import cumulative_group_kernel
    from .nonzero_kernels import nonzero_group_kernel
    from .template_kernels import dense_integer_template_kernel, lone_template_kernel, recurrent_cell_template_kernel
    from .topk_kernels import topk_group_kernel

    templated = (recurrent_cell_template_kernel(group, types, name, db, accept_foreign)
                 or dense_integer_template_kernel(group, types, name, db, accept_foreign)
                 or _op_template_kernel(group, types, name, db, accept_foreign))
    if templated is not None:
        return templated

    conv = (conv2d_template_kernel(group, types, name, db, accept_foreign)
            or lone_template_kernel(group, types, name, db, accept_foreign)
            or topk_group_kernel(group, types, name) or nonzero_group_kernel(group, types, name)
            or cumulative_group_kernel(group, types, name))
    if conv is not None:
        return conv
    placeholders, var_refs = [], {}
    tensor_of: dict = {}
    flat_inputs = []
    for inp in group.inputs:
        t = types[inp]
        if isinstance(t, TupleType) and all(isinstance(f, TensorType) for f in t.fields):
            parts = [(TupleField(inp, j), f) for j, f in enumerate(t.fields)]  # a tuple value: its fields
        elif isinstance(t, TensorType):
            parts = [(inp, t)]
        else:
            raise KernelBuildError(f"{name}: an input of the group is neither a tensor nor a tuple of them ({t})")
        phs = []
        for value, ft in parts:
            i = len(placeholders)
            shape = _te_shape(ft, f"d{i}_")
            ph = te.placeholder(shape, ft.dtype, f"in{i}")
            for k, d in enumerate(shape):
                if isinstance(d, Var):
                    var_refs[d] = (i, k)
            placeholders.append(ph)
            flat_inputs.append(value)
            phs.append(ph)
        tensor_of[id(inp)] = phs[0] if isinstance(t, TensorType) else tuple(phs)
    fresh_vars = []
    for call in group.calls:
        args = []
        for a in call.args:
            for leaf in (a.fields if hasattr(a, "fields") else (a,)):
                prod = group.links.get(id(leaf))
                key = id(prod) if prod is not None else id(leaf)
                if key not in tensor_of:
                    raise KernelBuildError(f"{name}: argument of {call.op.name} is neither an input nor fused")
                value = tensor_of[key]
                args.extend(value if isinstance(value, tuple) else (value,))
        outs = _outputs_of(types[call])
        out_shapes = []
        for k, o in enumerate(outs):
            shp = _te_shape(o, f"o{len(fresh_vars)}_{k}_")
            fresh_vars.extend(d for d in shp if isinstance(d, Var))
            out_shapes.append(shp)
        opdef = get_op(call.op.name)
        result = get_compute(call.op.name)(args, opdef.full_attrs(call.attrs), out_shapes)
        tensor_of[id(call)] = result
    root = tensor_of[id(group.root)]
    outputs = list(root) if isinstance(root, tuple) else [root]
    sched = auto_schedule(outputs)
    kernel = build(sched, placeholders + outputs, name=name)
    out_types = [(_static(o), o.dtype) for o in _outputs_of(types[group.root])]
    out_shapes = [[shape_json(simplify(d), var_refs) for d in o.shape] for o in outputs]
    shape_op = None
    if any(d is None for shp in out_shapes for d in shp):
        if len(group.calls) != 1:
            raise KernelBuildError(f"{name}: output shape depends on data in a fused group")
        out_shapes, shape_op = None, group.root
    from .executable import KernelEntry

    return GroupKernel(name, KernelEntry.from_kernel(kernel), flat_inputs, out_types, out_shapes, shape_op)


# ------------------------------------------------------------------------- dense template


def dense_group_signature(group, types):
    """(signature, x, weight constant, bias constant or None, residual inputs) when ``group`` is
    dense(x, W const) [+ bias const] [activations] [+ residual], the dense template's family; else None."""
    from ..schedules.dense import dense_signature, half_exact

    calls = group.calls
    if not calls or calls[0].op.name != "dense" or group.anchor is not calls[0]:
        return None
    d = calls[0]
    x, w = d.args
    if not isinstance(w, Constant) or len(w.value.shape) != 2 or isinstance(x, Constant):
        return None
    xt = types[x]
    if not isinstance(xt, TensorType) or len(xt.shape) != 2 or xt.dtype != "float32":
        return None
    m, k = w.value.shape
    bias, epilogue, residuals = None, [], []
    prev = d
    for c in calls[1:]:
        name_ = c.op.name
        other = [a for a in c.args if not _is(a, prev, group)]
        if name_ == "add" and len(other) == 1 and bias is None and not epilogue and not residuals and isinstance(
                other[0], Constant) and other[0].value.shape == (m,):
            bias = other[0]
        elif name_ in EPILOGUE_OPS and not other:
            epilogue.append(EPILOGUE_OPS[name_])
        elif name_ == "add" and len(other) == 1 and isinstance(types[other[0]], TensorType) and _same_shape(
                types[other[0]], types[c]) and not isinstance(other[0], Constant):
            epilogue.append("residual")
            residuals.append(other[0])
        else:
            return None
        prev = c
    n = xt.shape[0] if isinstance(xt.shape[0], int) else "n"
    half = "float16" if half_exact(np.asarray(w.value)) else None
    return (dense_signature(n, k, m, bias=bias is not None, epilogue=epilogue, weight="const", weight_dtype=half), x,
            w, bias, residuals)


def _dense_template_kernel(group, types, name: str, db, accept_foreign: bool):
    """A dense-family group through the dense template, with a dispatch table per bucket."""
    from ..schedules.dense import pack_weight

    found = dense_group_signature(group, types)
    if found is None:
        return None
    sig, x, w, bias, residuals = found
    m = w.value.shape[0]
    extra = (1 if bias is not None else 0) + len(residuals)

    def layout(cfg, configs):
        bns = sorted({c["tile_cols"] for c in configs})
        base = 1 + len(bns)
        return (0, 1 + bns.index(cfg["tile_cols"])) + tuple(range(base, base + extra + 1))  # ..., the output

    from ..dispatch.build import template_dispatch

    entry, configs = template_dispatch("dense", sig, name, (0, 0), layout, db, "llvm", accept_foreign)
    bns = tuple(sorted({c["tile_cols"] for c in configs}))
    packed = [pack_weight(np.asarray(w.value), bn, sig.attr("weight_dtype")) for bn in bns]
    inputs = [x] + packed + ([bias] if bias is not None else []) + residuals
    out_t = types[group.root]
    out_shapes = [[["dim", 0, 0] if not isinstance(out_t.shape[0], int) else out_t.shape[0], m]]
    return GroupKernel(name, entry, inputs, [(_static(out_t), out_t.dtype)], out_shapes, None, "dense", sig, bns)


def _named_shape(t: TensorType, prefix: str) -> tuple:
    return tuple(d if isinstance(d, int) else f"{prefix}{k}" for k, d in enumerate(t.shape))


def op_template_signature(group, types):
    """(template, signature, kernel args) when ``group`` is a lone softmax, layer_norm, batch_matmul or
    attention call whose signature its template takes; else None (the generic schedule serves it)."""
    found = _op_template_instance(group, types)
    return None if found is None else found[:3]


def _op_template_instance(group, types):
    """``op_template_signature`` and the template's fallback instance."""
    from ..schedules import Signature, get_template
    from ..schedules.layer_norm import layer_norm_signature
    from ..schedules.softmax import softmax_signature

    if len(group.calls) != 1:
        return None
    call = group.calls[0]
    op = call.op.name
    attrs = get_op(op).full_attrs(call.attrs)
    kernel_args = list(call.args)
    arg_types = [types[a] for a in call.args]
    if not all(isinstance(t, TensorType) and t.dtype == "float32" for t in arg_types):
        return None
    rank = len(arg_types[0].shape)
    if op == "softmax" and attrs["axis"] in (-1, rank - 1):
        template, sig = "softmax", softmax_signature(_named_shape(arg_types[0], "d0_"))
    elif op == "layer_norm" and attrs["axis"] in (-1, rank - 1) and all(isinstance(a, Constant) for a in call.args[1:]) \
            and isinstance(arg_types[0].shape[-1], int):
        template, sig = "layer_norm", layer_norm_signature(_named_shape(arg_types[0], "d0_"), eps=attrs["epsilon"])
    elif op == "batch_matmul" and rank == 3 and len(arg_types[1].shape) == 3:
        template = "batch_matmul"
        trans = bool(attrs.get("transpose_b", True))
        xs, ys = arg_types[0].shape, arg_types[1].shape

        def dim(d, label):  # dims the op requires equal share one name (the kernel checks them)
            return d if isinstance(d, int) else label

        x_shape = (dim(xs[0], "b"), dim(xs[1], "n"), dim(xs[2], "k"))
        y_shape = (dim(ys[0], "b"), dim(ys[1], "m"), dim(ys[2], "k")) if trans else (
            dim(ys[0], "b"), dim(ys[1], "k"), dim(ys[2], "m"))
        sig = Signature.make([(x_shape, "float32"), (y_shape, "float32")], transpose_b=trans)
    elif op == "attention":
        template, sig, kernel_args = _attention_signature(call, attrs, arg_types)
    else:
        return None
    tmpl = get_template(template)
    try:
        inst = tmpl.instantiate(sig, tmpl.fallback(sig, tmpl.space(sig), {d: 64 for d in sig.symbolic_dims}))
    except NimbleError:
        return None
    return template, sig, kernel_args, inst


def instance_out_shapes(inst, n_in: int):
    """``shape_json`` of each output of a template instance whose first ``n_in`` args are its inputs, in
    terms of the inputs' dims; None when an output dim is not an expression of them."""
    var_refs = {}
    for i, ph in enumerate(inst.args[:n_in]):
        for k, d in enumerate(ph.shape):
            if isinstance(d, Var) and d not in var_refs:
                var_refs[d] = (i, k)
    out_shapes = [[shape_json(simplify(d), var_refs) for d in o.shape] for o in inst.args[n_in:]]
    return None if any(d is None for shp in out_shapes for d in shp) else out_shapes


def dim_places(sig) -> dict:
    """{symbolic dim: (argument index, axis) where it first appears} of a signature."""
    out: dict = {}
    for i, (shape, _) in enumerate(sig.args):
        for k, d in enumerate(shape):
            if isinstance(d, str):
                out.setdefault(d, (i, k))
    return out


def dispatch_dim(sig) -> tuple:
    """(dim name, (argument index, axis)) a template's dispatch table keys on: the signature's first
    symbolic dim where it first appears; (None, (0, 0)) for a static signature."""
    for i, (shape, _) in enumerate(sig.args):
        for k, d in enumerate(shape):
            if isinstance(d, str):
                return d, (i, k)
    return None, (0, 0)


def _op_template_kernel(group, types, name: str, db=None, accept_foreign: bool = False):
    """A lone softmax, layer_norm, batch_matmul or attention through its template, with a dispatch
    table per bucket of its first symbolic dim, or per box of several when the records are bucketed
    so (records of ``db``; one fallback kernel without)."""
    from ..dispatch.build import ONE_FALLBACK_RANGE, template_dispatch

    found = _op_template_instance(group, types)
    if found is None:
        return None
    template, sig, kernel_args, inst = found  # the fallback instance: output shapes do not depend on the config
    call = group.calls[0]
    n_in, n_out = len(kernel_args), len(_outputs_of(types[call]))
    out_shapes = instance_out_shapes(inst, n_in)
    if out_shapes is None:
        return None
    dim_name, where = dispatch_dim(sig)
    entry, _ = template_dispatch(template, sig, name, where, lambda cfg, cfgs: tuple(range(n_in + n_out)), db, "llvm",
                                 accept_foreign, dim_name=dim_name, fallback_ranges=ONE_FALLBACK_RANGE,
                                 dim_places=dim_places(sig))
    out_types = [(_static(t), t.dtype) for t in _outputs_of(types[call])]
    return GroupKernel(name, entry, kernel_args, out_types, out_shapes, None, template, sig)


def _attention_signature(call, attrs, arg_types):
    """("attention", signature, kernel args) of an attention call."""
    from ..schedules.attention import attention_signature

    q_t, k_t, v_t, m_t = arg_types

    def named(d, label):
        return d if isinstance(d, int) else label

    rows = (named(q_t.shape[0], "n"), named(k_t.shape[0], "nk"))
    if len(m_t.shape) == 3:  # batched: (batch, s or 1, sk) of their own
        mask_shape = tuple(d if isinstance(d, int) else label for d, label in zip(m_t.shape, ("b", "s", "sk")))
    else:
        mask_shape = tuple(1 if d == 1 else rows[a] for a, d in enumerate(m_t.shape))
    sig = attention_signature((rows[0], q_t.shape[1]), (rows[1], k_t.shape[1]), (rows[1], v_t.shape[1]), mask_shape,
                              heads=attrs["heads"], head_size=attrs["head_size"], scale=attrs["scale"],
                              causal=attrs["causal"], q_col=attrs["q_col"], k_col=attrs["k_col"], v_col=attrs["v_col"])
    return "attention", sig, list(call.args)


def _is(arg: Expr, call: Call, group) -> bool:
    return arg is call or group.links.get(id(arg)) is call


def _same_shape(a: TensorType, b: TensorType) -> bool:
    return len(a.shape) == len(b.shape) and all(
        (x == y) if isinstance(x, int) and isinstance(y, int) else not isinstance(x, int) and not isinstance(y, int)
        for x, y in zip(a.shape, b.shape))


RECURRENT_CELLS = ("lstm_cell", "gru_cell")  # one-kernel recurrent steps: their template packs the weight


def recurrent_cell_kernel_signature(call, arg_types: list, attrs: dict):
    """The template signature of an lstm_cell or gru_cell call whose recurrent weight (argument 3) is a constant
    (the template packs it), else None."""
    from ..schedules.gru_cell import gru_cell_signature
    from ..schedules.lstm_cell import lstm_cell_signature

    if call.op.name not in RECURRENT_CELLS or not isinstance(call.args[3], Constant):
        return None
    gx, st = arg_types[0], arg_types[2]
    rows = gx.shape[0] if isinstance(gx.shape[0], int) else "n"
    batch = st.shape[1] if isinstance(st.shape[1], int) else "b"
    if call.op.name == "lstm_cell":
        return lstm_cell_signature(rows, batch, st.shape[2], attrs["gate_order"])
    return gru_cell_signature(rows, batch, st.shape[2], attrs["gate_order"], attrs.get("linear_before_reset", 1))


def recurrent_cell_inputs(call, sig, bn: int, cache: dict) -> list:
    """The template kernel's inputs for an lstm_cell or gru_cell call: its arguments with the recurrent weight
    packed for block ``bn`` (``cache`` keeps one packed copy per weight and layout)."""
    from ..schedules.gru_cell import pack_gru_weight
    from ..schedules.lstm_cell import pack_gate_weight

    weight = call.args[3]
    order = tuple(int(g) for g in sig.attr("gate_order"))
    before = int(sig.attr("linear_before_reset", 1))
    key = (id(weight), call.op.name, bn, order, before)
    if key not in cache:
        w = np.asarray(weight.value, np.float32)
        cache[key] = pack_gate_weight(w, bn, order) if call.op.name == "lstm_cell" else \
            pack_gru_weight(w, bn, order, before)
    return [*call.args[:3], cache[key], *call.args[4:]]
