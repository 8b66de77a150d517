"""A multi-layer LSTM over a sequence of any length, written as a recursive loop over time steps.

Weights use `torch.nn.LSTM`'s names and layout (`weight_ih_l0` (4H, I), `weight_hh_l0` (4H, H), `bias_ih_l0`,
`bias_hh_l0`, gates in the order i, f, g, o). `@main(xs: (?, I))` returns `(outputs (?, H), h_n (L, H),
c_n (L, H))`, like `nn.LSTM` on a batch of one with the batch axis dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops as nb
from ..ir.builder import Builder, const, get, if_, tuple_, var
from ..ir.expr import Function, GlobalVar
from ..ir.module import IRModule
from ..ir.types import Any, TensorType, TupleType
from .layers import uniform, weight


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


def _cell(weights: dict, layer: int, in_size: int, hidden: int) -> Function:
    """`@lstm_cell_l<layer>(x (1, in), h (1, H), c (1, H)) -> (h', c')`."""
    x, h, c = var("x", shape=(1, in_size)), var("h", shape=(1, hidden)), var("c", shape=(1, hidden))
    w_ih = weight(weights, f"weight_ih_l{layer}", (4 * hidden, in_size))
    w_hh = weight(weights, f"weight_hh_l{layer}", (4 * hidden, hidden))
    b_ih = weight(weights, f"bias_ih_l{layer}", (4 * hidden,))
    b_hh = weight(weights, f"bias_hh_l{layer}", (4 * hidden,))
    b = Builder()
    gates = b.let("gates", nb.add(nb.add(nb.dense(x, w_ih), b_ih), nb.add(nb.dense(h, w_hh), b_hh)))
    parts = b.let("parts", nb.split(gates, indices_or_sections=4, axis=1))
    in_gate = b.let("in_gate", nb.sigmoid(get(parts, 0)))
    forget_gate = b.let("forget_gate", nb.sigmoid(get(parts, 1)))
    cell_input = b.let("cell_input", nb.tanh(get(parts, 2)))
    out_gate = b.let("out_gate", nb.sigmoid(get(parts, 3)))
    new_c = b.let("new_c", nb.add(nb.multiply(forget_gate, c), nb.multiply(in_gate, cell_input)))
    new_h = b.let("new_h", nb.multiply(out_gate, nb.tanh(new_c)))
    state = TensorType((1, hidden))
    return Function([x, h, c], b.ret(tuple_(new_h, new_c)), TupleType((state, state)))


def build_module(weights: dict, config: LSTMConfig = LSTMConfig()) -> IRModule:
    """The LSTM as a module: `@main`, the time-step loop `@lstm_loop` and one `@lstm_cell_l<k>` per layer."""
    hidden, layers = config.hidden_size, config.num_layers
    mod = IRModule()
    cells = []
    for layer in range(layers):
        in_size = config.input_size if layer == 0 else hidden
        cells.append(mod.define(f"lstm_cell_l{layer}", _cell(weights, layer, in_size, hidden)))

    state_t = TensorType((1, hidden))
    result_t = TupleType((TensorType((Any, hidden)), TensorType((layers, hidden)), TensorType((layers, hidden))))
    loop = GlobalVar("lstm_loop")
    t, n = var("t", shape=(), dtype="int64"), var("n", shape=(), dtype="int64")
    xs, outputs = var("xs", shape=(Any, config.input_size)), var("outputs", shape=(Any, hidden))
    hs = [var(f"h_l{k}", type=state_t) for k in range(layers)]
    cs = [var(f"c_l{k}", type=state_t) for k in range(layers)]

    step = Builder()
    layer_input = step.let("x_t", nb.expand_dims(nb.take(xs, t, axis=0), axis=0))
    new_hs, new_cs = [], []
    for k in range(layers):
        state = step.let(f"state_l{k}", cells[k](layer_input, hs[k], cs[k]))
        new_hs.append(step.let(f"new_h_l{k}", get(state, 0)))
        new_cs.append(step.let(f"new_c_l{k}", get(state, 1)))
        layer_input = new_hs[k]
    new_outputs = step.let("new_outputs", nb.concatenate([outputs, layer_input], axis=0))
    next_t = nb.add(t, const(1, "int64"))
    recurse = step.ret(loop(next_t, n, xs, *new_hs, *new_cs, new_outputs))
    done = tuple_(outputs, nb.concatenate(hs, axis=0), nb.concatenate(cs, axis=0))
    params = [t, n, xs, *hs, *cs, outputs]
    mod.define(loop, Function(params, if_(nb.less(t, n), recurse, done), result_t))

    seq = var("xs", shape=(Any, config.input_size))
    b = Builder()
    length = b.let("length", nb.take(nb.shape_of(seq), const(0, "int64"), axis=0))
    zero_state = b.let("zero_state", nb.zeros((1, hidden)))
    states = [zero_state] * (2 * layers)
    body = b.ret(loop(const(0, "int64"), length, seq, *states, nb.zeros((0, hidden))))
    mod.define("main", Function([seq], body, result_t))
    return mod
