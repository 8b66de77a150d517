"""Every operator's te compute, built with symbolic dims (naive schedule), against the op's numpy reference.

Each `Spec` is one kernel: input dim patterns ("n 1 m": vars n, m and a static 1), dtypes and attrs. It is built
once; hypothesis then draws many sizes for its vars (0, 1, primes, larger) and data.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nimble
from nimble import te
from nimble.dtypes import int_range, numpy_dtype
from nimble.ir import TensorType, TupleType
from nimble.ir.types import SymDim
from nimble.ops import ShapeFuncKind, get_op, list_ops
from nimble.ops.compute import NO_COMPUTE, get_compute, has_compute, register_compute

DIMS = st.sampled_from([0, 1, 2, 3, 5, 7, 13, 31])
SMALL = st.sampled_from([0, 1, 2, 3, 5, 7])
POSITIVE = st.sampled_from([1, 2, 3, 5, 7, 13])
EXAMPLES = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Spec:
    op: str
    inputs: list  # (dim pattern, dtype) per input: "n 1 m" -> (var n, static 1, var m); "" is a scalar
    attrs: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # var name -> strategy of its size (default DIMS)
    low: float = -3.0
    high: float = 3.0
    values: object = None  # (draw, sizes, rng) -> list of input arrays, instead of random data
    tuple_arg: bool = False  # the inputs are the fields of the op's one tuple argument
    tol: float = 1e-5

    def __str__(self):
        shapes = ",".join(f"{p.replace(' ', '') or 's'}:{dtype}" for p, dtype in self.inputs)
        return f"{self.op}[{shapes};{','.join(f'{k}={v}' for k, v in self.attrs.items())}]"


def unary(op, low=-3.0, high=3.0, dtype="float32"):
    return Spec(op, [("n m", dtype)], low=low, high=high)


def binary(op, dtype="float32", low=-3.0, high=3.0):
    return [
        Spec(op, [("n m", dtype), ("n m", dtype)], low=low, high=high),
        Spec(op, [("n 1", dtype), ("m", dtype)], low=low, high=high),
    ]


def reductions(op, sizes):
    cube = {"a": sizes, "b": sizes, "c": sizes}
    return [
        Spec(op, [("a b c", "float32")], {"axis": None, "keepdims": False}, cube, tol=1e-4),
        Spec(op, [("a b c", "float32")], {"axis": (0, 2), "keepdims": True}, cube, tol=1e-4),
        Spec(op, [("a b", "float64" if op == "mean" else "int64")], {"axis": -1, "keepdims": False}, cube),
    ]


def _take_values(draw, sizes, rng, axis):
    n = sizes["n"] * sizes["m"] if axis is None else sizes["n" if axis == 0 else "m"]
    data = rng.uniform(-3, 3, (sizes["n"], sizes["m"])).astype("float32")
    return [data, rng.integers(-n - 2, n + 2, (sizes["k"], sizes["j"])).astype("int64")]


def _arange_values(dtype):
    def values(draw, sizes, rng):
        start, stop = draw(st.integers(-5, 5)), draw(st.integers(-5, 30))
        step = draw(st.sampled_from([1, 2, 3, -1, -2]))
        if dtype == "float64":
            return [np.array(start / 2, dtype), np.array(stop / 2, dtype), np.array(step * 0.75, dtype)]
        return [np.array(v, dtype) for v in (start, stop, step)]

    return values


def _shape_value(names):
    def values(draw, sizes, rng):
        return [np.array([sizes[n] for n in names], "int64")]

    return values


def _quantize_values(draw, sizes, rng, dtype):
    x = rng.uniform(-200, 200, (sizes["n"], sizes["m"])).astype("float32")
    x[rng.random(x.shape) < 0.3] = rng.integers(-100, 100) + 0.5  # ties round to even
    scale = rng.choice([0.5, 1.0, 2.0, 0.37], () if dtype == "uint8" else (sizes["m"],)).astype("float32")
    low, high = int_range(dtype)
    return [x, scale, np.array(rng.integers(max(low, 0), min(high, 8), endpoint=True)).astype(numpy_dtype(dtype))]


def _byte_values(draw, sizes, rng, x_dtype, w_dtype, batch):
    """x (b?, n, k), w (m, k) over their whole 8-bit ranges and a zero point of x's type."""
    def full(dtype, shape):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)

    x_shape = ((sizes["b"],) if batch else ()) + (sizes["n"], sizes["k"])
    return [full(x_dtype, x_shape), full(w_dtype, (sizes["m"], sizes["k"])), full(x_dtype, ())]


def _batched_attention_values(draw, sizes, rng):
    """b sequences of s rows each (q, k, v of b * s rows) and a (b, 1, s) key mask."""
    b, s = sizes["b"], sizes["s"]
    return [rng.uniform(-3, 3, (b * s, 8)).astype("float32") for _ in range(3)] + [
        rng.uniform(-3, 3, (b, 1, s)).astype("float32")]


def _lstm_cell_values(hidden):
    def values(draw, sizes, rng):
        batch, steps = sizes["b"], draw(st.sampled_from([1, 2, 3, 7]))
        return [rng.uniform(-3, 3, (steps * batch, 4 * hidden)).astype("float32"),
                np.array(draw(st.integers(0, steps - 1)), "int64"),
                rng.uniform(-3, 3, (2, batch, hidden)).astype("float32"),
                rng.uniform(-1, 1, (4 * hidden, hidden)).astype("float32")]

    return values


def _gru_cell_values(hidden):
    def values(draw, sizes, rng):
        batch, steps = sizes["b"], draw(st.sampled_from([1, 2, 3, 7]))
        return [rng.uniform(-3, 3, (steps * batch, 3 * hidden)).astype("float32"),
                np.array(draw(st.integers(0, steps - 1)), "int64"),
                rng.uniform(-3, 3, (1, batch, hidden)).astype("float32"),
                rng.uniform(-1, 1, (3 * hidden, hidden)).astype("float32"),
                rng.uniform(-1, 1, (hidden,)).astype("float32")]

    return values


CONV_HW = st.sampled_from([3, 5, 7, 13])
SPECS = [
    *[unary(op) for op in ("tanh", "sigmoid", "exp", "erf", "gelu", "gelu_tanh", "relu", "negative", "abs")],
    Spec("attention", [("n 8", "float32"), ("k 8", "float32"), ("k 8", "float32"), ("n k", "float32")],
         {"heads": 2, "head_size": 4, "scale": 0.5, "causal": False, "q_col": 0, "k_col": 0, "v_col": 0}, tol=1e-4),
    Spec("attention", [("n 9", "float32"), ("n 9", "float32"), ("n 9", "float32"), ("1 n", "float32")],
         {"heads": 2, "head_size": 3, "scale": 0.25, "causal": True, "q_col": 3, "k_col": 0, "v_col": 2}, tol=1e-4),
    Spec("attention", [("r 8", "float32"), ("r 8", "float32"), ("r 8", "float32"), ("b 1 s", "float32")],
         {"heads": 2, "head_size": 4, "scale": 0.5, "causal": False, "q_col": 0, "k_col": 0, "v_col": 0},
         sizes={"b": SMALL}, values=_batched_attention_values, tol=1e-4),
    *[Spec("lstm_cell", [("n " + str(4 * h), "float32"), ("", "int64"), (f"2 b {h}", "float32"),
                         (f"{4 * h} {h}", "float32")], {"gate_order": order}, sizes={"b": SMALL},
           values=_lstm_cell_values(h), tol=1e-4) for h, order in ((5, (0, 1, 2, 3)), (13, (0, 2, 3, 1)))],
    *[Spec("gru_cell", [("n " + str(3 * h), "float32"), ("", "int64"), (f"1 b {h}", "float32"),
                        (f"{3 * h} {h}", "float32"), (str(h), "float32")], {"gate_order": order}, sizes={"b": SMALL},
           values=_gru_cell_values(h), tol=1e-4) for h, order in ((5, (0, 1, 2)), (13, (1, 0, 2)))],
    *[unary(op) for op in ("sin", "cos", "tan", "atan", "sinh", "cosh", "asinh", "round", "floor", "ceil")],
    unary("asin", -1, 1), unary("acos", -1, 1, "float64"), unary("atanh", -0.99, 0.99), unary("acosh", 1, 5),
    unary("round", -4, 4, "float64"), unary("bitwise_not", -128, 127, "int8"),
    *binary("bitwise_and", "int32", -100, 100), *binary("bitwise_or", "uint8", 0, 255),
    *binary("bitwise_xor", "int64", -100, 100), *binary("left_shift", "uint8", 0, 10),
    *binary("left_shift", "int64", -2, 70), *binary("right_shift", "int16", -9, 20),
    *binary("right_shift", "uint32", 0, 40),
    unary("log", 0.01, 5.0), unary("sqrt", 0.0, 5.0), unary("exp", dtype="float64"), unary("sigmoid", -30, 30),
    unary("relu", dtype="int32"), unary("negative", dtype="int64"), unary("abs", dtype="int32"),
    Spec("cast", [("n m", "float32")], {"dtype": "int64"}, low=-9, high=9),
    Spec("cast", [("n m", "float32")], {"dtype": "bool"}, low=-1, high=1),
    Spec("cast", [("n", "int32")], {"dtype": "float64"}),
    Spec("cast", [("n", "bool")], {"dtype": "int32"}),
    *binary("add"), Spec("add", [("", "float32"), ("n m", "float32")]),
    *binary("subtract"), *binary("multiply"), *binary("divide", low=0.5), *binary("divide", "int32", -7, 7),
    *binary("power", low=0.5, high=2.0), Spec("power", [("n", "int64"), ("n", "int64")], low=0, high=4),
    *binary("mod"), *binary("mod", "int32", -7, 7), *binary("fmod", "float64"), *binary("fmod", "int64", -7, 7),
    *binary("maximum"), *binary("minimum", "int64"),
    *[s for op in ("equal", "not_equal", "less_equal", "greater_equal") for s in binary(op, "int64", -1, 1)],
    *binary("less"), *binary("greater"), *binary("logical_and", "bool"), *binary("logical_or", "bool"),
    Spec("where", [("n 1", "bool"), ("n m", "float32"), ("m", "float32")]),
    Spec("dense", [("n k", "float32"), ("m k", "float32")], tol=1e-4),
    Spec("dense", [("b n k", "float32"), ("7 k", "float32")], sizes={"b": SMALL, "n": SMALL}, tol=1e-4),
    *[Spec("dense_integer", [(("b " if batch else "") + "n k", xd), ("m k", wd), ("", xd)],
           sizes={"b": SMALL} if batch else {}, values=functools.partial(_byte_values, x_dtype=xd, w_dtype=wd,
                                                                         batch=batch))
      for xd, wd, batch in (("uint8", "int8", False), ("int8", "uint8", True), ("int8", "int8", False))],
    Spec("matmul", [("n k", "float32"), ("k m", "float32")], tol=1e-4),
    Spec("matmul", [("b n k", "float32"), ("1 k m", "float32")], sizes={"b": SMALL}, tol=1e-4),
    Spec("batch_matmul", [("b n k", "float32"), ("b m k", "float32")], {"transpose_b": True},
         sizes={"b": SMALL}, tol=1e-4),
    Spec("batch_matmul", [("b n k", "float32"), ("1 k m", "float32")], {"transpose_b": False},
         sizes={"b": SMALL}, tol=1e-4),
    Spec("softmax", [("n m", "float32")], {"axis": -1}),
    *[Spec(op, [("a b", dtype)], {"axis": axis, "exclusive": ex, "reverse": rev}, low=-2, high=2, tol=1e-4)
      for op, dtype in (("cumsum", "float32"), ("cumprod", "int64"), ("cumprod", "float64"))
      for axis, ex, rev in ((1, False, False), (0, True, False), (-1, True, True), (0, False, True))],
    Spec("softmax", [("a b c", "float32")], {"axis": 1}, sizes={"a": SMALL, "c": SMALL}),
    Spec("log_softmax", [("n m", "float32")], {"axis": -1}),
    Spec("log_softmax", [("a b c", "float64")], {"axis": 0}, sizes={"b": SMALL, "c": SMALL}),
    Spec("layer_norm", [("n m", "float32"), ("m", "float32"), ("m", "float32")], {"axis": -1, "epsilon": 1e-5},
         tol=1e-4),
    Spec("layer_norm", [("a b c", "float32"), ("b", "float32"), ("b", "float32")], {"axis": 1, "epsilon": 1e-3},
         sizes={"a": SMALL, "c": SMALL}, tol=1e-4),
    Spec("batch_norm", [("n c h", "float32"), ("c", "float32"), ("c", "float32"), ("c", "float32"),
                        ("c", "float32")], {"axis": 1, "epsilon": 1e-5}, low=0.1, high=2.0, sizes={"n": SMALL}),
    *reductions("sum", SMALL), *reductions("mean", POSITIVE), *reductions("max", POSITIVE),
    *reductions("min", POSITIVE), *reductions("prod", SMALL),
    Spec("sum", [("n m", "float32")], {"axis": (), "keepdims": False}),
    Spec("sum", [("n m", "bool")], {"axis": 1, "keepdims": False}),
    Spec("min", [("n m", "bool")], {"axis": None, "keepdims": True}, {"n": POSITIVE, "m": POSITIVE}),
    Spec("argmax", [("a b c", "float32")], {"axis": None, "keepdims": False},
         {"a": POSITIVE, "b": POSITIVE, "c": POSITIVE}),
    Spec("argmax", [("a b c", "int64")], {"axis": 1, "keepdims": True}, {"b": POSITIVE}, low=-2, high=2),
    Spec("reshape", [("n m", "float32")], {"newshape": (-1,)}),
    Spec("reshape", [("n 6", "float32")], {"newshape": (-1, 3, 1)}),
    Spec("reshape", [("2 3 n", "float32")], {"newshape": (6, -1)}),
    Spec("reshape_like", [("n m", "float32"), ("m n", "int32")]),
    Spec("dim_arange", [("a b", "float32")], {"axis": -1, "dtype": "int64"}),
    Spec("dim_arange", [("a b", "int32")], {"axis": 0, "dtype": "float32"}),
    Spec("dyn.reshape", [("n m", "float32"), ("2", "int64")], values=lambda draw, sizes, rng: [
        rng.uniform(-3, 3, (sizes["n"], sizes["m"])).astype("float32"), np.array([sizes["m"], sizes["n"]])]),
    Spec("transpose", [("a b c", "float32")], {"axes": None}, sizes={"a": SMALL, "b": SMALL}),
    Spec("transpose", [("a b c", "int32")], {"axes": (2, 0, 1)}, sizes={"a": SMALL, "b": SMALL}),
    Spec("expand_dims", [("n m", "float32")], {"axis": 1, "num_newaxis": 2}),
    Spec("expand_dims", [("n", "float32")], {"axis": -1, "num_newaxis": 1}),
    Spec("squeeze", [("2 1 3 1", "float32")], {"axis": None}),
    Spec("squeeze", [("1 n", "float32")], {"axis": (0,)}),
    Spec("concatenate", [("n a", "float32"), ("n b", "float32"), ("n c", "float32")], {"axis": 1},
         tuple_arg=True),
    Spec("concatenate", [("a m", "int64"), ("b m", "int64")], {"axis": -2}, tuple_arg=True),
    Spec("split", [("n m", "float32")], {"indices_or_sections": 3, "axis": 1},
         sizes={"m": st.sampled_from([0, 3, 6, 9, 21])}),
    Spec("split", [("n m", "float32")], {"indices_or_sections": (3, 1, 9), "axis": 0}),
    Spec("strided_slice", [("n m", "float32")], {"begin": (1, -2), "end": (-1, 0), "strides": (2, -1)}),
    Spec("strided_slice", [("n m", "float32")], {"begin": (-1,), "end": (-100,), "strides": (-3,), "axes": (1,)}),
    Spec("strided_slice", [("n m", "float32")], {"begin": (2, 0), "end": (100, 5), "strides": (3, 1)}),
    *[Spec("take", [("n m", "float32"), ("k j", "int64")], {"axis": axis, "mode": mode},
           sizes={"n": POSITIVE, "m": POSITIVE, "k": SMALL, "j": SMALL},
           values=functools.partial(_take_values, axis=axis))
      for axis, mode in ((None, "clip"), (1, "wrap"), (0, "clip"))],
    Spec("zeros", [], {"shape": (2, 3), "dtype": "float32"}), Spec("ones", [], {"shape": (4,), "dtype": "int64"}),
    Spec("dyn.zeros", [("3", "int64")], {"dtype": "float32"}, {"a": SMALL, "b": SMALL, "c": SMALL},
         values=_shape_value("abc")),
    Spec("dyn.ones", [("2", "int64")], {"dtype": "int32"}, {"a": DIMS, "b": DIMS}, values=_shape_value("ab")),
    Spec("full", [("", "float32")], {"shape": (3, 2)}),
    Spec("dyn.full", [("", "float64"), ("2", "int64")], sizes={"a": DIMS, "b": DIMS},
         values=lambda draw, sizes, rng: [np.array(2.5), np.array([sizes["a"], sizes["b"]])]),
    Spec("arange", [("", "int64")] * 3, {"dtype": "int64"}, values=_arange_values("int64")),
    Spec("arange", [("", "float64")] * 3, {"dtype": "float32"}, values=_arange_values("float64")),
    Spec("nonzero", [("a b", "int64")], sizes={"a": SMALL, "b": SMALL}, low=0, high=1),
    Spec("nonzero", [("n", "bool")]),
    Spec("shape_of", [("a b c", "float32")], {"dtype": "int64"}, sizes={"a": SMALL, "b": SMALL, "c": SMALL}),
    Spec("shape_of", [("", "int32")], {"dtype": "int32"}),
    Spec("conv2d", [("n 4 h w", "float32"), ("o 4 3 3", "float32")], {"padding": (1, 1)},
         sizes={"n": st.sampled_from([0, 1, 2]), "o": SMALL, "h": CONV_HW, "w": CONV_HW}, tol=1e-4),
    Spec("conv2d", [("n c h w", "float32"), ("6 2 3 1", "float32")],
         {"strides": (2, 3), "padding": (1, 0, 2, 1), "dilation": (2, 1), "groups": 2},
         sizes={"n": st.sampled_from([0, 1, 2]), "c": st.just(4), "h": CONV_HW, "w": CONV_HW}, tol=1e-4),
    Spec("image_patches", [("n h w 3", "uint8"), ("", "uint8")],
         {"kernel": (3, 3), "strides": (2, 1), "padding": (1, 0, 2, 1), "dilation": (1, 2), "channels": 4},
         sizes={"n": st.sampled_from([0, 1, 2]), "h": CONV_HW, "w": st.sampled_from([5, 7, 13])}, low=0, high=255),
    Spec("image_patches", [("n h w 16", "int8"), ("", "int8")], {"kernel": (1, 2), "channels": 16},
         sizes={"n": SMALL, "h": POSITIVE, "w": CONV_HW}, low=-128, high=127),
    Spec("max_pool2d", [("n c h w", "float32")], {"pool_size": (3, 2), "strides": (2, 1), "padding": (1, 1)},
         sizes={"n": SMALL, "c": SMALL, "h": POSITIVE, "w": POSITIVE}),
    *[Spec("avg_pool2d", [("n c h w", "float32")],
           {"pool_size": (2, 3), "strides": (1, 2), "padding": (0, 1, 1, 0), "count_include_pad": inc},
           sizes={"n": SMALL, "c": SMALL, "h": POSITIVE, "w": CONV_HW}) for inc in (False, True)],
    Spec("max_pool", [("n c d", "float32")], {"pool_size": (3,), "strides": (2,), "dilation": (2,),
                                             "padding": (1, 2), "ceil_mode": True},
         sizes={"n": SMALL, "c": SMALL, "d": st.sampled_from([2, 3, 5, 7, 13])}),
    Spec("max_pool", [("n 2 d h w", "int32")], {"pool_size": (2, 1, 3), "strides": (1, 2, 2), "dilation": (1, 1, 2),
                                               "padding": (1, 0, 0, 0, 0, 2), "ceil_mode": False},
         sizes={"n": SMALL, "d": POSITIVE, "h": POSITIVE, "w": CONV_HW}, low=-9, high=9),
    *[Spec("avg_pool", [("n c h w", "float32")],
           {"pool_size": (2, 3), "strides": (2, 2), "dilation": (2, 1), "padding": (1, 0, 1, 2),
            "ceil_mode": True, "count_include_pad": inc},
           sizes={"n": SMALL, "c": SMALL, "h": CONV_HW, "w": CONV_HW}) for inc in (False, True)],
    *[Spec("quantize_linear", [("n m", "float32"), (scale, "float32"), ("", dtype)], {"dtype": dtype},
           values=functools.partial(_quantize_values, dtype=dtype))
      for scale, dtype in (("", "uint8"), ("m", "int8"), ("m", "int16"), ("m", "uint16"), ("m", "int4"),
                           ("m", "uint2"))],
    *[Spec("avg_pool", [("n 2 h w", "float32")],
           {"pool_size": (3, 2), "strides": (2, 3), "dilation": (1, 2), "auto_pad": auto, "count_include_pad": True},
           sizes={"n": SMALL, "h": POSITIVE, "w": CONV_HW}) for auto in ("SAME_UPPER", "SAME_LOWER")],
    *[Spec("max_pool_indices", [("n c h w", "float32")],
           {"pool_size": (3, 2), "strides": (2, 1), "dilation": (1, 2), "padding": (1, 1, 1, 0),
            "ceil_mode": True, "storage_order": order},
           sizes={"n": SMALL, "c": SMALL, "h": CONV_HW, "w": CONV_HW}, low=-2, high=2) for order in (0, 1)],
]


def parse(pattern: str) -> list:
    return [int(t) if t.isdigit() else t for t in pattern.split()]


def flat(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


@functools.cache
def built(index: int):
    """(kernel, input placeholders, output tensors) of SPECS[index], built once."""
    spec = SPECS[index]
    opdef = get_op(spec.op)
    dim_vars: dict = {}

    def dim(t):
        return t if isinstance(t, int) else dim_vars.setdefault(t, te.var(t))

    inputs = [te.placeholder(tuple(dim(t) for t in parse(p)), dtype, name=f"in{k}")
              for k, (p, dtype) in enumerate(spec.inputs)]
    types = [TensorType(tuple(t if isinstance(t, int) else SymDim(t) for t in parse(p)), dtype)
             for p, dtype in spec.inputs]
    out_type = opdef.infer([TupleType(tuple(types))] if spec.tuple_arg else types, spec.attrs)
    out_types = list(out_type.fields) if isinstance(out_type, TupleType) else [out_type]
    fresh = iter(range(1000))

    def out_dim(d):  # what the VM passes: static ints, the input's var for a symbolic dim, a fresh var for Any
        if isinstance(d, int):
            return d
        return dim_vars[d.name] if isinstance(d, SymDim) else te.var(f"out{next(fresh)}")

    out_shapes = [tuple(out_dim(d) for d in t.shape) for t in out_types]
    outs = flat(get_compute(spec.op)(inputs, opdef.full_attrs(spec.attrs), out_shapes))
    kernel = nimble.build(outs, inputs + outs, name=f"k{index}")
    return kernel, inputs, outs


def random_array(rng, shape, dtype, low, high):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def check_against_reference(spec: Spec, kernel, data):
    names = sorted({t for p, _ in spec.inputs for t in parse(p) if isinstance(t, str)} | set(spec.sizes))
    sizes = {n: data.draw(spec.sizes.get(n, DIMS), label=n) for n in names}
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    if spec.values is not None:
        arrays = spec.values(data.draw, sizes, rng)
    else:
        arrays = [random_array(rng, tuple(sizes.get(t, t) for t in parse(p)), dtype, spec.low, spec.high)
                  for p, dtype in spec.inputs]
    opdef = get_op(spec.op)
    with np.errstate(all="ignore"):
        expected = flat(opdef.evaluate([tuple(arrays)] if spec.tuple_arg else arrays, spec.attrs))
    if opdef.shape_kind is ShapeFuncKind.DATA_INDEPENDENT:  # the compute derives its output shapes itself
        got = flat(kernel(*arrays))
    else:
        got = [np.empty(e.shape, e.dtype) for e in expected]
        kernel(*arrays, *got)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        if e.dtype.kind == "f":
            np.testing.assert_allclose(g, e, rtol=spec.tol, atol=spec.tol, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("index", range(len(SPECS)), ids=[str(s) for s in SPECS])
def test_compute_matches_reference(index):
    spec = SPECS[index]
    kernel, _, _ = built(index)

    @EXAMPLES
    @given(st.data())
    def check(data):
        check_against_reference(spec, kernel, data)

    check()


def test_every_operator_has_a_compute_or_a_reason():
    missing = [n for n in list_ops() if not has_compute(n) and not NO_COMPUTE.get(n)]
    assert missing == []


def test_every_compute_is_tested_here():
    tested = {s.op for s in SPECS}
    assert [n for n in list_ops() if has_compute(n) and n not in tested] == []


def _kernel_of(op, inputs, attrs, out_shapes=None):
    outs = flat(get_compute(op)(inputs, get_op(op).full_attrs(attrs), out_shapes or []))
    return nimble.build(outs, inputs + outs, name=op.replace(".", "_"))


def test_take_in_raise_mode_raises_on_an_out_of_range_index():
    n, k = te.var("n"), te.var("k")
    kernel = _kernel_of("take", [te.placeholder((n,), name="d"), te.placeholder((k,), "int64", name="i")],
                        {"axis": 0, "mode": "raise"})
    data = np.arange(5, dtype="float32")
    np.testing.assert_array_equal(kernel(data, np.array([0, 4, -5, -1])), [0.0, 4.0, 0.0, 4.0])
    for bad in (5, -6):
        with pytest.raises(nimble.OutOfRangeError):
            kernel(data, np.array([1, bad]))


def test_lstm_cell_raises_on_a_step_outside_the_projection_rows():
    n, b = te.var("n"), te.var("b")
    ins = [te.placeholder((n, 12), name="gx"), te.placeholder((), "int64", name="t"),
           te.placeholder((2, b, 3), name="state"), te.placeholder((12, 3), name="w")]
    kernel = _kernel_of("lstm_cell", ins, {})
    gx, state, w = np.ones((4, 12), "float32"), np.zeros((2, 2, 3), "float32"), np.ones((12, 3), "float32")
    assert kernel(gx, np.array(1), state, w).shape == (2, 2, 3)  # rows 2 and 3
    for bad in (2, -1):
        with pytest.raises(nimble.OutOfRangeError, match="lstm_cell: step t is outside the rows of gates_x"):
            kernel(gx, np.array(bad), state, w)
        with pytest.raises(nimble.OutOfRangeError):
            get_op("lstm_cell").evaluate([gx, np.array(bad), state, w], {})


def test_gru_cell_raises_on_a_step_outside_the_projection_rows():
    n, b = te.var("n"), te.var("b")
    ins = [te.placeholder((n, 9), name="gx"), te.placeholder((), "int64", name="t"),
           te.placeholder((1, b, 3), name="state"), te.placeholder((9, 3), name="w"), te.placeholder((3,), name="bn")]
    kernel = _kernel_of("gru_cell", ins, {})
    gx, state, w, bn = (np.ones((4, 9), "float32"), np.zeros((1, 2, 3), "float32"), np.ones((9, 3), "float32"),
                        np.zeros(3, "float32"))
    assert kernel(gx, np.array(1), state, w, bn).shape == (1, 2, 3)  # rows 2 and 3
    for bad in (2, -1):
        with pytest.raises(nimble.OutOfRangeError, match="gru_cell: step t is outside the rows of gates_x"):
            kernel(gx, np.array(bad), state, w, bn)
        with pytest.raises(nimble.OutOfRangeError):
            get_op("gru_cell").evaluate([gx, np.array(bad), state, w, bn], {})


def test_take_from_an_empty_axis_raises_like_numpy():
    n, k = te.var("n"), te.var("k")
    kernel = _kernel_of("take", [te.placeholder((n,), name="d"), te.placeholder((k,), "int64", name="i")],
                        {"axis": 0, "mode": "clip"})
    with pytest.raises(nimble.OutOfRangeError):
        kernel(np.zeros(0, "float32"), np.array([0]))


def test_a_symbolic_dim_of_one_broadcasts_and_other_sizes_raise():
    n, m = te.var("n"), te.var("m")
    kernel = _kernel_of("add", [te.placeholder((n,), name="a"), te.placeholder((m,), name="b")], {})
    np.testing.assert_array_equal(kernel(np.ones(3, "float32"), np.ones(3, "float32")), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(kernel(np.arange(3, dtype="float32"), np.ones(1, "float32")), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(kernel(np.ones(1, "float32"), np.arange(3, dtype="float32")), [1.0, 2.0, 3.0])
    with pytest.raises(nimble.OutOfRangeError, match="1 or the same size"):
        kernel(np.ones(3, "float32"), np.ones(2, "float32"))


def test_dyn_reshape_to_a_size_that_differs_raises():
    n, a, b = te.var("n"), te.var("a"), te.var("b")
    x, shape = te.placeholder((n,), name="x"), te.placeholder((2,), "int64", name="shape")
    kernel = _kernel_of("dyn.reshape", [x, shape], {}, [(a, b)])
    out = np.empty((2, 3), "float32")
    kernel(np.arange(6, dtype="float32"), np.array([2, 3]), out)
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))
    with pytest.raises(nimble.OutOfRangeError):
        kernel(np.arange(5, dtype="float32"), np.array([2, 3]), out)


def test_nonzero_into_an_upper_bound_allocation_pads_with_minus_one():
    a, b, cols = te.var("a"), te.var("b"), te.var("cols")
    kernel = _kernel_of("nonzero", [te.placeholder((a, b), "int64", name="x")], {}, [(2, cols)])
    x = np.array([[0, 3, 0], [5, 0, 7]])
    out = np.empty((2, x.size), "int64")  # the shape function's upper bound
    kernel(x, out)
    np.testing.assert_array_equal(out, [[0, 1, 1, -1, -1, -1], [1, 0, 2, -1, -1, -1]])


def test_register_compute_rejects_unknown_ops_and_duplicates():
    with pytest.raises(nimble.NimbleError):
        register_compute("no_such_op")
    with pytest.raises(nimble.NimbleError):
        register_compute("add")(lambda inputs, attrs, out_shapes: inputs[0])
    with pytest.raises(nimble.NimbleError):
        get_compute("no_such_op")


def test_concatenate_along_rows_reads_each_field_contiguously_along_the_vector():
    """Only the joined axis's index is clamped: a clamp on the vectorized inner axis turned every vector read
    into a gather (8 rows of 512 took 17 us instead of 2)."""
    from nimble.schedules.auto import auto_schedule
    from nimble.te.expr import Select
    from nimble.te.visit import free_vars, walk
    from nimble.tir.lower import lower
    from nimble.tir.nodes import For, Load, Seq, Store

    fields = [te.placeholder((te.var(f"n{i}"), 512), "float32", f"x{i}") for i in range(3)]
    out = get_compute("concatenate")(fields, {"axis": 0}, None)
    func = lower(auto_schedule([out]), fields + [out], "concat_rows")
    loads, lanes = [], set()

    def visit(s, in_vector):
        if isinstance(s, For):
            if s.kind == "vectorized":
                lanes.add(s.var)
            visit(s.body, in_vector or s.kind == "vectorized")
        elif isinstance(s, Seq):
            for x in s.stmts:
                visit(x, in_vector)
        elif isinstance(s, Store) and in_vector:
            loads.extend(n for n in walk(s.value) if isinstance(n, Load))
        elif hasattr(s, "body"):
            visit(s.body, in_vector)

    visit(func.body, False)
    assert lanes and len(loads) >= 3
    for load in loads:
        selects = [n for n in walk(load.index) if isinstance(n, Select)]
        assert not any(free_vars(n) & lanes for n in selects), f"{load}: the vector lane goes through a select"
