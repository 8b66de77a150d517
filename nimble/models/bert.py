"""A BERT encoder (a stack of transformer layers) over a sequence of any length.

Each layer is `transformers`' BertLayer: self-attention with query/key/value/output dense layers, residual +
LayerNorm (eps 1e-12), an intermediate dense layer with erf-gelu, an output dense layer, residual + LayerNorm.
Weights use BertEncoder's state-dict names (`layer.0.attention.self.query.weight`, ...; nn.Linear layout).
`@main(hidden_states: (?, hidden))` returns (?, hidden): one sequence, the batch axis dropped, no attention mask
(a dynamic length needs no padding).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import ops as nb
from ..errors import ShapeError
from ..ir.builder import Builder, const, var
from ..ir.expr import Function
from ..ir.module import IRModule
from ..ir.types import Any, TensorType
from .layers import linear, uniform, weight


@dataclass(frozen=True)
class BertConfig:
    """Sizes of the encoder; the defaults are BERT-base."""

    num_layers: int = 12
    hidden_size: int = 768
    num_heads: int = 12
    intermediate_size: int = 3072
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ShapeError(f"hidden_size {self.hidden_size} must divide into num_heads {self.num_heads}")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


def _linear_shapes(config: BertConfig, layer: int) -> dict:
    h, m = config.hidden_size, config.intermediate_size
    p = f"layer.{layer}."
    return {
        p + "attention.self.query": (h, h), p + "attention.self.key": (h, h), p + "attention.self.value": (h, h),
        p + "attention.output.dense": (h, h), p + "intermediate.dense": (h, m), p + "output.dense": (m, h),
    }


def random_weights(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights (linear layers uniform in +-1/sqrt(in), LayerNorm near 1 / 0), from `seed`."""
    rng = np.random.default_rng(seed)
    weights = {}
    for layer in range(config.num_layers):
        for name, (in_f, out_f) in _linear_shapes(config, layer).items():
            bound = 1.0 / np.sqrt(in_f)
            weights[f"{name}.weight"] = uniform(rng, (out_f, in_f), bound)
            weights[f"{name}.bias"] = uniform(rng, (out_f,), bound)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"layer.{layer}.{norm}.weight"] = (1.0 + uniform(rng, (config.hidden_size,), 0.1))
            weights[f"layer.{layer}.{norm}.bias"] = uniform(rng, (config.hidden_size,), 0.1)
    return weights


def to_inputs(hidden_states: np.ndarray) -> tuple:
    """The arguments of `@main` for hidden states of shape (length, hidden) or (1, length, hidden)."""
    array = np.asarray(hidden_states, dtype=np.float32)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise ShapeError(f"hidden_states must hold one sequence, got a batch of {array.shape[0]}")
        array = array[0]
    return (np.ascontiguousarray(array),)


def _layer_norm(x, weights: dict, prefix: str, config: BertConfig):
    gamma = weight(weights, f"{prefix}.weight", (config.hidden_size,))
    beta = weight(weights, f"{prefix}.bias", (config.hidden_size,))
    return nb.layer_norm(x, gamma, beta, axis=-1, epsilon=config.layer_norm_eps)


def _layer(weights: dict, config: BertConfig, index: int) -> Function:
    """`@layer<index>(x: (?, hidden)) -> (?, hidden)`."""
    h, heads, d = config.hidden_size, config.num_heads, config.head_size
    p = f"layer.{index}."
    x = var("x", shape=(Any, h))
    b = Builder()

    def heads_first(name: str, projection: str):
        proj = b.let(name, linear(x, weights, p + "attention.self." + projection, h, h))
        return b.let(f"{name}_heads", nb.transpose(nb.reshape(proj, (-1, heads, d)), axes=(1, 0, 2)))

    q, k, v = heads_first("query", "query"), heads_first("key", "key"), heads_first("value", "value")
    scores = b.let("scores", nb.multiply(nb.batch_matmul(q, k), const(1.0 / math.sqrt(d), "float32")))
    probs = b.let("probs", nb.softmax(scores, axis=-1))
    context = b.let("context", nb.batch_matmul(probs, v, transpose_b=False))
    merged = b.let("merged", nb.reshape(nb.transpose(context, axes=(1, 0, 2)), (-1, h)))
    attn = b.let("attention_out", linear(merged, weights, p + "attention.output.dense", h, h))
    attn = b.let("attention_norm", _layer_norm(nb.add(attn, x), weights, p + "attention.output.LayerNorm", config))
    inter = b.let("intermediate", nb.gelu(linear(attn, weights, p + "intermediate.dense", h, config.intermediate_size)))
    out = b.let("output", linear(inter, weights, p + "output.dense", config.intermediate_size, h))
    result = _layer_norm(nb.add(out, attn), weights, p + "output.LayerNorm", config)
    return Function([x], b.ret(result), TensorType((Any, h)))


def build_module(weights: dict, config: BertConfig = BertConfig()) -> IRModule:
    """The encoder as a module: `@main` calls `@layer0`, `@layer1`, ... in turn."""
    mod = IRModule()
    layers = [mod.define(f"layer{i}", _layer(weights, config, i)) for i in range(config.num_layers)]
    x = var("hidden_states", shape=(Any, config.hidden_size))
    b = Builder()
    cur = x
    for i, layer in enumerate(layers):
        cur = b.let(f"h{i + 1}", layer(cur))
    mod.define("main", Function([x], b.ret(cur), TensorType((Any, config.hidden_size))))
    return mod
