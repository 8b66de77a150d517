"""The reference interpreter: evaluates a well-typed module with each operator's numpy reference.

It is the oracle for every later pass and for the VM, so it is plain rather than fast. Tensors are numpy arrays,
tuples are Python tuples, ADT values are `ConstructorValue`s and function values are `Closure`s. Recursive
programs recurse in Python; `evaluate` raises the recursion limit while it runs.
"""
from __future__ import annotations

import numpy as np

from ..errors import NimbleError, ShapeError, TypeError
from .expr import (
    Call, Constant, Constructor, Expr, Function, GlobalVar, If, Let, Match, Op, Pattern, PatternConstructor,
    PatternTuple, PatternVar, PatternWildcard, Tuple, TupleGetItem, Var,
)
from .module import IRModule
from .op_table import get_op
from .types import AnyDim, SymDim, TensorType, TupleType, Type
from .values import Closure, ConstructorValue
from .visitor import deep_recursion


class Interpreter:
    """Evaluates the functions of one module."""

    def __init__(self, mod: IRModule, check_types: bool = False):
        self.mod = mod
        self.check_types = check_types
        self._op_cache: dict[int, tuple] = {}

    # ---- entry points ------------------------------------------------------------------------------------
    def call(self, name: str, *args):
        """Call global function `name` on `args`, checking them against its parameter types."""
        fn = self.mod[name]
        if len(args) != len(fn.params):
            raise TypeError(f"@{name} takes {len(fn.params)} arguments, got {len(args)}")
        bound: dict = {}
        for p, value in zip(fn.params, args):
            if p.type_annotation is not None:
                check_value(value, p.type_annotation, f"@{name} argument %{p.name}", bound)
        with deep_recursion():
            return self.apply(fn, {}, list(args))

    # ---- evaluation --------------------------------------------------------------------------------------
    def apply(self, fn: Function, captured: dict, args: list):
        env = dict(captured)
        for p, value in zip(fn.params, args):
            env[p.id] = value
        return self.eval(fn.body, env, {})

    def eval(self, expr: Expr, env: dict, cache: dict):
        """The value of `expr`; `cache` memoises shared subexpressions within one function invocation."""
        while isinstance(expr, Let):
            env[expr.var.id] = self.eval(expr.value, env, cache)
            expr = expr.body
        key = id(expr)
        if key in cache:
            return cache[key]
        kind = type(expr)
        if kind is Var:
            if expr.id not in env:
                raise NimbleError(f"variable %{expr.name} is not bound here")
            return env[expr.id]
        if kind is Call:
            value = self.eval_call(expr, env, cache)
        elif kind is Constant:
            return expr.value
        elif kind is If:
            cond = self.eval(expr.cond, env, cache)
            branch = expr.then_branch if bool(np.asarray(cond)) else expr.else_branch
            return self.eval(branch, env, cache)
        elif kind is Tuple:
            value = tuple(self.eval(f, env, cache) for f in expr.fields)
        elif kind is TupleGetItem:
            value = self.eval(expr.tuple_value, env, cache)[expr.index]
        elif kind is Function:
            value = Closure(expr, env)
        elif kind is GlobalVar:
            value = Closure(self.mod[expr.name], {})
        elif kind is Match:
            return self.eval_match(expr, env, cache)
        elif kind is Constructor:
            value = Closure(_constructor_function(expr), {})
        else:
            raise NimbleError(f"cannot evaluate a bare {kind.__name__}; operators must be called")
        cache[key] = value
        return value

    def eval_call(self, call: Call, env: dict, cache: dict):
        args = [self.eval(a, env, cache) for a in call.args]
        callee = call.op
        if isinstance(callee, Op):
            opdef, attrs = self._op(call)
            result = opdef.reference(*args, **attrs)
            if self.check_types:
                _check_op_result(opdef, args, attrs, result)
            return result
        if isinstance(callee, Constructor):
            return ConstructorValue(callee, tuple(args))
        if isinstance(callee, GlobalVar):
            return self.apply(self.mod[callee.name], {}, args)
        closure = self.eval(callee, env, cache)
        if not isinstance(closure, Closure):
            raise TypeError(f"called a {type(closure).__name__}, not a function")
        return self.apply(closure.function, closure.env, args)

    def _op(self, call: Call):
        hit = self._op_cache.get(id(call))
        if hit is None or hit[0] is not call:
            opdef = get_op(call.op.name)
            hit = (call, opdef, opdef.full_attrs(call.attrs))
            self._op_cache[id(call)] = hit
        return hit[1], hit[2]

    def eval_match(self, match: Match, env: dict, cache: dict):
        data = self.eval(match.data, env, cache)
        for clause in match.clauses:
            bindings: dict = {}
            if _match_pattern(clause.pattern, data, bindings):
                env.update(bindings)
                return self.eval(clause.body, env, cache)
        raise NimbleError(f"match: no clause matches the value {data!r}")


def _constructor_function(ctor: Constructor) -> Function:
    params = tuple(Var(f"field{i}") for i in range(len(ctor.inputs)))
    return Function(params, Call(ctor, params))


def _match_pattern(pattern: Pattern, value, bindings: dict) -> bool:
    if isinstance(pattern, PatternWildcard):
        return True
    if isinstance(pattern, PatternVar):
        bindings[pattern.var.id] = value
        return True
    if isinstance(pattern, PatternConstructor):
        if not (isinstance(value, ConstructorValue) and value.constructor == pattern.constructor):
            return False
        return all(_match_pattern(p, f, bindings) for p, f in zip(pattern.patterns, value.fields))
    if isinstance(pattern, PatternTuple):
        return all(_match_pattern(p, f, bindings) for p, f in zip(pattern.patterns, value))
    raise NimbleError(f"unknown pattern {type(pattern).__name__}")


def check_value(value, t: Type, where: str, bound: dict):
    """Raise when `value` does not fit `t`; symbolic dims bind in `bound` on first sight."""
    if isinstance(t, TensorType):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{where}: expected a tensor {t!r}, got {type(value).__name__}")
        if value.dtype.name != t.dtype:
            raise TypeError(f"{where}: expected dtype {t.dtype}, got {value.dtype.name}")
        if value.ndim != t.ndim:
            raise ShapeError(f"{where}: expected rank {t.ndim} {t!r}, got shape {value.shape}")
        for axis, (dim, size) in enumerate(zip(t.shape, value.shape)):
            if isinstance(dim, AnyDim):
                continue
            if isinstance(dim, SymDim):
                if bound.setdefault(dim, size) != size:
                    raise ShapeError(f"{where}: symbolic dim {dim.name} is {bound[dim]}, but axis {axis} is {size}")
            elif dim != size:
                raise ShapeError(f"{where}: expected dim {dim} at axis {axis}, got shape {value.shape}")
    elif isinstance(t, TupleType):
        if not isinstance(value, tuple) or len(value) != len(t.fields):
            raise TypeError(f"{where}: expected a tuple of {len(t.fields)} fields, got {type(value).__name__}")
        for i, (v, ft) in enumerate(zip(value, t.fields)):
            check_value(v, ft, f"{where}.{i}", bound)


def _value_type(value) -> Type:
    if isinstance(value, tuple):
        return TupleType(tuple(_value_type(v) for v in value))
    return TensorType(value.shape, value.dtype.name)


def _check_op_result(opdef, args: list, attrs: dict, result):
    """The op's type relation, applied to the concrete argument types, must describe the value it returned."""
    try:
        expected = opdef.type_rel(*(_value_type(a) for a in args), **attrs)
        check_value(result, expected, f"{opdef.name} result", {})
    except NimbleError as err:
        raise type(err)(f"type relation and reference of {opdef.name} disagree: {err}") from None


def evaluate(mod: IRModule, *args, entry: str = "main", check_types: bool = False):
    """Run `mod`'s function `entry` (default `main`) on `args` with the reference interpreter.

    With `check_types`, every operator's result is checked against its type relation on the concrete argument
    types (slower; a self-check of the registry on whole models).
    """
    return Interpreter(mod, check_types).call(entry, *args)
