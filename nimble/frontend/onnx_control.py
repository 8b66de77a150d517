"""Control flow: `If` becomes an IR `if`; `Loop`, `LSTM` and `GRU` become recursive global functions (one call
per iteration, the loop state as parameters, values of the enclosing graph passed in as extra parameters)."""
from __future__ import annotations

import numpy as np

from ..ir.builder import if_, tuple_
from ..ir.expr import Function, GlobalVar, Var
from ..ir.types import AnyDim, TensorType, TupleType
from ..ir.visitor import free_vars, substitute_vars
from .onnx_graph import ConversionError, converter, fresh
from .onnx_fusion_guard import guarded_ret
from .onnx_values import DimRef, Value, const_value

INT_MAX = np.iinfo(np.int64).max


def _scalar_bool(ctx, v: Value) -> Value:
    if v.dtype != "bool":
        v = ctx.emit("not_equal", v, np.zeros((), v.dtype))
    return ctx.plain(ctx.emit("reshape", v, newshape=()) if v.ndim else v)


def _subgraph(ctx, graph, bound: dict, builder=None):
    """Convert `graph` in a child scope with `bound` names preset; returns (child, output Values)."""
    from onnx import numpy_helper

    child = ctx.child()
    if builder is not None:
        child.builder = builder
    for init in graph.initializer:
        child.env[init.name] = const_value(numpy_helper.to_array(init))
    child.env.update(bound)
    child.convert_graph_nodes(graph)
    return child, [child.lookup(o.name) for o in graph.output]


def _join(a: TensorType, b: TensorType) -> TensorType:
    if a.dtype != b.dtype or a.ndim != b.ndim:
        raise ConversionError(f"If branches give {a!r} and {b!r}")
    return TensorType(tuple(x if x == y else AnyDim() for x, y in zip(a.shape, b.shape)), a.dtype)


@converter("If")
def if_node(ctx, node, inputs, attrs):
    cond = inputs[0]
    if cond.is_const:  # a constant condition: inline the branch taken
        branch = attrs["then_branch"] if bool(cond.const.reshape(-1)[0]) else attrs["else_branch"]
        return _subgraph(ctx, branch, {}, ctx.builder)[1]
    cond = _scalar_bool(ctx, cond)
    then_ctx, then_out = _subgraph(ctx, attrs["then_branch"], {})
    else_ctx, else_out = _subgraph(ctx, attrs["else_branch"], {})
    if len(then_out) != len(else_out):
        raise ConversionError("If branches have different numbers of outputs")
    types = [_join(a.type, b.type) for a, b in zip(then_out, else_out)]
    expr = if_(cond.expr, then_ctx.result(then_out), else_ctx.result(else_out))
    if len(types) == 1:
        return [ctx.bind(expr, types[0], "if")]
    return ctx.tuple_fields(expr, types, "if")


def _loose(t: TensorType) -> TensorType:
    return TensorType((AnyDim(),) * t.ndim, t.dtype)


def _recursive(ctx, hint, params, make_body, ret_type, args):
    """`make_body(gv)` gives the function body (it calls `gv` to recurse with the loop state only); the
    captured values are appended to every call."""
    gv = GlobalVar(fresh(hint))
    body = make_body(lambda *state: None)  # first pass: find captured values
    captured = [v for v in free_vars(body) if all(v is not p for p in params)]
    inner = [Var(v.name, v.type_annotation) for v in captured]
    body = make_body(lambda *state: gv(*state, *inner))
    body = substitute_vars(body, dict(zip(captured, inner)))
    ctx.module.define(gv, Function(list(params) + inner, body, ret_type))
    return ctx.tuple_fields(gv(*[ctx.plain(a).expr for a in args], *captured), list(ret_type.fields), hint)


@converter("Loop")
def loop(ctx, node, inputs, attrs):
    body = attrs["body"]
    trip = inputs[0] if inputs and inputs[0] is not None else None
    cond0 = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
    carried = inputs[2:]
    n_carried = len(carried)
    i = Var("iter", TensorType((), "int64"))
    m = Var("max_trip", TensorType((), "int64"))
    keep_going = Var("cond", TensorType((), "bool"))
    state = []
    for k, v in enumerate(carried):
        declared = body.input[2 + k].type.tensor_type
        t = _loose(v.type)
        if declared.HasField("shape") and len(declared.shape.dim) == v.ndim:
            t = TensorType(tuple(vd if d.HasField("dim_value") and d.dim_value == vd else AnyDim()
                                 for d, vd in zip(declared.shape.dim, v.shape)), v.dtype)
        state.append(Var(f"state{k}", t))
    bound = {body.input[0].name: Value(i, i.type_annotation), body.input[1].name: Value(keep_going, keep_going.type_annotation)}
    bound.update({body.input[2 + k].name: Value(s, s.type_annotation) for k, s in enumerate(state)})
    child, outs = _subgraph(ctx, body, bound)
    cond_out = _scalar_bool(child, outs[0])
    new_state = outs[1:1 + n_carried]
    scans = outs[1 + n_carried:]
    for s in scans:
        if not all(isinstance(d, int) for d in s.shape):
            raise ConversionError("Loop scan outputs with run-time dims are not supported")
    accs = [Var(f"scan{k}", TensorType((AnyDim(),) + s.shape, s.dtype)) for k, s in enumerate(scans)]
    new_accs = [child.concat([Value(a, a.type_annotation), child.emit("expand_dims", s, axis=0)], 0)
                for a, s in zip(accs, scans)]
    next_i = child.emit("add", Value(i, i.type_annotation), np.array(1, np.int64))
    rec_args = [next_i.expr, m, cond_out.expr] + [child.plain(v).expr for v in new_state] + \
        [child.plain(a).expr for a in new_accs]
    bindings = list(child.builder.bindings)
    params = [i, m, keep_going] + state + accs
    ret_type = TupleType(tuple(s.type_annotation for s in state) + tuple(a.type_annotation for a in accs))
    running = ctx.child()
    go = running.plain(running.emit("logical_and", running.emit("less", Value(i, i.type_annotation),
                                                                Value(m, m.type_annotation)),
                                    Value(keep_going, keep_going.type_annotation)))

    saved = list(running.builder.bindings)

    def body_fn(recurse):
        child.builder.bindings = list(bindings)
        running.builder.bindings = list(saved)
        call = recurse(*rec_args)
        then = child.builder.ret(call if call is not None else tuple_(*rec_args))
        return running.builder.ret(if_(go.expr, then, tuple_(*state, *accs)))

    args = [const_value(np.array(0, np.int64)),
            ctx.emit("reshape", ctx.emit("cast", trip, dtype="int64"), newshape=()) if trip is not None
            else const_value(np.array(INT_MAX, np.int64)),
            _scalar_bool(ctx, cond0) if cond0 is not None else const_value(np.array(True))]
    args += list(carried)
    args += [const_value(np.zeros((0,) + s.shape, s.dtype)) for s in scans]
    return _recursive(ctx, "loop", params, body_fn, ret_type, args)


# ---- LSTM / GRU -------------------------------------------------------------------------------------------
def _batch_dims(x: Value, hidden: int) -> tuple:
    b = x.shape[1]
    return (DimRef(x.expr, 1) if not isinstance(b, int) else b, hidden)


def _zeros(ctx, dims, dtype):
    from .onnx_ops_shape import dims_tensor

    if all(isinstance(d, int) for d in dims):
        return const_value(np.zeros(dims, dtype))
    return ctx.emit("dyn.zeros", dims_tensor(ctx, dims), dtype=dtype,
                    type_=TensorType(tuple(d if isinstance(d, int) else AnyDim() for d in dims), dtype))


def _recurrence(ctx, hint, xw, init_states, h_dims, reverse, step):
    """Run `step(child, x_t, states) -> new states` over axis 0 of `xw`; returns (outputs stacked over time of
    the first state, final states)."""
    n = ctx.emit("take", ctx.emit("shape_of", xw), np.array(0, np.int64), axis=0)
    t = Var("t", TensorType((), "int64"))
    length = Var("n", TensorType((), "int64"))
    xs = Var("xs", _loose(xw.type) if not xw.is_const else xw.type)
    states = [Var(f"s{k}", TensorType(tuple(AnyDim() if not isinstance(d, int) else d for d in s.shape), s.dtype))
              for k, s in enumerate(init_states)]
    h_t = states[0].type_annotation
    ys = Var("ys", TensorType((AnyDim(),) + h_t.shape, h_t.dtype))
    val = lambda v: Value(v, v.type_annotation)  # noqa: E731
    child = ctx.child()
    index = val(t)
    if reverse:
        index = child.emit("subtract", child.emit("subtract", val(length), val(t)), np.array(1, np.int64))
    x_t = child.emit("take", val(xs), index, axis=0)
    new = step(child, x_t, [val(s) for s in states])
    h_new = child.emit("expand_dims", new[0], axis=0)
    grown = child.concat([h_new, val(ys)] if reverse else [val(ys), h_new], 0)
    next_t = child.emit("add", val(t), np.array(1, np.int64))
    bindings = list(child.builder.bindings)
    running = ctx.child()
    go = running.plain(running.emit("less", val(t), val(length)))
    saved = list(running.builder.bindings)
    rec_args = [next_t.expr, length, xs] + [child.plain(s).expr for s in new] + [grown.expr]

    def body_fn(recurse):
        child.builder.bindings = list(bindings)
        running.builder.bindings = list(saved)
        call = recurse(*rec_args)
        then = guarded_ret(child.builder, call if call is not None else tuple_(*rec_args))
        return guarded_ret(running.builder, if_(go.expr, then, tuple_(ys, *states)))

    params = [t, length, xs] + states + [ys]
    ret_type = TupleType((ys.type_annotation,) + tuple(s.type_annotation for s in states))
    empty = _zeros(ctx, (0,) + tuple(h_dims), h_t.dtype)
    args = [const_value(np.array(0, np.int64)), n, xw] + list(init_states) + [empty]
    out = _recursive(ctx, hint, params, body_fn, ret_type, args)
    return out[0], out[1:]


def _direction_weights(ctx, inputs, d, gates, hidden):
    """W (gates*H, I), R (gates*H, H), Wb, Rb (gates*H,) of direction d (constants fold)."""
    index = np.array(d, np.int64)
    w = ctx.emit("take", inputs[1], index, axis=0)
    r = ctx.emit("take", inputs[2], index, axis=0)
    b = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    if b is None:
        zeros = np.zeros(gates * hidden, inputs[1].dtype)
        return w, r, zeros, zeros
    bias = ctx.emit("take", b, index, axis=0)
    n = gates * hidden
    return (w, r, ctx.emit("strided_slice", bias, begin=(0,), end=(n,)),
            ctx.emit("strided_slice", bias, begin=(n,), end=(2 * n,)))


def _rows(ctx, v, begin, end):
    return ctx.emit("strided_slice", v, begin=(begin,), end=(end,))


def _check_recurrent(node, inputs, attrs, default_acts):
    if len(inputs) > 4 and inputs[4] is not None:
        lens = inputs[4]
        if not lens.is_const or len(set(lens.const.reshape(-1).tolist())) > 1:
            raise ConversionError("sequence_lens with different lengths is not supported")
    if attrs.get("layout", 0):
        raise ConversionError("layout=1 is not supported")
    if attrs.get("clip") is not None:
        raise ConversionError("clip is not supported")
    acts = attrs.get("activations")
    if acts is not None and [a.lower() for a in acts] != [a.lower() for a in default_acts * (len(acts) // len(default_acts))]:
        raise ConversionError(f"activations {acts} are not supported (only the defaults)")


def _run_directions(ctx, node, inputs, attrs, gates, make_step, n_states):
    x = inputs[0]
    hidden = attrs["hidden_size"]
    direction = attrs.get("direction", "forward")
    dirs = ["reverse"] if direction == "reverse" else ["forward", "reverse"] if direction == "bidirectional" \
        else ["forward"]
    h_dims = _batch_dims(x, hidden)
    ys, finals = [], [[] for _ in range(n_states)]
    for d, name in enumerate(dirs):
        w, r, wb, rb = _direction_weights(ctx, inputs, d, gates, hidden)
        xw = ctx.emit("add", ctx.emit("dense", x, w), wb)
        init = []
        for k in range(n_states):
            idx = 5 + k
            given = inputs[idx] if len(inputs) > idx and inputs[idx] is not None else None
            init.append(ctx.emit("take", given, np.array(d, np.int64), axis=0) if given is not None
                        else _zeros(ctx, h_dims, x.dtype))
        step = make_step(ctx, r, rb, hidden, inputs, d)
        y, states = _recurrence(ctx, node.op_type.lower(), xw, init, h_dims, name == "reverse", step)
        ys.append(ctx.emit("expand_dims", y, axis=1))
        for k, s in enumerate(states):
            finals[k].append(ctx.emit("expand_dims", s, axis=0))
    return [ctx.concat(ys, 1)] + [ctx.concat(f, 0) for f in finals]


@converter("LSTM")
def lstm(ctx, node, inputs, attrs):
    _check_recurrent(node, inputs, attrs, ["Sigmoid", "Tanh", "Tanh"])
    if attrs.get("input_forget", 0):
        raise ConversionError("input_forget=1 is not supported")
    peep = inputs[7] if len(inputs) > 7 and inputs[7] is not None else None

    def make_step(ctx, r, rb, hidden, inputs, d):
        p = ctx.emit("take", peep, np.array(d, np.int64), axis=0) if peep is not None else None

        def step(c, x_t, states):
            h, cell = states
            g = c.emit("add", c.emit("add", x_t, c.emit("dense", h, r)), rb)
            i_, o_, f_, z_ = (c.emit("strided_slice", g, begin=(k * hidden,), end=((k + 1) * hidden,), axes=(1,))
                              for k in range(4))
            if p is not None:
                i_ = c.emit("add", i_, c.emit("multiply", cell, _rows(c, p, 0, hidden)))
                f_ = c.emit("add", f_, c.emit("multiply", cell, _rows(c, p, 2 * hidden, 3 * hidden)))
            new_c = c.emit("add", c.emit("multiply", c.emit("sigmoid", f_), cell),
                           c.emit("multiply", c.emit("sigmoid", i_), c.emit("tanh", z_)))
            if p is not None:
                o_ = c.emit("add", o_, c.emit("multiply", new_c, _rows(c, p, hidden, 2 * hidden)))
            return [c.emit("multiply", c.emit("sigmoid", o_), c.emit("tanh", new_c)), new_c]

        return step

    return _run_directions(ctx, node, inputs, attrs, 4, make_step, 2)


@converter("GRU")
def gru(ctx, node, inputs, attrs):
    _check_recurrent(node, inputs, attrs, ["Sigmoid", "Tanh"])
    before_reset = attrs.get("linear_before_reset", 0)

    def make_step(ctx, r, rb, hidden, inputs, d):
        r_zr, r_h = _rows(ctx, r, 0, 2 * hidden), _rows(ctx, r, 2 * hidden, 3 * hidden)
        rb_zr, rb_h = _rows(ctx, rb, 0, 2 * hidden), _rows(ctx, rb, 2 * hidden, 3 * hidden)

        def step(c, x_t, states):
            (h,) = states
            # nimble bug: a `take` read by several `strided_slice`s fails to compile ("fused away"); an add
            # between them avoids it
            x_t = c.emit("add", x_t, np.zeros((), x_t.dtype))
            xz, xr, xh = (c.emit("strided_slice", x_t, begin=(k * hidden,), end=((k + 1) * hidden,), axes=(1,))
                          for k in range(3))
            hzr = c.emit("add", c.emit("dense", h, r_zr), rb_zr)
            hz = c.emit("strided_slice", hzr, begin=(0,), end=(hidden,), axes=(1,))
            hr = c.emit("strided_slice", hzr, begin=(hidden,), end=(2 * hidden,), axes=(1,))
            z = c.emit("sigmoid", c.emit("add", xz, hz))
            reset = c.emit("sigmoid", c.emit("add", xr, hr))
            if before_reset:
                hh = c.emit("multiply", reset, c.emit("add", c.emit("dense", h, r_h), rb_h))
            else:
                hh = c.emit("add", c.emit("dense", c.emit("multiply", reset, h), r_h), rb_h)
            cand = c.emit("tanh", c.emit("add", xh, hh))
            one_minus = c.emit("subtract", np.ones((), cand.dtype), z)
            return [c.emit("add", c.emit("multiply", one_minus, cand), c.emit("multiply", z, h))]

        return step

    return _run_directions(ctx, node, inputs, attrs, 3, make_step, 1)
