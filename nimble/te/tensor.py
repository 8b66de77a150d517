"""Tensor expressions: placeholders, computes and reductions over symbolic shapes."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from ..errors import ShapeError
from ..errors import TypeError as NimbleTypeError
from .expr import INDEX, Expr, IntImm, Var, as_expr, check_dtype, const, max_value, min_value, var


@dataclass(frozen=True, eq=False)
class IterVar:
    """A loop axis: ``var`` ranges over ``[dom_min, dom_min + extent)``; kind 'spatial' or 'reduce'."""

    var: Var
    extent: Expr
    kind: str = "spatial"
    dom_min: Expr = IntImm(0)

    def __repr__(self):
        return f"IterVar({self.var.name}: {self.kind}, extent={self.extent})"


@dataclass(frozen=True, repr=False)
class TensorLoad(Expr):
    """``tensor[indices]`` inside a compute body."""

    tensor: "Tensor"
    indices: tuple

    @property
    def dtype(self) -> str:
        return self.tensor.dtype


@dataclass(frozen=True, repr=False)
class Reduce(Expr):
    """A commutative reduction ('sum', 'max', 'min') of ``source`` over ``axes``."""

    combiner: str
    source: Expr
    axes: tuple
    init: Expr

    @property
    def dtype(self) -> str:
        return self.source.dtype


class PlaceholderOp:
    def __init__(self, name: str):
        self.name = name


class ComputeOp:
    """``output[axis...] = body``; ``reduce_axis`` lists the reduction axes of a Reduce body."""

    def __init__(self, name: str, axis: tuple, body: Expr, tag: str = "", checks: tuple = ()):
        self.name = name
        self.axis = axis
        self.body = body
        self.tag = tag
        self.checks = checks  # ((bool Expr over the axes, message), ...) checked before each element is stored
        self.reduce_axis = body.axes if isinstance(body, Reduce) else ()

    def input_tensors(self) -> list:
        from .visit import collect_loads

        seen = []
        for load in collect_loads(self.body):
            if load.tensor not in seen:
                seen.append(load.tensor)
        return seen


class Tensor:
    """A tensor of a symbolic shape produced by an op; identity-hashed graph node."""

    def __init__(self, shape: tuple, dtype: str, op):
        self.shape = shape
        self.dtype = dtype
        self.op = op

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices) -> TensorLoad:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != len(self.shape):
            raise ShapeError(f"{self.name}: indexed with {len(indices)} indices, tensor has rank {len(self.shape)}")
        idx = []
        for pos, i in enumerate(indices):
            if isinstance(i, IterVar):
                i = i.var
            e = as_expr(i, INDEX)
            if e.dtype not in ("int32", "int64"):
                raise NimbleTypeError(f"{self.name}: index {pos} must be an integer expression, got {e.dtype}")
            idx.append(e if e.dtype == INDEX else e.astype(INDEX))
        return TensorLoad(self, tuple(idx))

    def __repr__(self):
        dims = ", ".join(str(d) for d in self.shape)
        return f"Tensor({self.name}, ({dims}), {self.dtype})"

    __hash__ = object.__hash__

    def __eq__(self, other):
        return self is other


def _shape(shape, what: str) -> tuple:
    if isinstance(shape, (int, Expr)):
        shape = (shape,)
    dims = []
    for pos, d in enumerate(shape):
        if isinstance(d, int) and d < 0:
            raise ShapeError(f"{what}: dimension {pos} must be >= 0, got {d}")
        e = as_expr(d, INDEX)
        if e.dtype not in ("int32", "int64"):
            raise NimbleTypeError(f"{what}: dimension {pos} must be an integer expression, got {e.dtype}")
        dims.append(e.astype(INDEX))
    return tuple(dims)


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor; dims are ints or symbolic expressions (``te.var("n")``)."""
    return Tensor(_shape(shape, name), check_dtype(dtype), PlaceholderOp(name))


def compute(shape, fcompute, name: str = "compute", tag: str = "", checks=None) -> Tensor:
    """``out[i...] = fcompute(i...)``; fcompute takes one index Var per dimension.

    ``checks(i...)`` may return ``[(condition, message), ...]``: an element whose condition is
    false is not computed and the kernel call raises ``nimble.OutOfRangeError(message)``
    (e.g. an embedding index outside the table).
    """
    shape = _shape(shape, name)
    sig_params = list(inspect.signature(fcompute).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in sig_params):
        params = [f"ax{d}" for d in range(len(shape))]
    else:
        params = [p.name for p in sig_params]
        if len(params) != len(shape):
            raise ShapeError(f"{name}: fcompute takes {len(params)} indices, shape has {len(shape)} dims")
    axis = tuple(IterVar(var(p), d) for p, d in zip(params, shape))
    body = as_expr(fcompute(*[iv.var for iv in axis]))
    if isinstance(body, Reduce) and _has_nested_reduce(body.source):
        raise NimbleTypeError(f"{name}: a reduction must be the outermost expression of a compute body")
    if not isinstance(body, Reduce) and _has_nested_reduce(body):
        raise NimbleTypeError(f"{name}: a reduction must be the outermost expression of a compute body")
    conds = ()
    if checks is not None:
        conds = tuple((as_expr(c), str(msg)) for c, msg in checks(*[iv.var for iv in axis]))
        for c, msg in conds:
            if c.dtype != "bool":
                raise NimbleTypeError(f"{name}: check {msg!r} must be a bool expression, got {c.dtype}")
    return Tensor(shape, body.dtype, ComputeOp(name, axis, body, tag, conds))


def _has_nested_reduce(e: Expr) -> bool:
    from .visit import any_node

    return any_node(e, lambda n: isinstance(n, Reduce))


def reduce_axis(dom, name: str = "k") -> IterVar:
    """A reduction axis over ``range(extent)`` or ``range(lo, hi)`` given as a tuple."""
    if isinstance(dom, tuple):
        lo, hi = (as_expr(d, INDEX) for d in dom)
        return IterVar(var(name), hi - lo, "reduce", lo)
    return IterVar(var(name), as_expr(dom, INDEX), "reduce")


def _reduction(combiner: str, init_of):
    def reducer(expr, axis) -> Reduce:
        axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        for a in axes:
            if not isinstance(a, IterVar) or a.kind != "reduce":
                raise NimbleTypeError(f"{combiner}: axis must be te.reduce_axis(...), got {a!r}")
        expr = as_expr(expr)
        return Reduce(combiner, expr, axes, init_of(expr.dtype))

    reducer.__name__ = combiner
    reducer.__doc__ = f"{combiner} of ``expr`` over the reduction axes ``axis``."
    return reducer


sum = _reduction("sum", lambda dt: const(0, dt))  # noqa: A001
max = _reduction("max", min_value)  # noqa: A001
min = _reduction("min", max_value)  # noqa: A001
prod = _reduction("prod", lambda dt: const(1, dt))
