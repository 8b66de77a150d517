"""Building blocks the models share: named weight constants and torch-style linear layers."""
from __future__ import annotations

import numpy as np

from .. import ops as nb
from ..errors import ShapeError
from ..ir.expr import Constant, Expr


def weight(weights: dict, name: str, shape: tuple) -> Constant:
    """The float32 constant `weights[name]`, checked against the expected `shape`."""
    if name not in weights:
        raise ShapeError(f"weights has no {name!r}; expected an array of shape {shape}")
    array = np.asarray(weights[name], dtype=np.float32)
    if array.shape != tuple(shape):
        raise ShapeError(f"weight {name!r} must have shape {tuple(shape)}, got {array.shape}")
    return Constant(array, name)


def linear(x: Expr, weights: dict, prefix: str, in_features: int, out_features: int) -> Expr:
    """`x @ W^T + b` with W = weights[prefix + '.weight'] (out, in) and b = weights[prefix + '.bias'], as nn.Linear."""
    w = weight(weights, f"{prefix}.weight", (out_features, in_features))
    b = weight(weights, f"{prefix}.bias", (out_features,))
    return nb.add(nb.dense(x, w), b)


def uniform(rng: np.random.Generator, shape: tuple, bound: float) -> np.ndarray:
    """float32 values uniform in [-bound, bound] (torch's default init for LSTM and Linear)."""
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)
