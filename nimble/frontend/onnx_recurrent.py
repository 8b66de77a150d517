"""`LSTM` and `GRU`: one recursive global function per direction, shaped as ONNX Runtime and PyTorch run them.

* The input side of every gate of every step is one GEMM before the loop: X (T, B, I) @ W^T + Wb (+ the parts of
  Rb that only add) -> (T, B, G*H).
* An LSTM step without peepholes is one `lstm_cell` kernel (h @ R^T, row t of the projection, the gates and the
  c / h update) over the state (2, B, H) = stack(h, c), the projection kept as (T * B, 4H) rows; a GRU step one
  `gru_cell` kernel over the state (1, B, H) (with linear_before_reset=0, ONNX's default, the kernel makes two
  passes over R: the candidate's product needs the reset gate first). Otherwise (an LSTM with peepholes, or an
  input size that is not static) a step computes h @ R^T (the dense kernel alone) and the gates in as few
  elementwise kernels as fusion allows; each gate reads its columns of row t of the projection through a take
  of its own (a value used once fuses into its consumer).
* Each step's h (B, H) is consed onto a list; after the loop `models.row_stack` joins the list into (T * B, H)
  rows with about T / 7 concatenate kernels (not a copy of the whole output per step), reshaped to (T, B, H).
* A reverse direction counts t down from T - 1, so the index needs no arithmetic of its own.
"""
from __future__ import annotations

import numpy as np

from ..ir import prelude
from ..ir.builder import if_, tuple_
from ..ir.expr import Var
from ..ir.types import AnyDim, TensorType, TupleType
from ..models.row_stack import define_row_stack
from ..ops.gru_cell import ONNX_GRU_ORDER
from ..ops.lstm_cell import ONNX_GATE_ORDER
from .onnx_control import _recursive
from .onnx_graph import ConversionError, converter, fresh
from .onnx_values import DimRef, Value, const_value


def _batch_dims(x: Value, hidden: int) -> tuple:
    b = x.shape[1]
    return (DimRef(x.expr, 1) if not isinstance(b, int) else b, hidden)


def _zeros(ctx, dims, dtype):
    from .onnx_ops_shape import dims_tensor

    if all(isinstance(d, int) for d in dims):
        return const_value(np.zeros(dims, dtype))
    return ctx.emit("dyn.zeros", dims_tensor(ctx, dims), dtype=dtype,
                    type_=TensorType(tuple(d if isinstance(d, int) else AnyDim() for d in dims), dtype))


def _val(v: Var) -> Value:
    return Value(v, v.type_annotation)


class _StepRows:
    """What a step reads of the projection: `self(c, k, size)` gives columns [k*size, (k+1)*size) of the current
    row (`take` + `strided_slice`); `xs` (the projection) and `t` (the step) for an operator that reads it itself."""

    def __init__(self, xs: Value, t: Value):
        self.xs, self.t = xs, t

    def __call__(self, c, k, size):
        row = c.emit("take", self.xs, self.t, axis=0)
        return c.emit("strided_slice", row, begin=(k * size,), end=((k + 1) * size,), axes=(1,))


def _recurrence(ctx, hint, x, xw, n, init_states, h_dims, reverse, step, state_dims=None, output=None):
    """Run `step(child, x_gate, states) -> new states` over the n steps of the projection `xw` of `x` (a
    `_StepRows` as x_gate). Returns (each step's output stacked over time, reshaped to (n,) + h_dims; final states).
    A step's output is its first state, or `output(child, new states)` (a `h_dims` tensor); the states have
    `state_dims` (default `h_dims`). Shapes are read from `x`, so that `xw` has one use (the loop) and stays
    unguarded."""
    t = Var("t", TensorType((), "int64"))
    length = Var("n", TensorType((), "int64"))
    xs = Var("xs", TensorType((AnyDim(),) + tuple(d if isinstance(d, int) else AnyDim() for d in xw.shape[1:]),
                              xw.dtype))
    state_shape = tuple(d if isinstance(d, int) else AnyDim() for d in (state_dims or h_dims))  # static B from X
    states = [Var(f"s{k}", TensorType(state_shape, s.dtype)) for k, s in enumerate(init_states)]
    h_t = TensorType(tuple(d if isinstance(d, int) else AnyDim() for d in h_dims), init_states[0].dtype)
    rows_t = TensorType((AnyDim(),) + h_t.shape[1:], h_t.dtype)  # steps stack as (T * B, H) rows
    steps_t = prelude.list_type(rows_t)
    steps = Var("steps", steps_t)
    child = ctx.child()

    new = [child.plain(s) for s in step(child, _StepRows(_val(xs), _val(t)), [_val(s) for s in states])]
    out_row = new[0] if output is None else child.plain(output(child, new))
    grown = child.bind(prelude.Cons(out_row.expr, steps), steps_t, "steps")
    next_t = child.emit("add", _val(t), np.array(-1 if reverse else 1, np.int64))
    bindings = list(child.builder.bindings)
    running = ctx.child()
    go = running.plain(running.emit("less", np.array(-1, np.int64), _val(t)) if reverse
                       else running.emit("less", _val(t), _val(length)))
    saved = list(running.builder.bindings)
    rec_args = [next_t.expr, length, xs] + [s.expr for s in new] + [grown.expr]

    def body_fn(recurse):
        child.builder.bindings = list(bindings)
        running.builder.bindings = list(saved)
        call = recurse(*rec_args)
        then = child.builder.ret(call if call is not None else tuple_(*rec_args))
        return running.builder.ret(if_(go.expr, then, tuple_(steps, *states)))

    params = [t, length, xs] + states + [steps]
    ret_type = TupleType((steps_t,) + tuple(s.type_annotation for s in states))
    first = ctx.emit("subtract", n, np.array(1, np.int64)) if reverse else const_value(np.array(0, np.int64))
    nil = Value(prelude.Nil(), steps_t)
    out = _recursive(ctx, hint, params, body_fn, ret_type, [first, n, xw] + list(init_states) + [nil])
    stack = define_row_stack(ctx.module, fresh(f"{hint}_stack"), rows_t, newest_first=not reverse)
    empty = _zeros(ctx, (0,) + tuple(h_dims[1:]), h_t.dtype)
    rows = ctx.bind(stack(out[0].expr, empty.expr), rows_t, f"{hint}_rows")
    return _unflatten(ctx, rows, x, h_dims), out[1:]


def _unflatten(ctx, rows: Value, x: Value, h_dims: tuple) -> Value:
    """(T * B, H) rows -> (T, B, H)."""
    from .onnx_ops_shape import dims_tensor

    if all(isinstance(d, int) for d in h_dims):
        return ctx.emit("reshape", rows, newshape=(-1,) + tuple(h_dims))
    dims = (x.shape[0] if isinstance(x.shape[0], int) else DimRef(x.expr, 0),) + tuple(h_dims)
    out_t = TensorType(tuple(d if isinstance(d, int) else AnyDim() for d in dims), rows.dtype)
    return ctx.emit("dyn.reshape", rows, dims_tensor(ctx, dims), type_=out_t)


def _direction_weights(ctx, inputs, d, gates, hidden):
    """W (gates*H, I), R (gates*H, H), Wb, Rb (gates*H,) of direction d (constants fold)."""
    index = np.array(d, np.int64)
    w = ctx.emit("take", inputs[1], index, axis=0)
    r = ctx.emit("take", inputs[2], index, axis=0)
    b = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    if b is None:
        zeros = np.zeros(gates * hidden, inputs[1].dtype)
        return w, r, const_value(zeros), const_value(zeros)
    bias = ctx.emit("take", b, index, axis=0)
    n = gates * hidden
    return w, r, _rows(ctx, bias, 0, n), _rows(ctx, bias, n, 2 * n)


def _rows(ctx, v, begin, end):
    return ctx.emit("strided_slice", v, begin=(begin,), end=(end,))


def _projection(ctx, x, w, bias, rows: bool = False):
    """X (T, B, I) @ W^T + bias -> (T, B, G): a 2-D GEMM over all T*B rows when B is static; with `rows`, the
    (T * B, G) rows themselves (I static)."""
    b, g = x.shape[1], w.shape[0]
    if rows or isinstance(b, int) and isinstance(x.shape[2], int):
        flat = ctx.emit("reshape", x, newshape=(-1, x.shape[2]))
        out = ctx.emit("add", ctx.emit("dense", flat, w), bias)
        return out if rows else ctx.emit("reshape", out, newshape=(-1, b, g))
    return ctx.emit("add", ctx.emit("dense", x, w), bias)


def _check_recurrent(node, inputs, attrs, default_acts):
    if len(inputs) > 4 and inputs[4] is not None:
        lens = inputs[4]
        if not lens.is_const or len(set(lens.const.reshape(-1).tolist())) > 1:
            raise ConversionError("sequence_lens with different lengths is not supported")
    if attrs.get("clip") is not None:
        raise ConversionError("clip is not supported")
    acts = attrs.get("activations")
    if acts is not None and [a.lower() for a in acts] != [a.lower() for a in default_acts * (len(acts) // len(default_acts))]:
        raise ConversionError(f"activations {acts} are not supported (only the defaults)")


def _run_directions(ctx, node, inputs, attrs, gates, make_step, n_states, fused_cell=None):
    """`make_step(ctx, r, rb, hidden, d) -> (step, the part of rb the projection adds)`. With layout=1 (batch
    first: X (B, T, I), states (B, D, H), Y (B, T, D, H)) the tensors are transposed to and from layout 0.
    `fused_cell(c, rows, state, r, rb) -> new state`: the step over the states stacked into one (n_states, B, H)
    tensor, reading the (T * B, G) projection rows itself (used when the input size is static)."""
    batch_first = attrs.get("layout", 0)
    if batch_first:
        inputs = [ctx.emit("transpose", v, axes=(1, 0, 2)) if k in (0, 5, 6) and v is not None else v
                  for k, v in enumerate(inputs)]
    x = inputs[0]
    hidden = attrs["hidden_size"]
    direction = attrs.get("direction", "forward")
    dirs = ["reverse"] if direction == "reverse" else ["forward", "reverse"] if direction == "bidirectional" \
        else ["forward"]
    h_dims = _batch_dims(x, hidden)
    n = ctx.emit("take", ctx.emit("shape_of", x), np.array(0, np.int64), axis=0)
    ys, finals = [], [[] for _ in range(n_states)]
    fused = fused_cell is not None and isinstance(x.shape[2], int)
    for d, name in enumerate(dirs):
        w, r, wb, rb = _direction_weights(ctx, inputs, d, gates, hidden)
        step, rb_in_projection = make_step(ctx, r, rb, hidden, d)
        xw = _projection(ctx, x, w, ctx.emit("add", wb, rb_in_projection), rows=fused)
        init = []
        for k in range(n_states):
            idx = 5 + k
            given = inputs[idx] if len(inputs) > idx and inputs[idx] is not None else None
            init.append(ctx.emit("take", given, np.array(d, np.int64), axis=0) if given is not None
                        else _zeros(ctx, h_dims, x.dtype))
        if fused:
            stacked = ctx.concat([ctx.emit("expand_dims", s, axis=0) for s in init], 0)
            cell = (lambda c, rows, states, r=r, rb=rb: [fused_cell(c, rows, states[0], r, rb)])
            first = (lambda c, new: c.emit("take", new[0], np.array(0, np.int64), axis=0))  # h_t (B, H)
            y, (state,) = _recurrence(ctx, node.op_type.lower(), x, xw, n, [stacked], h_dims, name == "reverse",
                                      cell, (n_states,) + h_dims, first)
            states = [ctx.emit("take", state, np.array(k, np.int64), axis=0) for k in range(n_states)]
        else:
            y, states = _recurrence(ctx, node.op_type.lower(), x, xw, n, init, h_dims, name == "reverse", step)
        ys.append(ctx.emit("expand_dims", y, axis=1))
        for k, s in enumerate(states):
            finals[k].append(ctx.emit("expand_dims", s, axis=0))
    outs = [ctx.concat(ys, 1)] + [ctx.concat(f, 0) for f in finals]
    if batch_first:
        outs = [ctx.emit("transpose", outs[0], axes=(2, 0, 1, 3))] + \
            [ctx.emit("transpose", f, axes=(1, 0, 2)) for f in outs[1:]]
    return outs


def _cols(c, v, k, size):
    return c.emit("strided_slice", v, begin=(k * size,), end=((k + 1) * size,), axes=(1,))


@converter("LSTM")
def lstm(ctx, node, inputs, attrs):
    _check_recurrent(node, inputs, attrs, ["Sigmoid", "Tanh", "Tanh"])
    if attrs.get("input_forget", 0):
        raise ConversionError("input_forget=1 is not supported")
    peep = inputs[7] if len(inputs) > 7 and inputs[7] is not None else None

    def make_step(ctx, r, rb, hidden, d):
        p = ctx.emit("take", peep, np.array(d, np.int64), axis=0) if peep is not None else None

        def step(c, x_gate, states):
            h, cell = states
            hr = c.emit("dense", h, r)  # (B, 4H), read by the four gates: its own kernel

            def gate(k):  # ONNX order: i, o, f, c
                return c.emit("add", _cols(c, hr, k, hidden), x_gate(c, k, hidden))

            i_, f_ = gate(0), gate(2)
            if p is not None:
                i_ = c.emit("add", i_, c.emit("multiply", cell, _rows(c, p, 0, hidden)))
                f_ = c.emit("add", f_, c.emit("multiply", cell, _rows(c, p, 2 * hidden, 3 * hidden)))
            new_c = c.emit("add", c.emit("multiply", c.emit("sigmoid", f_), cell),
                           c.emit("multiply", c.emit("sigmoid", i_), c.emit("tanh", gate(3))))
            o_ = gate(1)
            if p is not None:
                o_ = c.emit("add", o_, c.emit("multiply", new_c, _rows(c, p, hidden, 2 * hidden)))
            return [c.emit("multiply", c.emit("sigmoid", o_), c.emit("tanh", new_c)), new_c]

        return step, rb

    def fused_cell(c, rows, state, r, rb):
        return c.emit("lstm_cell", rows.xs, rows.t, state, r, gate_order=ONNX_GATE_ORDER)

    return _run_directions(ctx, node, inputs, attrs, 4, make_step, 2, None if peep is not None else fused_cell)


@converter("GRU")
def gru(ctx, node, inputs, attrs):
    _check_recurrent(node, inputs, attrs, ["Sigmoid", "Tanh"])
    before_reset = attrs.get("linear_before_reset", 0)

    def make_step(ctx, r, rb, hidden, d):
        rb_h = _rows(ctx, rb, 2 * hidden, 3 * hidden)
        r_zr, r_h = _rows(ctx, r, 0, 2 * hidden), _rows(ctx, r, 2 * hidden, 3 * hidden)

        def step(c, x_gate, states):
            (h,) = states
            hr = c.emit("dense", h, r if before_reset else r_zr)  # (B, 3H) or (B, 2H): its own kernel

            def sig_gate(k):  # ONNX order: z, r, h; z is computed twice so that each use fuses
                return c.emit("sigmoid", c.emit("add", _cols(c, hr, k, hidden), x_gate(c, k, hidden)))

            if before_reset:
                hh = c.emit("multiply", sig_gate(1), c.emit("add", _cols(c, hr, 2, hidden), rb_h))
            else:
                hh = c.emit("dense", c.emit("multiply", sig_gate(1), h), r_h)
            cand = c.emit("tanh", c.emit("add", x_gate(c, 2, hidden), hh))
            keep = c.emit("multiply", sig_gate(0), h)
            return [c.emit("add", c.emit("multiply", c.emit("subtract", np.ones((), cand.dtype), sig_gate(0)), cand),
                           keep)]

        # Rb adds to the projection, except Rb_h when the reset gate multiplies it (linear_before_reset)
        in_projection = ctx.concat([_rows(ctx, rb, 0, 2 * hidden), np.zeros(hidden, rb.dtype)], 0) \
            if before_reset else rb
        return step, in_projection

    def fused_cell(c, rows, state, r, rb):
        hidden = r.shape[1]
        # linear_before_reset=0: all of Rb is in the projection; the candidate's bias is then 0
        bias_n = _rows(c, rb, 2 * hidden, 3 * hidden) if before_reset else np.zeros(hidden, rb.dtype)
        return c.emit("gru_cell", rows.xs, rows.t, state, r, bias_n, gate_order=ONNX_GRU_ORDER,
                      linear_before_reset=1 if before_reset else 0)

    return _run_directions(ctx, node, inputs, attrs, 3, make_step, 1, fused_cell)
