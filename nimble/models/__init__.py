"""The paper's dynamic models written in the IR: `lstm`, `tree_lstm` and `bert`; `tree_lstm_batched` is the
Tree-LSTM with the nodes of one height run together (autobatching), same weights and results.

Each module offers a config dataclass, `random_weights(config, seed)` (PyTorch names and layouts),
`build_module(weights, config)` and `to_inputs(...)` (the arguments of `@main` for one input).
"""
from . import bert, lstm, tree_lstm, tree_lstm_batched

__all__ = ["bert", "lstm", "tree_lstm", "tree_lstm_batched"]
