"""A multi-layer LSTM over a sequence of any length: per layer one input-projection GEMM, then a recursive loop
over time steps whose step is one fused `lstm_cell` kernel (h @ W_hh^T, the gates and the state update).

Weights use `torch.nn.LSTM`'s names and layout (`weight_ih_l0` (4H, I), `weight_hh_l0` (4H, H), `bias_ih_l0`,
`bias_hh_l0`, gates in the order i, f, g, o). `@main(xs: (?, I))` returns `(outputs (?, H), h_n (L, H),
c_n (L, H))`, like `nn.LSTM` on a batch of one with the batch axis dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops as nb
from ..ir import prelude
from ..ir.builder import Builder, const, get, if_, tuple_, var
from ..ir.expr import Constant, Function, GlobalVar
from ..ir.module import IRModule
from ..ir.types import Any, TensorType, TupleType
from .layers import uniform, weight
from .row_stack import define_row_stack


@dataclass(frozen=True)
class LSTMConfig:
    """Sizes of the LSTM (the paper's benchmark: 2 layers, input 300, hidden 512)."""

    input_size: int = 300
    hidden_size: int = 512
    num_layers: int = 2


def random_weights(config: LSTMConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights as `nn.LSTM` initialises them (uniform in +-1/sqrt(H)), from `seed`."""
    rng = np.random.default_rng(seed)
    h, bound = config.hidden_size, 1.0 / np.sqrt(config.hidden_size)
    weights = {}
    for layer in range(config.num_layers):
        in_size = config.input_size if layer == 0 else h
        weights[f"weight_ih_l{layer}"] = uniform(rng, (4 * h, in_size), bound)
        weights[f"weight_hh_l{layer}"] = uniform(rng, (4 * h, h), bound)
        weights[f"bias_ih_l{layer}"] = uniform(rng, (4 * h,), bound)
        weights[f"bias_hh_l{layer}"] = uniform(rng, (4 * h,), bound)
    return weights


def to_inputs(sequence: np.ndarray) -> tuple:
    """The arguments of `@main` for one sequence of shape (length, input_size)."""
    return (np.ascontiguousarray(sequence, dtype=np.float32),)


def _projection(weights: dict, layer: int, xs, in_size: int, hidden: int):
    """`xs (T, in) @ W_ih^T + (b_ih + b_hh)` -> (T, 4H): the input side of every gate of every step, one GEMM."""
    w_ih = weight(weights, f"weight_ih_l{layer}", (4 * hidden, in_size))
    b_ih = weight(weights, f"bias_ih_l{layer}", (4 * hidden,))
    b_hh = weight(weights, f"bias_hh_l{layer}", (4 * hidden,))
    return nb.add(nb.dense(xs, w_ih), Constant(b_ih.value + b_hh.value, f"bias_l{layer}"))


def _layer_loop(weights: dict, layer: int, hidden: int, loop: GlobalVar) -> Function:
    """`@lstm_loop_l<layer>(t, n, proj (T, 4H), state (2, 1, H), steps) -> (steps, state_n)`.

    A step is one `lstm_cell` kernel besides the counter: `h @ W_hh^T`, row t of the projection, the gates and
    the c / h update together, state = stack(h, c); h_t, as a (1, H) row, is consed onto `steps` (newest
    first).
    """
    state_t = TensorType((2, 1, hidden))
    steps_t = prelude.list_type(TensorType((Any, hidden)))
    t, n = var("t", shape=(), dtype="int64"), var("n", shape=(), dtype="int64")
    proj = var("proj", shape=(Any, 4 * hidden))
    state, steps = var("state", type=state_t), var("steps", type=steps_t)
    w_hh = weight(weights, f"weight_hh_l{layer}", (4 * hidden, hidden))
    b = Builder()
    new_state = b.let("new_state", nb.lstm_cell(proj, t, state, w_hh))
    new_h = b.let("new_h", nb.take(new_state, const(0, "int64"), axis=0))  # (1, H): the step's output row
    recurse = b.ret(loop(nb.add(t, const(1, "int64")), n, proj, new_state, prelude.Cons(new_h, steps)))
    body = if_(nb.less(t, n), recurse, tuple_(steps, state))
    return Function([t, n, proj, state, steps], body, TupleType((steps_t, state_t)))


def build_module(weights: dict, config: LSTMConfig = LSTMConfig()) -> IRModule:
    """The LSTM as a module: `@main`, one time-step loop `@lstm_loop_l<k>` per layer and `@stack_steps`.

    Layer k: one GEMM projects its whole input sequence (T, in) to the gates' input side (T, 4H); the loop
    runs the recurrence over it and collects h_t in a list; `@stack_steps` joins the list into (T, H), the
    next layer's input.
    """
    hidden, layers = config.hidden_size, config.num_layers
    mod = IRModule()
    stack = define_row_stack(mod, "stack_steps", TensorType((Any, hidden)))
    loops = []
    for layer in range(layers):
        loop = GlobalVar(f"lstm_loop_l{layer}")
        mod.define(loop, _layer_loop(weights, layer, hidden, loop))
        loops.append(loop)

    seq = var("xs", shape=(Any, config.input_size))
    b = Builder()
    length = b.let("length", nb.take(nb.shape_of(seq), const(0, "int64"), axis=0))
    zero_state = b.let("zero_state", nb.zeros((2, 1, hidden)))
    no_steps = b.let("no_steps", nb.zeros((0, hidden)))
    layer_input, in_size, hs, cs = seq, config.input_size, [], []
    for layer in range(layers):
        proj = b.let(f"proj_l{layer}", _projection(weights, layer, layer_input, in_size, hidden))
        run = b.let(f"run_l{layer}", loops[layer](const(0, "int64"), length, proj, zero_state, prelude.Nil()))
        state_n = b.let(f"state_n_l{layer}", get(run, 1))
        hs.append(nb.take(state_n, const(0, "int64"), axis=0))
        cs.append(nb.take(state_n, const(1, "int64"), axis=0))
        layer_input = b.let(f"outputs_l{layer}", stack(get(run, 0), no_steps))
        in_size = hidden
    body = b.ret(tuple_(layer_input, nb.concatenate(hs, axis=0), nb.concatenate(cs, axis=0)))
    result_t = TupleType((TensorType((Any, hidden)), TensorType((layers, hidden)), TensorType((layers, hidden))))
    mod.define("main", Function([seq], body, result_t))
    return mod
