"""A binary Tree-LSTM (Tai et al. 2015, N-ary with N = 2) over the prelude's `Tree` ADT.

Leaves hold word vectors (1, I); internal nodes have no input, as in the Stanford Sentiment Treebank. The cell is
written with three `torch.nn.Linear` layers, named as below:

    leaf:  i, o, u = split(ioux(x), 3);                 c = sigmoid(i) * tanh(u)
    node:  hs = [h_left, h_right];  i, o, u = split(iouh(hs), 3);  f_left, f_right = split(sigmoid(fh(hs)), 2)
           c = sigmoid(i) * tanh(u) + f_left * c_left + f_right * c_right
    both:  h = sigmoid(o) * tanh(c)

`ioux`: Linear(I, 3H), `iouh`: Linear(2H, 3H), `fh`: Linear(2H, 2H). `@main(tree)` returns the root's (h, c).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ops as nb
from ..errors import ShapeError
from ..ir import prelude
from ..ir.builder import Builder, get, match, pctor, tuple_, var
from ..ir.expr import Function, GlobalVar
from ..ir.module import IRModule
from ..ir.types import TensorType, TupleType
from ..ir.values import ConstructorValue
from .layers import linear, uniform


@dataclass(frozen=True)
class TreeLSTMConfig:
    """Sizes of the Tree-LSTM (the paper's benchmark: input 300, hidden 150)."""

    input_size: int = 300
    hidden_size: int = 150


def _linear_shapes(config: TreeLSTMConfig) -> dict:
    h = config.hidden_size
    return {"ioux": (config.input_size, 3 * h), "iouh": (2 * h, 3 * h), "fh": (2 * h, 2 * h)}


def random_weights(config: TreeLSTMConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights as `nn.Linear` initialises them (uniform in +-1/sqrt(in_features)), from `seed`."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (in_f, out_f) in _linear_shapes(config).items():
        bound = 1.0 / np.sqrt(in_f)
        weights[f"{name}.weight"] = uniform(rng, (out_f, in_f), bound)
        weights[f"{name}.bias"] = uniform(rng, (out_f,), bound)
    return weights


def random_tree(rng: np.random.Generator, num_leaves: int, input_size: int):
    """A random binary tree as nested 2-tuples whose leaves are float32 vectors of `input_size`."""
    if num_leaves == 1:
        return rng.standard_normal(input_size).astype(np.float32)
    left = int(rng.integers(1, num_leaves))
    return (random_tree(rng, left, input_size), random_tree(rng, num_leaves - left, input_size))


def to_value(tree, input_size: int) -> ConstructorValue:
    """A nested-tuple tree (leaves: vectors of `input_size`) as the interpreter's `Tree[Tensor[(1, I)]]` value."""
    if isinstance(tree, tuple):
        if len(tree) != 2:
            raise ShapeError(f"a tree node must have 2 children, got {len(tree)}")
        return ConstructorValue(prelude.Node, (to_value(tree[0], input_size), to_value(tree[1], input_size)))
    leaf = np.asarray(tree, dtype=np.float32).reshape(1, -1)
    if leaf.shape[1] != input_size:
        raise ShapeError(f"a tree leaf must hold {input_size} values, got {leaf.shape[1]}")
    return ConstructorValue(prelude.Leaf, (leaf,))


def to_inputs(tree, config: TreeLSTMConfig = TreeLSTMConfig()) -> tuple:
    """The arguments of `@main` for one nested-tuple tree."""
    return (to_value(tree, config.input_size),)


def _gates(b: Builder, iou):
    parts = b.let("iou_parts", nb.split(iou, indices_or_sections=3, axis=1))
    in_gate = b.let("i", nb.sigmoid(get(parts, 0)))
    out_gate = b.let("o", nb.sigmoid(get(parts, 1)))
    return in_gate, out_gate, b.let("u", nb.tanh(get(parts, 2)))


def _leaf_cell(weights: dict, config: TreeLSTMConfig, state_t: TupleType) -> Function:
    h = config.hidden_size
    x = var("x", shape=(1, config.input_size))
    b = Builder()
    i, o, u = _gates(b, b.let("iou", linear(x, weights, "ioux", config.input_size, 3 * h)))
    c = b.let("c", nb.multiply(i, u))
    return Function([x], b.ret(tuple_(nb.multiply(o, nb.tanh(c)), c)), state_t)


def _node_cell(weights: dict, config: TreeLSTMConfig, state_t: TupleType) -> Function:
    h = config.hidden_size
    h_l, c_l, h_r, c_r = (var(n, shape=(1, h)) for n in ("h_left", "c_left", "h_right", "c_right"))
    b = Builder()
    hs = b.let("hs", nb.concatenate([h_l, h_r], axis=1))
    i, o, u = _gates(b, b.let("iou", linear(hs, weights, "iouh", 2 * h, 3 * h)))
    forget_gates = nb.sigmoid(linear(hs, weights, "fh", 2 * h, 2 * h))
    forget = b.let("forget", nb.split(forget_gates, indices_or_sections=2, axis=1))
    kept = nb.add(nb.multiply(get(forget, 0), c_l), nb.multiply(get(forget, 1), c_r))
    c = b.let("c", nb.add(nb.multiply(i, u), kept))
    return Function([h_l, c_l, h_r, c_r], b.ret(tuple_(nb.multiply(o, nb.tanh(c)), c)), state_t)


def build_module(weights: dict, config: TreeLSTMConfig = TreeLSTMConfig()) -> IRModule:
    """The Tree-LSTM as a module: `@main(tree)`, the recursion `@tree_lstm` and the cells."""
    mod = prelude.add_prelude(IRModule())
    state = TensorType((1, config.hidden_size))
    state_t = TupleType((state, state))
    leaf_cell = mod.define("leaf_cell", _leaf_cell(weights, config, state_t))
    node_cell = mod.define("node_cell", _node_cell(weights, config, state_t))

    rec = GlobalVar("tree_lstm")
    tree_t = prelude.tree_type(TensorType((1, config.input_size)))
    t = var("tree", type=tree_t)
    x, left, right = var("x"), var("left"), var("right")
    node = Builder()
    ls = node.let("left_state", rec(left))
    rs = node.let("right_state", rec(right))
    node_body = node.ret(node_cell(get(ls, 0), get(ls, 1), get(rs, 0), get(rs, 1)))
    body = match(t, [(pctor(prelude.Leaf, x), leaf_cell(x)), (pctor(prelude.Node, left, right), node_body)])
    mod.define(rec, Function([t], body, state_t))

    root = var("tree", type=tree_t)
    mod.define("main", Function([root], rec(root), state_t))
    return mod
