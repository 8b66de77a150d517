"""The te compute of each operator: what the VM compiler lowers to a kernel for a fused primitive function.

    fn = get_compute("add")
    out = fn([a, b], get_op("add").full_attrs({}), out_shapes)   # a te.Tensor, or a tuple of them

`inputs` are te tensors whose dims may be symbolic te vars; a tuple-typed argument (concatenate's `data`) is
flattened into its fields. `attrs` are the op's full attributes. `out_shapes` are the output shapes the caller
computed (ints or te expressions; fresh te vars bound at run time for data-dependent ops): a compute derives its
output shape from the input shapes where it can and reads `out_shapes` only where it cannot (dyn.reshape,
dyn.zeros/ones/full, arange, nonzero).

Semantics are numpy's, as in each op's `reference`, with these rules for symbolic shapes:
- Broadcasting: a static 1 broadcasts; a symbolic dim is taken to match the dim it meets (the type relation's
  rule). Where two dims that are not provably equal meet (two different vars, a var and a static dim), the kernel
  checks at run time that they are equal and raises `nimble.OutOfRangeError` otherwise, so a symbolic dim that
  is 1 at run time raises instead of reading out of bounds. The same check guards every pair of dims an op
  requires equal (matmul's k, concatenate's other axes, layer_norm's gamma ...).
- Reads behind a `te.select` are clamped into range, since codegen evaluates both arms.
- Integer `divide` truncates toward zero; division by zero gives 0 (numpy's value) instead of trapping.
- Integer `power` goes through float64 (exact while the result is below 2**53; a negative exponent truncates
  1/x**k where numpy raises).
- `take` with mode='raise' raises `nimble.OutOfRangeError` on an index outside [-n, n) (the read is clamped);
  'clip' and 'wrap' follow numpy; every mode raises on a non-empty take from an empty axis, as numpy does.
- `mean`, `layer_norm`, `avg_pool2d` and `batch_norm` accumulate in float64 like their references; `sum`, the
  matmuls, `conv2d` and `softmax` compute in the input dtype (the tuned templates replace them).
- `argmax` returns the first index of the maximum; NaN is not treated as the maximum (numpy's is).
- dtypes are te's: float32/64, int32/64, uint64 (unsigned compares, division and float casts), bool, and the
  storage dtypes float16, bfloat16, float8 (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz, e8m0fnu) and float4 e2m1 (computed
  in float32, rounded on store or cast as ml_dtypes' astype rounds: to nearest even (e8m0: ties up), each format's
  overflow),
  int8 / uint8 / int16 / uint16 and int4 / uint4 / int2 / uint2 (computed in int32; a float cast to the 4- and
  2-bit ones gives 0 out of range, as ml_dtypes) and uint32 (computed in int64), wrapping like numpy. The
  float-only ops (exp, softmax, conv2d, ...) take float16 / bfloat16 / float32 / float64; float8 / float4 reach
  data movement, casts and the dtype-generic ops (add, relu, ...), computed as above. Mixed-dtype
  promotion picks the higher of bool < int8 < uint8 < int16 < uint16 < int32 < uint32 < int64 < uint64 < floats,
  not numpy's wider common type.

Ops with no compute are listed in `NO_COMPUTE` with the reason: topk, topk_values, topk_indices (a sort, which te
cannot express; a hand-written loop-IR kernel, ``schedules/topk.py``, computes them). `nonzero` has one (an
O(size^2) count-then-search, see its docstring).
"""
from __future__ import annotations

from collections.abc import Callable

from .. import te
from ..errors import NimbleError, ShapeError
from ..te.expr import Expr, IntImm, as_expr
from .registry import get_op, list_ops

ComputeFn = Callable[[list, dict, list], object]

_COMPUTES: dict[str, ComputeFn] = {}

# op name -> why it has no te compute
_TOPK_WHY = "te cannot express a sort; the loop-IR kernel of nimble.schedules.topk computes it (vm/topk_kernels.py)"
NO_COMPUTE: dict[str, str] = {"topk": _TOPK_WHY, "topk_values": _TOPK_WHY, "topk_indices": _TOPK_WHY}


def register_compute(op_name: str) -> Callable[[ComputeFn], ComputeFn]:
    """Decorator: register `fn(inputs, attrs, out_shapes)` as the te compute of operator `op_name`."""
    get_op(op_name)  # raises for an unknown operator

    def register(fn: ComputeFn) -> ComputeFn:
        if op_name in _COMPUTES:
            raise NimbleError(f"operator {op_name!r} already has a compute")
        _COMPUTES[op_name] = fn
        return fn

    return register


def get_compute(op_name: str) -> ComputeFn:
    """The te compute of operator `op_name`."""
    if op_name not in _COMPUTES:
        why = NO_COMPUTE.get(op_name, "none is registered")
        raise NimbleError(f"operator {op_name!r} has no te compute: {why}")
    return _COMPUTES[op_name]


def has_compute(op_name: str) -> bool:
    return op_name in _COMPUTES


def ops_without_compute() -> list[str]:
    """Registered operators with neither a compute nor an entry in NO_COMPUTE (should be empty)."""
    return [name for name in list_ops() if name not in _COMPUTES and name not in NO_COMPUTE]


# ---- helpers shared by the compute modules --------------------------------------------------------------------
def stage_name(op_name: str, suffix: str = "") -> str:
    """A te stage name for op `op_name` (dots are not allowed in kernel symbols)."""
    return op_name.replace(".", "_") + (f"_{suffix}" if suffix else "")


def is_one(d: Expr) -> bool:
    return isinstance(d, IntImm) and d.value == 1


def dim_checks(op: str, pairs: list[tuple[Expr, Expr, str]]) -> list:
    """Run-time checks that each (a, b, what) pair of dims is equal; pairs the simplifier proves equal are
    skipped, pairs it proves different raise ShapeError now."""
    checks = []
    for a, b, what in pairs:
        a, b = as_expr(a), as_expr(b)
        same = a is b or te.prove(te.eq(a, b))
        if same:
            continue
        if same is False:
            raise ShapeError(f"{op}: {what}: {a} != {b}")
        checks.append((te.eq(a, b), f"{op}: {what} must be equal ({a} vs {b}); a symbolic 1 does not broadcast"))
    return checks


def checker(checks: list):
    """The `checks=` argument of te.compute for index-independent checks (None when there are none)."""
    if not checks:
        return None
    return lambda *_: checks


def broadcast_dims(op: str, shapes: list[tuple], names: list[str]) -> tuple[tuple, list]:
    """numpy's broadcast shape of `shapes` and the run-time checks it needs.

    A static 1 broadcasts; so does a symbolic dim that is 1 at run time (``broadcast_index`` reads it
    with stride 0): every dim of an output axis must be equal to the output's or 1. The output dim is
    the axis's static dim > 1 when there is one, else the largest of its symbolic dims (one dim, or dims
    the simplifier proves equal, need no expression). numpy broadcasts a 0 with a 1 to 0; here a
    symbolic 0 beside a symbolic 1 fails the check with a clear error instead.
    """
    ndim = max((len(s) for s in shapes), default=0)
    out, checks = [], []
    for axis in range(ndim):
        dims = [(as_expr(s[axis - ndim + len(s)]), name) for s, name in zip(shapes, names) if axis - ndim + len(s) >= 0]
        real = [(d, name) for d, name in dims if not is_one(d)]
        if not real:
            out.append(IntImm(1))
            continue
        static = [(d, name) for d, name in real if isinstance(d, IntImm)]
        first, first_name = static[0] if static else real[0]
        others = []
        for d, name in real:
            same = d is first or te.prove(te.eq(d, first))
            if same:
                continue
            if same is False and isinstance(d, IntImm):
                raise ShapeError(f"{op}: dim {axis} of the output: {first_name} and {name}: {first} != {d}")
            others.append((d, name))
        dim = first
        if not static:  # dims each 1 or the output's: their max (each named once, so fused chains stay linear)
            for d, _ in others:
                dim = te.max_(dim, d)
        if others:
            what = ", ".join(f"{name}'s {d}" for d, name in [(first, first_name)] + others)
            for d, _ in [(first, first_name)] * (not static) + others:
                checks.append((te.any_(te.eq(d, dim), te.eq(d, 1)),
                               f"{op}: dim {axis} of the output: {what} must each be 1 or the same size"))
        out.append(dim)
    return tuple(out), checks


def broadcast_index(shape: tuple, out_shape: tuple, idx: tuple) -> tuple:
    """The index into a tensor of `shape` that broadcasts to `out_shape`, for output index `idx`: 0 along a
    static 1, ``idx`` along a dim equal to the output's, and along a symbolic dim that may be 1 at run time
    ``idx * min(d - 1, 1)`` (stride 0 when it is 1; a loop-invariant stride LLVM's vectorizer versions on)."""
    lead = len(out_shape) - len(shape)
    out = []
    for k, d in enumerate(shape):
        o, i = out_shape[lead + k], idx[lead + k]
        if is_one(d):
            out.append(i if is_one(o) else 0)
        elif d is o or isinstance(d, IntImm) or te.prove(te.eq(as_expr(d), as_expr(o))):
            out.append(i)
        else:
            out.append(i * te.min_(as_expr(d) - 1, 1))
    return tuple(out)


def clamp(i: Expr, lo, hi) -> Expr:
    """i limited to [lo, hi]; when hi < lo the result is lo."""
    return te.max_(te.min_(i, hi), lo)


def normalize_axis(op: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{op}: axis {axis} is out of range for rank {ndim}")
    return axis % ndim


def product(dims) -> Expr:
    out = IntImm(1)
    for d in dims:
        out = out * d
    return out


def unravel(flat: Expr, shape: tuple) -> tuple:
    """The index of element `flat` of a row-major tensor of `shape`."""
    if not shape:
        return ()
    idx = []
    for d in reversed(shape[1:]):
        idx.append(flat % d)
        flat = flat // d
    idx.append(flat)
    return tuple(reversed(idx))


def ravel(idx: tuple, shape: tuple) -> Expr:
    """The row-major flat position of index `idx` of a tensor of `shape`."""
    flat = IntImm(0)
    for i, d in zip(idx, shape):
        flat = flat * d + i
    return flat

