"""The BERT encoder: types, and outputs against plain numpy and against a torch BertLayer stack."""
import math

import numpy as np
import pytest

import nimble
import nimble.ir as ir
from nimble.ir import Any, TensorType
from nimble.models import bert
from nimble.models.torch_peers import torch_bert

SMALL = bert.BertConfig(num_layers=2, hidden_size=64, num_heads=4, intermediate_size=128)


@pytest.fixture(scope="module")
def model():
    weights = bert.random_weights(SMALL, seed=4)
    return weights, bert.build_module(weights, SMALL)


def numpy_bert(weights: dict, x: np.ndarray, config: bert.BertConfig) -> np.ndarray:
    """An independent encoder: per-head loops, float64."""
    erf = np.vectorize(math.erf)

    def lin(name, v):
        return v @ weights[f"{name}.weight"].T.astype(np.float64) + weights[f"{name}.bias"]

    def norm(name, v):
        mean = v.mean(-1, keepdims=True)
        var = ((v - mean) ** 2).mean(-1, keepdims=True)
        return (v - mean) / np.sqrt(var + config.layer_norm_eps) * weights[f"{name}.weight"] + weights[f"{name}.bias"]

    h = x.astype(np.float64)
    d = config.head_size
    for layer in range(config.num_layers):
        p = f"layer.{layer}."
        q, k, v = (lin(p + f"attention.self.{n}", h) for n in ("query", "key", "value"))
        heads = []
        for head in range(config.num_heads):
            cols = slice(head * d, (head + 1) * d)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(d)
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            heads.append(probs @ v[:, cols])
        attn = norm(p + "attention.output.LayerNorm", lin(p + "attention.output.dense", np.concatenate(heads, -1)) + h)
        inter = lin(p + "intermediate.dense", attn)
        inter = 0.5 * inter * (1 + erf(inter / math.sqrt(2)))
        h = norm(p + "output.LayerNorm", lin(p + "output.dense", inter) + attn)
    return h


def test_main_type_has_a_dynamic_sequence_axis(model):
    _, mod = model
    main = ir.infer_types(mod).function("main")
    assert main.arg_types == (TensorType((Any, 64)),)
    assert main.ret_type == TensorType((Any, 64))


def test_base_config_is_bert_base():
    base = bert.BertConfig()
    assert (base.num_layers, base.hidden_size, base.num_heads, base.intermediate_size) == (12, 768, 12, 3072)
    assert base.layer_norm_eps == 1e-12


def test_heads_must_divide_hidden_size():
    with pytest.raises(nimble.ShapeError, match="hidden_size 64 must divide into num_heads 5"):
        bert.BertConfig(hidden_size=64, num_heads=5)


@pytest.mark.parametrize("length", [1, 2, 3, 7, 16, 33])
def test_bert_matches_numpy(model, length):
    weights, mod = model
    x = np.random.default_rng(length).standard_normal((length, SMALL.hidden_size)).astype(np.float32)
    got = ir.evaluate(mod, *bert.to_inputs(x), check_types=True)
    np.testing.assert_allclose(got, numpy_bert(weights, x, SMALL), rtol=1e-4, atol=1e-4)


def test_missing_weight_is_named():
    weights = bert.random_weights(SMALL, seed=0)
    del weights["layer.1.output.dense.bias"]
    with pytest.raises(nimble.ShapeError, match="weights has no 'layer.1.output.dense.bias'"):
        bert.build_module(weights, SMALL)


def test_bert_matches_torch_for_20_lengths(model):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    weights, mod = model
    cfg = SMALL
    ref = torch_bert(weights, cfg)
    rng = np.random.default_rng(5)
    for length in rng.integers(1, 129, size=20):
        x = rng.standard_normal((1, int(length), cfg.hidden_size)).astype(np.float32)
        with torch.no_grad():
            want = ref(torch.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(ir.evaluate(mod, *bert.to_inputs(x)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_bert_base_matches_numpy_on_a_short_sequence():
    base = bert.BertConfig()
    weights = bert.random_weights(base, seed=0)
    mod = bert.build_module(weights, base)
    assert ir.infer_types(mod).function("main").ret_type == TensorType((Any, 768))
    x = np.random.default_rng(0).standard_normal((5, 768)).astype(np.float32)
    np.testing.assert_allclose(ir.evaluate(mod, *bert.to_inputs(x)), numpy_bert(weights, x, base), rtol=1e-4, atol=1e-4)
