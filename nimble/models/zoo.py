"""Ready-made model modules with seeded random weights (what ``nimble-tune --model`` takes).

    nimble-tune --model nimble.models.zoo:bert_base --buckets-from histogram.json
"""
from __future__ import annotations

from . import bert, lstm, tree_lstm


def bert_base(seed: int = 0):
    """BERT-base encoder (12 layers, 768 hidden, 12 heads, 3072 intermediate), dynamic length."""
    cfg = bert.BertConfig()
    return bert.build_module(bert.random_weights(cfg, seed), cfg)


def lstm_2x512(seed: int = 0):
    """2-layer LSTM, input 300, hidden 512, over a sequence of any length."""
    cfg = lstm.LSTMConfig()
    return lstm.build_module(lstm.random_weights(cfg, seed), cfg)


def tree_lstm_150(seed: int = 0):
    """Binary Tree-LSTM, input 300, hidden 150, over a tree of any shape."""
    cfg = tree_lstm.TreeLSTMConfig()
    return tree_lstm.build_module(tree_lstm.random_weights(cfg, seed), cfg)
