"""A multi-layer LSTM over a sequence of any length: per layer one input-projection GEMM, then a recursive loop
over time steps that only does h @ W_hh^T and the gates (as ONNX Runtime and PyTorch run it).

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


def _gate(gates, proj, t, k: int, hidden: int):
    """Gate k's pre-activation at step t: its columns of `h @ W_hh^T` plus those of row t of the projection.

    Each gate takes its own row of the projection (a take per gate, not one shared): a value used once fuses
    into its consumer, so the row never goes through memory on its own.
    """
    cols = dict(begin=(k * hidden,), end=((k + 1) * hidden,), axes=(1,))
    row = nb.expand_dims(nb.take(proj, t, axis=0), axis=0)
    return nb.add(nb.strided_slice(gates, **cols), nb.strided_slice(row, **cols))


def _layer_loop(weights: dict, layer: int, hidden: int, loop: GlobalVar) -> Function:
    """`@lstm_loop_l<layer>(t, n, proj (T, 4H), h (1, H), c (1, H), steps) -> (steps, h_n, c_n)`.

    A step is three kernels besides the counter: `h @ W_hh^T` (the dense kernel alone, as tuned), c' (three
    gates, reading row t of the projection) and h' (the output gate and c'); h' is consed onto `steps`
    (newest first).
    """
    state_t = TensorType((1, hidden))
    steps_t = prelude.list_type(TensorType((Any, hidden)))
    t, n = var("t", shape=(), dtype="int64"), var("n", shape=(), dtype="int64")
    proj = var("proj", shape=(Any, 4 * hidden))
    h, c, steps = var("h", type=state_t), var("c", type=state_t), var("steps", type=steps_t)
    w_hh = weight(weights, f"weight_hh_l{layer}", (4 * hidden, hidden))
    b = Builder()
    gates = b.let("gates", nb.dense(h, w_hh))
    in_gate = nb.sigmoid(_gate(gates, proj, t, 0, hidden))
    forget_gate = nb.sigmoid(_gate(gates, proj, t, 1, hidden))
    cell_input = nb.tanh(_gate(gates, proj, t, 2, hidden))
    new_c = b.let("new_c", nb.add(nb.multiply(forget_gate, c), nb.multiply(in_gate, cell_input)))
    out_gate = nb.sigmoid(_gate(gates, proj, t, 3, hidden))
    new_h = b.let("new_h", nb.multiply(out_gate, nb.tanh(new_c)))
    recurse = b.ret(loop(nb.add(t, const(1, "int64")), n, proj, new_h, new_c, prelude.Cons(new_h, steps)))
    body = if_(nb.less(t, n), recurse, tuple_(steps, h, c))
    return Function([t, n, proj, h, c, steps], body, TupleType((steps_t, state_t, state_t)))


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
    zero_state = b.let("zero_state", nb.zeros((1, hidden)))
    no_steps = b.let("no_steps", nb.zeros((0, hidden)))
    layer_input, in_size, hs, cs = seq, config.input_size, [], []
    for layer in range(layers):
        proj = b.let(f"proj_l{layer}", _projection(weights, layer, layer_input, in_size, hidden))
        run = b.let(f"run_l{layer}", loops[layer](const(0, "int64"), length, proj, zero_state, zero_state,
                                                  prelude.Nil()))
        hs.append(b.let(f"h_n_l{layer}", get(run, 1)))
        cs.append(b.let(f"c_n_l{layer}", get(run, 2)))
        layer_input = b.let(f"outputs_l{layer}", stack(get(run, 0), no_steps))
        in_size = hidden
    body = b.ret(tuple_(layer_input, nb.concatenate(hs, axis=0), nb.concatenate(cs, axis=0)))
    result_t = TupleType((TensorType((Any, hidden)), TensorType((layers, hidden)), TensorType((layers, hidden))))
    mod.define("main", Function([seq], body, result_t))
    return mod
