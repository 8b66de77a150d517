"""Exported-graph patterns rewritten into the operators a model built in Python uses (IR -> IR).

PyTorch / transformers exports (opset 13-17) decompose what `nimble.models` writes as one operator:

* LayerNorm: ``mean -> subtract -> multiply(d, d) | power(d, 2) -> mean -> add eps -> sqrt -> divide
  [-> multiply gamma] [-> add beta]`` over the last axis -> ``layer_norm(x, gamma, beta, axis=-1, epsilon)``;
* GELU, erf form: ``x * 0.5 * (1 + erf(x / sqrt 2))`` (factors in any order, ``* (1/sqrt 2)`` too) -> ``gelu(x)``;
* GELU, tanh form (GPT-2, ONNX Gelu approximate="tanh"): ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``
  with ``x^3`` as ``power(x, 3)`` or ``x * x * x``, operands in any order -> ``gelu_tanh(x)``;
* attention scores: ``matmul(q, transpose(k)) [/ or * scale] [+ mask] -> softmax(last axis) -> matmul(., v)``
  over (batch, heads, seq, head) tensors with a static batch and head count -> ``batch_matmul`` (transpose_b) on
  (batch * heads, seq, head) views, ``multiply`` by the scale, ``softmax``, ``batch_matmul`` with v.

A pattern is rewritten only when it matches exactly: the constants (0.5, sqrt 2, exponent 2), the axes, a scalar
epsilon and per-feature gamma / beta are checked, and every intermediate value is used only inside the pattern;
anything else is left as it is. ``rewrite_patterns(mod)`` applies them to the top-level `let` chain of each
function, then drops the dead bindings.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.expr import Constant, Function
from ..ir.module import IRModule
from ..ir.types import TensorType
from .fold import eliminate_dead_code
from .let_chain import LetChain, close, last_axis, row_constant, scalar_of


# ---------------------------------------------------------------------------------------------- LayerNorm
def _match_layer_norm(chain: LetChain, call):
    """(x, gamma, beta, eps) when `call` ends a decomposed LayerNorm, else None."""
    gamma = beta = None
    node = call
    if node.op.name == "add":
        a, b = node.args
        inner, beta = (a, b) if isinstance(b, Constant) else (b, a)
        node = chain.producer(inner, ("multiply", "divide"))
        if node is None or not chain.used_only(inner):
            return None
    if node.op.name == "multiply":
        a, b = node.args
        inner, gamma = (a, b) if isinstance(b, Constant) else (b, a)
        normed = chain.producer(inner, "divide")
        if normed is None or not chain.used_only(inner):
            return None
        node = normed
    if node.op.name != "divide":
        return None
    diff, root = node.args
    sqrt = chain.producer(root, "sqrt")
    if sqrt is None or not chain.used_only(root):
        return None
    shifted = chain.producer(sqrt.args[0], "add")
    if shifted is None or not chain.used_only(sqrt.args[0]):
        return None
    a, b = shifted.args
    var_e, eps = (a, scalar_of(b)) if scalar_of(b) is not None else (b, scalar_of(a))
    variance = chain.producer(var_e, "mean")
    if eps is None or variance is None or not chain.used_only(var_e):
        return None
    square = chain.producer(variance.args[0], ("multiply", "power"))
    if square is None or not chain.used_only(variance.args[0]):
        return None
    if square.op.name == "multiply" and square.args != (diff, diff):
        return None
    if square.op.name == "power" and (square.args[0] is not diff or not close(scalar_of(square.args[1]), 2.0)):
        return None
    sub = chain.producer(diff, "subtract")
    if sub is None or not chain.used_only(diff, 3 if square.op.name == "multiply" else 2):
        return None
    x, mean_e = sub.args
    mean = chain.producer(mean_e, "mean")
    if mean is None or mean.args[0] is not x or not chain.used_only(mean_e):
        return None
    xt = chain.type_of(x)
    if not isinstance(xt, TensorType) or xt.dtype != "float32" or not isinstance(xt.shape[-1], int):
        return None
    rank, m = len(xt.shape), xt.shape[-1]
    for red in (mean, variance):
        if not last_axis(red.attrs, rank) or not red.attrs.get("keepdims", False):
            return None
    if gamma is not None and not row_constant(gamma, m) or beta is not None and not row_constant(beta, m):
        return None
    ones = Constant(np.ones((m,), np.float32))
    gamma = Constant(gamma.value.reshape(m).astype(np.float32)) if gamma is not None else ones
    beta = Constant(beta.value.reshape(m).astype(np.float32)) if beta is not None else Constant(np.zeros((m,),
                                                                                                       np.float32))
    return x, gamma, beta, eps


def _layer_norm(chain: LetChain, index: int, call) -> bool:
    found = _match_layer_norm(chain, call)
    if found is None:
        return False
    x, gamma, beta, eps = found
    chain.replace(index, chain.call("layer_norm", (x, gamma, beta), {"axis": -1, "epsilon": eps}))
    return True


# ---------------------------------------------------------------------------------------------- GELU (erf)
def _factors(chain: LetChain, e, top: bool, out: list) -> None:
    """The factors of a product tree of single-use multiplies."""
    inner = chain.producer(e, "multiply") if top or chain.used_only(e) else None
    if inner is None:
        out.append(e)
        return
    for a in inner.args:
        _factors(chain, a, False, out)


def _erf_input(chain: LetChain, e):
    """x when `e` is `1 + erf(x / sqrt 2)` (or `x * (1 / sqrt 2)`), single use inside."""
    one_plus = chain.producer(e, "add")
    if one_plus is None or not chain.used_only(e):
        return None
    a, b = one_plus.args
    erf_e = b if close(scalar_of(a), 1.0) else a if close(scalar_of(b), 1.0) else None
    erf = chain.producer(erf_e, "erf") if erf_e is not None else None
    if erf is None or not chain.used_only(erf_e):
        return None
    scaled = chain.producer(erf.args[0], ("divide", "multiply"))
    if scaled is None or not chain.used_only(erf.args[0]):
        return None
    x, c = scaled.args
    if scaled.op.name == "divide" and close(scalar_of(c), math.sqrt(2.0)):
        return x
    if scaled.op.name == "multiply":
        if close(scalar_of(c), 1 / math.sqrt(2.0)):
            return x
        if close(scalar_of(x), 1 / math.sqrt(2.0)):
            return c
    return None


def _gelu(chain: LetChain, index: int, call) -> bool:
    if call.op.name != "multiply":
        return False
    factors: list = []
    _factors(chain, chain.bindings[index][0], True, factors)
    if len(factors) != 3:
        return False
    halves = [f for f in factors if close(scalar_of(f), 0.5)]
    if len(halves) != 1:
        return False
    rest = [f for f in factors if f is not halves[0]]
    for x, other in (rest, rest[::-1]):
        if _erf_input(chain, other) is x and x is not other:
            t = chain.type_of(x)
            if isinstance(t, TensorType) and t.dtype == "float32":
                chain.replace(index, chain.call("gelu", (x,)))
                return True
    return False


# ---------------------------------------------------------------------------------------------- GELU (tanh)
def _either(chain: LetChain, call, value: float):
    """The other operand of a binary `call` one of whose operands is the scalar `value`, else None."""
    a, b = call.args
    return a if close(scalar_of(b), value) else b if close(scalar_of(a), value) else None


def _cube_of(chain: LetChain, e):
    """x when `e` is `power(x, 3)`, `x * x * x` or `x * (x * x)`, single use inside; else None."""
    node = chain.producer(e, ("power", "multiply"))
    if node is None or not chain.used_only(e):
        return None
    a, b = node.args
    if node.op.name == "power":
        return a if close(scalar_of(b), 3.0) else None
    for sq_e, x in ((a, b), (b, a)):
        sq = chain.producer(sq_e, "multiply")
        if sq is not None and chain.used_only(sq_e) and sq.args == (x, x):
            return x
    return None


def _tanh_input(chain: LetChain, e):
    """x when `e` is `1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))` (operands in any order), single use inside."""
    one_plus = chain.producer(e, "add")
    if one_plus is None or not chain.used_only(e):
        return None
    tanh_e = _either(chain, one_plus, 1.0)
    tanh = chain.producer(tanh_e, "tanh") if tanh_e is not None else None
    if tanh is None or not chain.used_only(tanh_e):
        return None
    scaled = chain.producer(tanh.args[0], "multiply")
    if scaled is None or not chain.used_only(tanh.args[0]):
        return None
    sum_e = _either(chain, scaled, math.sqrt(2.0 / math.pi))
    total = chain.producer(sum_e, "add") if sum_e is not None else None
    if total is None or not chain.used_only(sum_e):
        return None
    for x, cubic_e in (total.args, total.args[::-1]):
        cubic = chain.producer(cubic_e, "multiply")
        if cubic is None or not chain.used_only(cubic_e):
            continue
        cube_e = _either(chain, cubic, 0.044715)
        if cube_e is not None and _cube_of(chain, cube_e) is x:
            return x
    return None


def _gelu_tanh(chain: LetChain, index: int, call) -> bool:
    if call.op.name != "multiply":
        return False
    factors: list = []
    _factors(chain, chain.bindings[index][0], True, factors)
    if len(factors) != 3:
        return False
    halves = [f for f in factors if close(scalar_of(f), 0.5)]
    if len(halves) != 1:
        return False
    rest = [f for f in factors if f is not halves[0]]
    for x, other in (rest, rest[::-1]):
        if x is not other and _tanh_input(chain, other) is x:
            t = chain.type_of(x)
            if isinstance(t, TensorType) and t.dtype == "float32":
                chain.replace(index, chain.call("gelu_tanh", (x,)))
                return True
    return False


# ---------------------------------------------------------------------------------------------- attention
def _static_lead(t) -> tuple | None:
    """(batch, heads) of a rank-4 float32 type with both static, else None."""
    if not isinstance(t, TensorType) or len(t.shape) != 4 or t.dtype != "float32":
        return None
    b, h = t.shape[:2]
    return (b, h) if isinstance(b, int) and isinstance(h, int) else None


def _attention(chain: LetChain, index: int, call) -> bool:
    """`call` is the context matmul(probs, v) of an attention whose scores chain matches; rewrite the chain."""
    if call.op.name != "matmul":
        return False
    probs_e, v = call.args
    softmax = chain.producer(probs_e, "softmax")
    if softmax is None or not chain.used_only(probs_e) or not last_axis(softmax.attrs, 4):
        return False
    node_e = softmax.args[0]
    mask = scale = None
    found = _scores(chain, node_e)
    if found is None and chain.producer(node_e, "add") is not None and chain.used_only(node_e):
        a, b = chain.producer(node_e).args
        for inner_e, other in ((a, b), (b, a)):  # the scores on either side of the mask add
            found = _scores(chain, inner_e)
            if found is not None:
                mask = other
                break
    if found is None:
        return False
    node_e, node, scale = found
    q, kt_e = node.args
    kt = chain.producer(kt_e, "transpose")
    if kt is None or not chain.used_only(kt_e):
        return False
    qt, vt, st = chain.type_of(q), chain.type_of(v), chain.type_of(node_e)
    lead = _static_lead(qt)
    if lead is None or _static_lead(vt) != lead or _static_lead(st) != lead or chain.type_of(kt_e).shape[:2] != lead:
        return False
    if not isinstance(vt.shape[3], int) or len(kt.attrs["axes"]) != 4:
        return False
    if mask is not None and not _mask_ok(chain, mask, lead):
        return False
    b, h = lead
    d, dv = qt.shape[3], vt.shape[3]
    perm = tuple(kt.attrs["axes"])
    pos = index

    def bind(op, args, attrs=None, hint="attention"):
        nonlocal pos
        var = chain.bind_before(pos, chain.call(op, args, attrs), hint)
        pos += 1
        return var

    def three_d(t, hint):
        """(b * h, s, last) of a (b, h, s, last) value; with b = 1, a transpose of a (1, ...) tensor becomes the
        transpose of it squeezed (the builder model's heads-first copy, no flattening)."""
        tr = chain.producer(t, "transpose")
        if b == 1 and tr is not None and tr.attrs["axes"][0] == 0 and chain.type_of(tr.args[0]).shape[0] == 1:
            squeezed = bind("squeeze", (tr.args[0],), {"axis": (0,)}, hint)
            return bind("transpose", (squeezed,), {"axes": tuple(a - 1 for a in tr.attrs["axes"][1:])}, hint)
        return bind("reshape", (t,), {"newshape": (b * h, -1, chain.type_of(t).shape[3])}, hint)

    # k as (b, h, s, d): the same transpose with its last two axes swapped back
    k4 = bind("transpose", (kt.args[0],), {"axes": perm[:2] + (perm[3], perm[2])}, "key")
    q3, k3 = three_d(q, "query3"), three_d(k4, "key3")
    scores = bind("batch_matmul", (q3, k3), {"transpose_b": True}, "scores")
    if scale is not None:
        scores = bind("multiply", (scores, Constant(np.array(scale, np.float32))), hint="scaled")
    if mask is not None:
        if chain.type_of(mask).ndim == 4:
            mask = Constant(mask.value[0]) if isinstance(mask, Constant) else bind("squeeze", (mask,), {"axis": (0,)},
                                                                                    "mask3")
        scores = bind("add", (scores, mask), hint="masked")
    probs = bind("softmax", (scores,), {"axis": -1}, "probs")
    v3 = three_d(v, "value3")
    ctx3 = bind("batch_matmul", (probs, v3), {"transpose_b": False}, "context")
    back = chain.call("expand_dims", (ctx3,), {"axis": 0}) if b == 1 else chain.call(
        "reshape", (ctx3,), {"newshape": (b, h, -1, dv)})
    chain.replace(pos, back)
    return True


def _scores(chain: LetChain, e):
    """(matmul var, matmul call, scale or None) when `e` is `matmul(...)`, optionally divided or multiplied by a
    scalar constant, every step used once."""
    node = chain.producer(e, ("divide", "multiply", "matmul"))
    if node is None or not chain.used_only(e):
        return None
    if node.op.name == "matmul":
        return e, node, None
    a, b = node.args
    if scalar_of(b) is not None:
        scale, inner = (1.0 / scalar_of(b) if node.op.name == "divide" else scalar_of(b)), a
    elif node.op.name == "multiply" and scalar_of(a) is not None:
        scale, inner = scalar_of(a), b
    else:
        return None
    matmul = chain.producer(inner, "matmul")
    if matmul is None or not chain.used_only(inner):
        return None
    return inner, matmul, scale


def _mask_ok(chain: LetChain, mask, lead) -> bool:
    """A float mask that broadcasts the same over (b * h, s, s) as over (b, h, s, s): batch 1, rank <= 4."""
    t = chain.type_of(mask)
    if not isinstance(t, TensorType) or t.dtype != "float32" or len(t.shape) > 4:
        return False
    return lead[0] == 1 and (len(t.shape) < 4 or t.shape[0] == 1)


# ---------------------------------------------------------------------------------------------- driver
REWRITES = (_layer_norm, _gelu, _gelu_tanh, _attention)


def rewrite_chain(chain: LetChain) -> int:
    """Apply every rewrite to every binding, last binding first (a pattern is matched from its outermost call,
    so a LayerNorm is not taken for the bare normalisation inside it); the number of rewrites."""
    done = 0
    for rewrite in REWRITES:
        for index in range(len(chain.bindings) - 1, -1, -1):  # bindings inserted at `index` are not revisited
            producer = chain.producer(chain.bindings[index][0])
            if producer is not None and rewrite(chain, index, producer):
                done += 1
                chain.recount()
    return done


def rewrite_patterns(mod: IRModule) -> IRModule:
    """`mod` with the exported-graph patterns of every function's top-level let chain rewritten."""
    out = IRModule(dict(mod.functions), dict(mod.type_defs))
    changed = False
    for name, func in mod.functions.items():
        chain = LetChain.of(func.body)
        if rewrite_chain(chain):
            out.functions[name] = Function(func.params, chain.body(), func.ret_type, func.type_params)
            changed = True
    return eliminate_dead_code(out) if changed else mod
