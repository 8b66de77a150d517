"""PyTorch versions of the zoo models, loaded with nimble's weights: the peers tests compare against and
``scripts/bench_models.py`` measures (through ``scripts/peers.py``). torch is imported inside each builder (optional).

    torch_lstm(weights, config)       nn.LSTM (nimble's weights use its names and layout)
    torch_tree_lstm(weights, config)  a recursive binary Tree-LSTM of nn.Linear layers over nested-tuple trees
    torch_bert(weights, config)       transformers' BertLayer stack (no mask) with BertEncoder's state-dict names
"""
from __future__ import annotations

import math


def torch_lstm(weights: dict, config):
    """`nn.LSTM` loaded with nimble's weights (they use its names and layout)."""
    import torch

    module = torch.nn.LSTM(config.input_size, config.hidden_size, config.num_layers)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return module.eval()


def torch_tree_lstm(weights: dict, config):
    """A binary Tree-LSTM written as a recursive `nn.Module` over nested-tuple trees of (1, I) tensors."""
    import torch

    nn, hidden = torch.nn, config.hidden_size

    class BinaryTreeLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.ioux = nn.Linear(config.input_size, 3 * hidden)
            self.iouh = nn.Linear(2 * hidden, 3 * hidden)
            self.fh = nn.Linear(2 * hidden, 2 * hidden)

        def forward(self, tree):
            if not isinstance(tree, tuple):
                i, o, u = torch.split(self.ioux(tree), hidden, dim=-1)
                c = torch.sigmoid(i) * torch.tanh(u)
                return torch.sigmoid(o) * torch.tanh(c), c
            (hl, cl), (hr, cr) = self(tree[0]), self(tree[1])
            hs = torch.cat([hl, hr], dim=-1)
            i, o, u = torch.split(self.iouh(hs), hidden, dim=-1)
            fl, fr = torch.split(torch.sigmoid(self.fh(hs)), hidden, dim=-1)
            c = torch.sigmoid(i) * torch.tanh(u) + fl * cl + fr * cr
            return torch.sigmoid(o) * torch.tanh(c), c

    module = BinaryTreeLSTM()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return module.eval()


def torch_bert(weights: dict, config):
    """A BERT encoder (transformers' BertLayer stack, no mask) on (1, seq, hidden) inputs."""
    import torch

    nn, F = torch.nn, torch.nn.functional
    h, heads, d = config.hidden_size, config.num_heads, config.head_size

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

        def forward(self, x):
            b, s, _ = x.shape

            def split(t):
                return t.view(b, s, heads, d).transpose(1, 2)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            return (probs @ v).transpose(1, 2).reshape(b, s, h)

    class DenseNorm(nn.Module):
        def __init__(self, in_f):
            super().__init__()
            self.dense = nn.Linear(in_f, h)
            self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)

        def forward(self, x, residual):
            return self.LayerNorm(self.dense(x) + residual)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self, self.output = SelfAttention(), DenseNorm(h)

        def forward(self, x):
            return self.output(self.self(x), x)

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(h, config.intermediate_size)

        def forward(self, x):
            return F.gelu(self.dense(x))

    class BertLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention, self.intermediate = Attention(), Intermediate()
            self.output = DenseNorm(config.intermediate_size)

        def forward(self, x):
            attn = self.attention(x)
            return self.output(self.intermediate(attn), attn)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList(BertLayer() for _ in range(config.num_layers))

        def forward(self, x):
            for layer in self.layer:
                x = layer(x)
            return x

    module = Encoder()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return module.eval()
