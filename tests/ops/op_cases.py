"""Hypothesis strategies of inputs + attributes for every registered operator (dims include 0, 1 and primes)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

DIMS = st.sampled_from([0, 1, 2, 3, 5, 7])
POSITIVE_DIMS = st.sampled_from([1, 2, 3, 5, 7])


@dataclass
class Case:
    args: list
    attrs: dict = field(default_factory=dict)
    any_ok: bool = True  # the type relation accepts the first argument with every dim Any


def shapes(min_rank=0, max_rank=3, dims=DIMS):
    return st.lists(dims, min_size=min_rank, max_size=max_rank).map(tuple)


def array(draw, shape, dtype="float32", low=-3.0, high=3.0):
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def broadcastable_pair(draw):
    """Two shapes that broadcast: a base shape, each axis kept or set to 1, leading axes maybe dropped."""
    base = draw(shapes(0, 3))
    out = []
    for _ in range(2):
        s = tuple(1 if draw(st.booleans()) else d for d in base)
        out.append(s[draw(st.integers(0, len(s))):])
    return out


def _unary(low=-3.0, high=3.0):
    @st.composite
    def case(draw):
        return Case([array(draw, draw(shapes()), low=low, high=high)])

    return case()


def _int_unary(dtype, low, high):
    @st.composite
    def case(draw):
        return Case([array(draw, draw(shapes()), dtype, low, high)])

    return case()


def _binary(dtype="float32", low=-3.0, high=3.0):
    @st.composite
    def case(draw):
        a, b = broadcastable_pair(draw)
        return Case([array(draw, a, dtype, low, high), array(draw, b, dtype, low, high)])

    return case()


@st.composite
def _where(draw):
    a, b = broadcastable_pair(draw)
    return Case([array(draw, a, "bool"), array(draw, b), array(draw, a[draw(st.integers(0, len(a))):])])


@st.composite
def _cast(draw):
    return Case([array(draw, draw(shapes()))], {"dtype": draw(st.sampled_from(["int64", "float64", "int32"]))})


@st.composite
def _dense(draw):
    lead, k, m = draw(shapes(0, 2)), draw(DIMS), draw(DIMS)
    return Case([array(draw, lead + (k,)), array(draw, (m, k))])


@st.composite
def _dense_integer(draw):
    lead, k, m = draw(shapes(0, 2)), draw(DIMS), draw(DIMS)
    xd, wd = draw(st.sampled_from([("uint8", "int8"), ("int8", "uint8"), ("int8", "int8"), ("uint8", "uint8")]))
    lo = {"uint8": 0, "int8": -128}
    return Case([array(draw, lead + (k,), xd, lo[xd], lo[xd] + 255), array(draw, (m, k), wd, lo[wd], lo[wd] + 255),
                 array(draw, (), xd, lo[xd], lo[xd] + 255)])


@st.composite
def _matmul(draw):
    n, k, m = draw(DIMS), draw(DIMS), draw(DIMS)
    ba, bb = broadcastable_pair(draw)
    return Case([array(draw, ba + (n, k)), array(draw, bb + (k, m))])


@st.composite
def _batch_matmul(draw):
    b, n, k, m = draw(DIMS), draw(DIMS), draw(DIMS), draw(DIMS)
    transpose_b = draw(st.booleans())
    return Case([array(draw, (b, n, k)), array(draw, (b, m, k) if transpose_b else (b, k, m))], {"transpose_b": transpose_b})


def _axis_of(draw, rank):
    return draw(st.integers(-rank, rank - 1))


@st.composite
def _softmax(draw):
    shape = draw(shapes(1, 3))
    return Case([array(draw, shape)], {"axis": _axis_of(draw, len(shape))})


@st.composite
def _cumulative(draw):
    shape = draw(shapes(1, 3))
    dtype = draw(st.sampled_from(["float32", "int64"]))
    return Case([array(draw, shape, dtype, -3, 3)], {"axis": _axis_of(draw, len(shape)),
                                                     "exclusive": draw(st.booleans()), "reverse": draw(st.booleans())})


@st.composite
def _layer_norm(draw):
    shape = draw(shapes(1, 3))
    axis = _axis_of(draw, len(shape))
    c = shape[axis]
    return Case([array(draw, shape), array(draw, (c,)), array(draw, (c,))], {"axis": axis, "epsilon": 1e-5})


@st.composite
def _batch_norm(draw):
    shape = draw(shapes(2, 4))
    c = shape[1]
    var = array(draw, (c,), low=0.1, high=2.0)
    return Case([array(draw, shape), array(draw, (c,)), array(draw, (c,)), array(draw, (c,)), var], {"axis": 1})


def _reduce(nonempty: bool, multi_axis: bool = True):
    @st.composite
    def case(draw):
        shape = draw(shapes(1, 3, POSITIVE_DIMS if nonempty else DIMS))
        rank = len(shape)
        kind = draw(st.sampled_from(["none", "int", "tuple"] if multi_axis else ["none", "int"]))
        if kind == "none":
            axis = None
        elif kind == "int":
            axis = _axis_of(draw, rank)
        else:
            axis = tuple(draw(st.sets(st.integers(0, rank - 1), min_size=1)))
        return Case([array(draw, shape)], {"axis": axis, "keepdims": draw(st.booleans())})

    return case()


@st.composite
def _reshape(draw):
    shape = draw(shapes(0, 3))
    perm = list(np.random.default_rng(draw(st.integers(0, 99))).permutation(len(shape)))
    newshape = [shape[i] for i in perm]
    if newshape and draw(st.booleans()) and all(d > 0 for d in shape):
        newshape[draw(st.integers(0, len(newshape) - 1))] = -1
    if draw(st.booleans()):
        newshape = [int(np.prod(shape))] if -1 not in newshape else [-1]
    return Case([array(draw, shape)], {"newshape": tuple(newshape)})


@st.composite
def _dyn_reshape(draw):
    case = draw(_reshape())
    return Case([case.args[0], np.array(case.attrs["newshape"], dtype=np.int64)])


@st.composite
def _reshape_like(draw):
    case = draw(_reshape())
    x = case.args[0]
    return Case([x, array(draw, np.reshape(x, case.attrs["newshape"]).shape)])


@st.composite
def _dim_arange(draw):
    shape = draw(shapes(1, 3))
    return Case([array(draw, shape)], {"axis": draw(st.integers(-len(shape), len(shape) - 1)),
                                        "dtype": draw(st.sampled_from(["int64", "int32", "float32"]))})


@st.composite
def _transpose(draw):
    shape = draw(shapes(0, 4))
    axes = None if draw(st.booleans()) else tuple(draw(st.permutations(range(len(shape)))))
    return Case([array(draw, shape)], {"axes": axes})


@st.composite
def _expand_dims(draw):
    shape = draw(shapes(0, 3))
    return Case([array(draw, shape)], {"axis": draw(st.integers(-len(shape) - 1, len(shape))), "num_newaxis": draw(st.integers(0, 2))})


@st.composite
def _squeeze(draw):
    shape = draw(shapes(1, 4, st.sampled_from([1, 1, 2, 3, 0])))
    ones = [i for i, d in enumerate(shape) if d == 1]
    if ones and draw(st.booleans()):
        return Case([array(draw, shape)], {"axis": tuple(draw(st.sets(st.sampled_from(ones), min_size=1)))})
    return Case([array(draw, shape)], {"axis": None}, any_ok=False)


@st.composite
def _concatenate(draw):
    shape = draw(shapes(1, 3))
    axis = _axis_of(draw, len(shape))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = draw(DIMS)
        parts.append(array(draw, tuple(s)))
    return Case([tuple(parts)], {"axis": axis}, any_ok=False)


@st.composite
def _split(draw):
    shape = draw(shapes(1, 3))
    axis = _axis_of(draw, len(shape))
    dim = shape[axis]
    if draw(st.booleans()):
        sections = draw(st.sampled_from([s for s in (1, 2, 3, 5, 7) if dim % s == 0]))
    else:
        sections = tuple(sorted(draw(st.lists(st.integers(0, dim + 2), max_size=3))))
    return Case([array(draw, shape)], {"indices_or_sections": sections, "axis": axis})


@st.composite
def _strided_slice(draw):
    shape = draw(shapes(1, 3))
    begin, end, strides = [], [], []
    for d in shape:
        begin.append(draw(st.integers(-d - 2, d + 2)))
        end.append(draw(st.integers(-d - 2, d + 2)))
        strides.append(draw(st.sampled_from([1, 2, 3, -1, -2])))
    return Case([array(draw, shape)], {"begin": tuple(begin), "end": tuple(end), "strides": tuple(strides)})


@st.composite
def _take(draw):
    shape = draw(shapes(1, 3, POSITIVE_DIMS))
    axis = None if draw(st.booleans()) else _axis_of(draw, len(shape))
    bound = int(np.prod(shape)) if axis is None else shape[axis]
    indices = array(draw, draw(shapes(0, 2)), "int64", low=-2, high=bound + 1)
    return Case([array(draw, shape), indices], {"axis": axis, "mode": draw(st.sampled_from(["clip", "wrap"]))})


@st.composite
def _fill(draw):
    return Case([], {"shape": draw(shapes()), "dtype": draw(st.sampled_from(["float32", "int64"]))})


@st.composite
def _dyn_fill(draw):
    return Case([np.array(draw(shapes(1, 3)), dtype=np.int64)], {"dtype": "float32"}, any_ok=False)


@st.composite
def _full(draw):
    return Case([np.array(draw(st.floats(-5, 5, width=32)), np.float32)], {"shape": draw(shapes())}, any_ok=False)


@st.composite
def _dyn_full(draw):
    return Case([np.array(2.5, np.float32), np.array(draw(shapes(1, 3)), dtype=np.int64)], any_ok=False)


@st.composite
def _arange(draw):
    start = draw(st.integers(-5, 5))
    stop = draw(st.integers(-5, 12))
    step = draw(st.sampled_from([1, 2, 3, -1, -2]))
    return Case([np.array(v, np.int64) for v in (start, stop, step)], {"dtype": "int64"}, any_ok=False)


@st.composite
def _nonzero(draw):
    shape = draw(shapes(1, 3))
    return Case([array(draw, shape, "int64", 0, 1)])


@st.composite
def _shape_of(draw):
    return Case([array(draw, draw(shapes()))])


@st.composite
def _conv2d(draw):
    n, groups = draw(st.sampled_from([0, 1, 2])), draw(st.sampled_from([1, 2]))
    in_per_group, out_per_group = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2]))
    kh, kw = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 3]))
    strides = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3])))
    dilation = (draw(st.sampled_from([1, 2])), 1)
    padding = draw(st.sampled_from([(0, 0), (1, 1), (1, 0, 2, 1)]))
    h = draw(st.integers(dilation[0] * (kh - 1) + 1, 8))
    w = draw(st.integers(kw, 8))
    data = array(draw, (n, in_per_group * groups, h, w))
    weight = array(draw, (out_per_group * groups, in_per_group, kh, kw))
    attrs = {"strides": strides, "padding": padding, "dilation": dilation, "groups": groups}
    return Case([data, weight], attrs)


@st.composite
def _image_patches(draw):
    n, c = draw(st.sampled_from([0, 1, 2])), draw(st.sampled_from([1, 2, 3]))
    kh, kw = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 3]))
    strides = (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 3])))
    dilation = (draw(st.sampled_from([1, 2])), 1)
    padding = draw(st.sampled_from([(0, 0), (1, 1), (1, 0, 2, 1)]))
    h, w = draw(st.integers(dilation[0] * (kh - 1) + 1, 7)), draw(st.integers(kw, 7))
    dtype = draw(st.sampled_from(["uint8", "int8", "float32"]))
    lo, hi = {"uint8": (0, 255), "int8": (-128, 127), "float32": (-3, 3)}[dtype]
    channels = c + draw(st.sampled_from([0, 1, 3]))
    attrs = {"kernel": (kh, kw), "strides": strides, "padding": padding, "dilation": dilation, "channels": channels}
    return Case([array(draw, (n, h, w, c), dtype, lo, hi), array(draw, (), dtype, lo, hi)], attrs)


def _pool(avg: bool):
    @st.composite
    def case(draw):
        kh, kw = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2]))
        pad = draw(st.sampled_from([(0, 0), (1, 1), (0, 1, 1, 0)]))
        h, w = draw(st.integers(kh, 7)), draw(st.integers(kw, 7))
        attrs = {"pool_size": (kh, kw), "strides": (draw(st.sampled_from([1, 2])), draw(st.sampled_from([1, 2]))), "padding": pad}
        if avg:
            attrs["count_include_pad"] = draw(st.booleans())
        return Case([array(draw, (draw(st.sampled_from([0, 1, 2])), draw(POSITIVE_DIMS), h, w))], attrs)

    return case()


def _pool_nd(kind: str):
    """N-D pools: 1 to 3 spatial dims, dilations, ceil mode, pads smaller than the (dilated) window."""

    @st.composite
    def case(draw):
        n = draw(st.sampled_from([1, 2, 3]))
        kernel = [draw(st.sampled_from([1, 2, 3])) for _ in range(n)]
        dilation = [draw(st.sampled_from([1, 2])) for _ in range(n)]
        strides = [draw(st.sampled_from([1, 2, 3])) for _ in range(n)]
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        padding = [draw(st.integers(0, sp - 1)) for sp in spans] + [draw(st.integers(0, sp - 1)) for sp in spans]
        sizes = [draw(st.integers(max(1, sp - padding[i] - padding[n + i]), 7)) for i, sp in enumerate(spans)]
        attrs = {"pool_size": tuple(kernel), "strides": tuple(strides), "dilation": tuple(dilation),
                 "padding": tuple(padding), "ceil_mode": draw(st.booleans())}
        if draw(st.integers(0, 3)) == 0:  # auto_pad: the padding attribute is not used
            attrs.update(auto_pad=draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER"])), ceil_mode=False, padding=())
        if kind == "avg":
            attrs["count_include_pad"] = draw(st.booleans())
        if kind == "indices":
            attrs["storage_order"] = draw(st.sampled_from([0, 1]))
        shape = (draw(st.sampled_from([0, 1, 2])), draw(POSITIVE_DIMS), *sizes)
        return Case([array(draw, shape, "int32" if kind == "indices" else "float32", -3, 3)], attrs)

    return case()


def _quantize():
    @st.composite
    def case(draw):
        x_shape, s_shape = broadcastable_pair(draw)
        dtype = draw(st.sampled_from(["int8", "uint8", "int16", "uint16"]))
        x = array(draw, x_shape, "float32", -300, 300) * (300 if dtype.endswith("16") else 1)
        x = np.where(array(draw, x_shape, "bool"), np.round(x * 2) / 2, x).astype(np.float32)  # ties
        scale = np.abs(array(draw, s_shape, "float32", 0.5, 4)).astype(np.float32)
        zero_point = array(draw, (), dtype, 0 if dtype.startswith("u") else -5, 9)
        return Case([x, scale, zero_point], {"dtype": dtype})

    return case()


def _topk():
    @st.composite
    def case(draw):
        shape = draw(shapes(1, 3))
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        dtype = draw(st.sampled_from(["float32", "int64"]))
        data = array(draw, shape, dtype, -2, 2)  # few distinct values: ties
        k = np.array([draw(st.integers(0, shape[axis]))], np.int64)
        return Case([data, k], {"axis": axis, "largest": draw(st.booleans()), "sorted": True})

    return case()


@st.composite
def _attention(draw):
    heads, size = draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2, 4]))
    n, nk = draw(DIMS), draw(DIMS)
    cols = {c: draw(st.sampled_from([0, 1, 3])) for c in "qkv"}
    width = {c: cols[c] + heads * size + draw(st.sampled_from([0, 2])) for c in "qkv"}
    q, k, v = (array(draw, (rows, width[c])) for c, rows in (("q", n), ("k", nk), ("v", nk)))
    mask = array(draw, draw(st.sampled_from([(n, nk), (1, nk), (n, 1), (1, 1)])))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    if batch is not None:  # batched: q holds `batch` sequences of n rows, k and v `batch` of nk
        q, k, v = (np.concatenate([x] * batch) if batch else x for x in (q, k, v))
        mask = array(draw, (batch, draw(st.sampled_from([1, n])), nk))
    causal = draw(st.booleans())
    return Case([q, k, v, mask], {"heads": heads, "head_size": size, "scale": 0.5, "causal": causal,
                                  "q_col": cols["q"], "k_col": cols["k"], "v_col": cols["v"]}, any_ok=False)


@st.composite
def _lstm_cell(draw):
    hidden, batch = draw(st.sampled_from([1, 2, 3, 5, 7, 8, 13])), draw(st.sampled_from([0, 1, 2, 3]))
    steps = draw(st.sampled_from([1, 2, 5]))
    order = draw(st.sampled_from([(0, 1, 2, 3), (0, 2, 3, 1)]))
    args = [array(draw, (steps * batch + draw(st.sampled_from([0, 1])), 4 * hidden)),
            np.array(draw(st.integers(0, steps - 1)), np.int64), array(draw, (2, batch, hidden)),
            array(draw, (4 * hidden, hidden), low=-1.0, high=1.0)]
    return Case(args, {"gate_order": order}, any_ok=False)


@st.composite
def _gru_cell(draw):
    hidden, batch = draw(st.sampled_from([1, 2, 3, 5, 7, 8, 13])), draw(st.sampled_from([0, 1, 2, 3]))
    steps = draw(st.sampled_from([1, 2, 5]))
    order = draw(st.sampled_from([(0, 1, 2), (1, 0, 2)]))
    args = [array(draw, (steps * batch + draw(st.sampled_from([0, 1])), 3 * hidden)),
            np.array(draw(st.integers(0, steps - 1)), np.int64), array(draw, (1, batch, hidden)),
            array(draw, (3 * hidden, hidden), low=-1.0, high=1.0), array(draw, (hidden,), low=-1.0, high=1.0)]
    return Case(args, {"gate_order": order, "linear_before_reset": draw(st.sampled_from([0, 1]))}, any_ok=False)


CASES = {
    "relu": _unary(), "negative": _unary(), "abs": _unary(), "tanh": _unary(), "sigmoid": _unary(-30, 30),
    "exp": _unary(), "log": _unary(0.01, 5), "sqrt": _unary(0, 5), "erf": _unary(), "gelu": _unary(), "cast": _cast(),
    "add": _binary(), "subtract": _binary(), "multiply": _binary(), "divide": _binary(low=0.5, high=3),
    "power": _binary(low=0.5, high=2), "mod": _binary("int64", -7, 7), "fmod": _binary(), "maximum": _binary(), "minimum": _binary(), "equal": _binary("int64", -1, 1),
    "not_equal": _binary("int64", -1, 1), "less": _binary(), "less_equal": _binary("int64", -1, 1),
    "greater": _binary(), "greater_equal": _binary("int64", -1, 1), "logical_and": _binary("bool"),
    "logical_or": _binary("bool"), "where": _where(),
    "dense": _dense(), "dense_integer": _dense_integer(), "matmul": _matmul(), "batch_matmul": _batch_matmul(), "softmax": _softmax(),
    "log_softmax": _softmax(), "layer_norm": _layer_norm(), "batch_norm": _batch_norm(),
    "sum": _reduce(False), "mean": _reduce(True), "max": _reduce(True), "min": _reduce(True), "prod": _reduce(False),
    "cumsum": _cumulative(), "cumprod": _cumulative(),
    "argmax": _reduce(True, multi_axis=False),
    "reshape": _reshape(), "dyn.reshape": _dyn_reshape(), "reshape_like": _reshape_like(),
    "dim_arange": _dim_arange(), "transpose": _transpose(), "expand_dims": _expand_dims(),
    "squeeze": _squeeze(), "concatenate": _concatenate(), "split": _split(), "strided_slice": _strided_slice(),
    "take": _take(), "zeros": _fill(), "ones": _fill(), "dyn.zeros": _dyn_fill(), "dyn.ones": _dyn_fill(),
    "full": _full(), "dyn.full": _dyn_full(), "arange": _arange(), "nonzero": _nonzero(), "shape_of": _shape_of(),
    "conv2d": _conv2d(), "max_pool2d": _pool(False), "avg_pool2d": _pool(True), "image_patches": _image_patches(),
    "gelu_tanh": _unary(), "attention": _attention(), "lstm_cell": _lstm_cell(), "gru_cell": _gru_cell(),
    "quantize_linear": _quantize(),
    "topk": _topk(), "topk_values": _topk(), "topk_indices": _topk(),
    "max_pool": _pool_nd("max"), "avg_pool": _pool_nd("avg"), "max_pool_indices": _pool_nd("indices"),
    **{op: _unary() for op in ("sin", "cos", "tan", "atan", "sinh", "cosh", "asinh", "round", "floor", "ceil")},
    "asin": _unary(-1, 1), "acos": _unary(-1, 1), "atanh": _unary(-0.99, 0.99), "acosh": _unary(1, 5),
    "bitwise_and": _binary("int32", -100, 100), "bitwise_or": _binary("int64", -100, 100),
    "bitwise_xor": _binary("uint16", 0, 1000), "bitwise_not": _int_unary("int8", -128, 127),
    "left_shift": _binary("uint8", 0, 10), "right_shift": _binary("int16", -9, 20),
}
