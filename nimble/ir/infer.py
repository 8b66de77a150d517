"""Type inference for a whole module: operator type relations, calls, recursion, ADTs and `Any`.

Global functions get their declared types (parameter annotations, result annotation, or an inference variable)
before any body is checked, so functions may call themselves and each other. A call of a function unifies the
arguments with the parameters after giving the callee's type parameters and symbolic dims fresh copies: a
symbolic dim binds once per call. Errors say what went wrong and show the function with the offending line marked.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..debug import debug_logger, debug_level
from ..errors import NimbleError, TypeError
from .expr import (
    Call, Constant, Constructor, Expr, Function, GlobalVar, If, Let, Match, Op, Pattern, PatternConstructor,
    PatternTuple, PatternVar, PatternWildcard, Tuple, TupleGetItem, Var,
)
from .module import IRModule, constructor_type
from .op_table import get_op
from .printer import print_function_marked, print_module
from .types import (
    ADTType,
    FuncType,
    IncompleteType,
    TensorType,
    TupleType,
    Type,
    substitute,
    sym_dims,
)
from .unify import Unifier
from .visitor import ExprFunctor, deep_recursion

_log = debug_logger("nimble.ir")


@dataclass
class ModuleTypes:
    """The result of `infer_types`: the type of every global function and of every expression in them."""

    functions: dict
    _types: dict
    _var_types: dict
    _unifier: Unifier

    def __getitem__(self, expr: Expr) -> Type:
        hit = self._types.get(id(expr))
        if hit is not None and hit[0] is expr:
            return self._unifier.resolve(hit[1], finalize=True)
        if isinstance(expr, Var) and expr.id in self._var_types:
            return self._unifier.resolve(self._var_types[expr.id], finalize=True)
        raise NimbleError(f"no type was inferred for {type(expr).__name__} (is it part of the module?)")

    def function(self, name: str) -> FuncType:
        return self._unifier.resolve(self.functions[name], finalize=True)

    def __contains__(self, expr: Expr) -> bool:
        hit = self._types.get(id(expr))
        return (hit is not None and hit[0] is expr) or (isinstance(expr, Var) and expr.id in self._var_types)


def _has_incomplete(t: Type) -> bool:
    if isinstance(t, IncompleteType):
        return True
    if isinstance(t, TupleType):
        return any(_has_incomplete(f) for f in t.fields)
    return False


def _callee_name(expr: Expr) -> str:
    if isinstance(expr, GlobalVar):
        return "@" + expr.name
    if isinstance(expr, Constructor):
        return expr.name
    if isinstance(expr, Var):
        return "%" + expr.name
    return "function"


class _TypeChecker(ExprFunctor):
    def __init__(self, mod: IRModule):
        super().__init__()
        self.mod = mod
        self.unifier = Unifier()
        self.var_types: dict[int, Type] = {}
        self.global_types: dict[str, FuncType] = {}
        self.where: tuple[str, Function] | None = None

    # ---- errors ------------------------------------------------------------------------------------------
    def located(self, err: NimbleError, expr: Expr) -> NimbleError:
        """`err` with the current function printed around `expr`; errors already located pass through."""
        if getattr(err, "located", False) or self.where is None:
            return err
        name, fn = self.where
        new = type(err)(f"{err}\n  in @{name}:\n{print_function_marked(name, fn, expr)}")
        new.located = True
        return new

    def resolved(self, t: Type) -> Type:
        return self.unifier.resolve(t)

    # ---- atoms -------------------------------------------------------------------------------------------
    def visit_var(self, var: Var) -> Type:
        if var.id in self.var_types:
            return self.var_types[var.id]
        if var.type_annotation is not None:
            return var.type_annotation
        raise TypeError(f"free variable %{var.name} has no type annotation")

    def visit_constant(self, const: Constant) -> Type:
        return TensorType(const.value.shape, const.value.dtype.name)

    def visit_op(self, op: Op) -> Type:
        raise TypeError(f"operator {op.name} is used as a value; call it instead")

    def visit_global_var(self, gv: GlobalVar) -> Type:
        if gv.name not in self.global_types:
            defined = sorted(self.global_types)
            raise NimbleError(f"call of @{gv.name}, which the module does not define; it has {defined}")
        return self.global_types[gv.name]

    def visit_constructor(self, ctor: Constructor) -> Type:
        if ctor.adt not in self.mod.type_defs:
            raise TypeError(f"constructor {ctor.name} belongs to {ctor.adt}, which the module does not define")
        return constructor_type(self.mod.type_defs[ctor.adt], ctor)

    # ---- calls -------------------------------------------------------------------------------------------
    def visit_call(self, call: Call) -> Type:
        try:
            if isinstance(call.op, Op):
                return self.op_call(call)
            return self.function_call(call)
        except NimbleError as err:
            raise self.located(err, call) from None

    def op_call(self, call: Call) -> Type:
        opdef = get_op(call.op.name)
        arg_types = [self.resolved(self.visit(a)) for a in call.args]
        for name, t in zip(opdef.arg_names, arg_types):
            if _has_incomplete(t):
                raise TypeError(
                    f"{opdef.name}: the type of argument {name} is not known here; annotate the variable it comes from"
                )
        return opdef.infer(arg_types, call.attrs)

    def function_call(self, call: Call) -> Type:
        callee = self.resolved(self.visit(call.op))
        name = _callee_name(call.op)
        if not isinstance(callee, FuncType):
            raise TypeError(f"{name} is called but has type {callee!r}, not a function type")
        fn_type = self.instantiate(callee)
        if len(call.args) != len(fn_type.arg_types):
            raise TypeError(f"{name} takes {len(fn_type.arg_types)} arguments, got {len(call.args)}")
        for i, (param_t, arg) in enumerate(zip(fn_type.arg_types, call.args)):
            arg_t = self.resolved(self.visit(arg))
            if isinstance(arg_t, FuncType) and arg_t.type_params:  # a polymorphic function passed as a value
                arg_t = self.instantiate(arg_t)
            self.unifier.unify(param_t, arg_t, f"{name} argument {self.param_name(call.op, i)}")
        return self.unifier.resolve(fn_type.ret_type, finalize=True)

    def param_name(self, callee: Expr, index: int) -> str:
        fn = self.mod.functions.get(callee.name) if isinstance(callee, GlobalVar) else callee
        if isinstance(fn, Function) and index < len(fn.params):
            return "%" + fn.params[index].name
        return str(index)

    def instantiate(self, fn_type: FuncType) -> FuncType:
        """A copy of `fn_type` with fresh inference variables for its type params and fresh dims for its names."""
        type_map = {tp: IncompleteType() for tp in fn_type.type_params}
        dim_map = {d: self.unifier.fresh_dim(d) for d in sym_dims(fn_type)}
        inner = FuncType(fn_type.arg_types, fn_type.ret_type)
        return substitute(inner, type_map, dim_map)

    # ---- functions and bindings --------------------------------------------------------------------------
    def visit_function(self, fn: Function) -> Type:
        param_types = tuple(p.type_annotation or IncompleteType() for p in fn.params)
        for p, t in zip(fn.params, param_types):
            self.var_types[p.id] = t
        body_type = self.visit(fn.body)
        ret = fn.ret_type if fn.ret_type is not None else body_type
        if fn.ret_type is not None:
            self.check_result(fn.ret_type, body_type, fn.body, "function result")
        return FuncType(param_types, ret, fn.type_params)

    def check_result(self, declared: Type, actual: Type, expr: Expr, what: str):
        try:
            self.unifier.unify(declared, actual, what)
        except NimbleError as err:
            raise self.located(err, expr) from None

    def visit_let(self, let: Let) -> Type:
        expr = let
        while isinstance(expr, Let):
            value_type = self.visit(expr.value)
            var = expr.var
            if var.type_annotation is not None:
                self.check_result(var.type_annotation, value_type, expr.value, f"let %{var.name}")
                value_type = var.type_annotation
            self.var_types[var.id] = value_type
            self.memo[id(expr)] = (expr, None)  # filled below; marks the chain as visited
            expr = expr.body
        result = self.visit(expr)
        node = let
        while isinstance(node, Let):
            self.memo[id(node)] = (node, result)
            node = node.body
        return result

    def visit_if(self, node: If) -> Type:
        cond = self.resolved(self.visit(node.cond))
        if not (isinstance(cond, TensorType) and cond.ndim == 0 and cond.dtype == "bool"):
            raise self.located(TypeError(f"if: the condition must be a scalar bool tensor, got {cond!r}"), node.cond)
        then_t, else_t = self.visit(node.then_branch), self.visit(node.else_branch)
        try:
            return self.unifier.join(then_t, else_t, "if: the branches differ")
        except NimbleError as err:
            raise self.located(err, node) from None

    def visit_tuple(self, tup: Tuple) -> Type:
        return TupleType(tuple(self.visit(f) for f in tup.fields))

    def visit_tuple_getitem(self, node: TupleGetItem) -> Type:
        t = self.resolved(self.visit(node.tuple_value))
        if not isinstance(t, TupleType):
            raise self.located(TypeError(f"field {node.index} taken of a {t!r}, not a tuple"), node)
        if not 0 <= node.index < len(t.fields):
            raise self.located(TypeError(f"field {node.index} taken of a tuple of {len(t.fields)} fields"), node)
        return t.fields[node.index]

    def visit_match(self, match: Match) -> Type:
        data_t = self.visit(match.data)
        result = None
        for clause in match.clauses:
            try:
                self.bind_pattern(clause.pattern, data_t)
            except NimbleError as err:
                raise self.located(err, match) from None
            body_t = self.visit(clause.body)
            try:
                result = body_t if result is None else self.unifier.join(result, body_t, "match: the clauses differ")
            except NimbleError as err:
                raise self.located(err, clause.body) from None
        if result is None:
            raise self.located(TypeError("match has no clauses"), match)
        return result

    def bind_pattern(self, pattern: Pattern, t: Type):
        t = self.resolved(t)
        if isinstance(pattern, PatternWildcard):
            return
        if isinstance(pattern, PatternVar):
            var = pattern.var
            if var.type_annotation is not None:
                self.unifier.unify(var.type_annotation, t, f"pattern %{var.name}")
                t = var.type_annotation
            self.var_types[var.id] = t
            return
        if isinstance(pattern, PatternConstructor):
            ctor = pattern.constructor
            td = self.mod.type_defs.get(ctor.adt)
            if td is None:
                raise TypeError(f"pattern {ctor.name} belongs to {ctor.adt}, which the module does not define")
            if isinstance(t, IncompleteType):
                t = self.unifier.unify(t, ADTType(td.name, tuple(IncompleteType() for _ in td.type_params)))
            if not (isinstance(t, ADTType) and t.name == ctor.adt):
                raise TypeError(f"pattern {ctor.name} matches a {ctor.adt}, but the value is {t!r}")
            if len(pattern.patterns) != len(ctor.inputs):
                needs, got = len(ctor.inputs), len(pattern.patterns)
                raise TypeError(f"pattern {ctor.name} needs {needs} sub-patterns, got {got}")
            type_map = dict(zip(td.type_params, t.args))
            for sub, field_t in zip(pattern.patterns, ctor.inputs):
                self.bind_pattern(sub, substitute(field_t, type_map))
            return
        if isinstance(pattern, PatternTuple):
            if isinstance(t, IncompleteType):
                t = self.unifier.unify(t, TupleType(tuple(IncompleteType() for _ in pattern.patterns)))
            if not (isinstance(t, TupleType) and len(t.fields) == len(pattern.patterns)):
                raise TypeError(f"tuple pattern of {len(pattern.patterns)} fields, but the value is {t!r}")
            for sub, field_t in zip(pattern.patterns, t.fields):
                self.bind_pattern(sub, field_t)
            return
        raise TypeError(f"unknown pattern {type(pattern).__name__}")

    # ---- module ------------------------------------------------------------------------------------------
    def declare(self, name: str, fn: Function):
        param_types = tuple(p.type_annotation or IncompleteType() for p in fn.params)
        ret = fn.ret_type if fn.ret_type is not None else IncompleteType()
        self.global_types[name] = FuncType(param_types, ret, fn.type_params)

    def check_global(self, name: str, fn: Function):
        self.where = (name, fn)
        declared = self.global_types[name]
        for p, t in zip(fn.params, declared.arg_types):
            self.var_types[p.id] = t
        body_t = self.visit(fn.body)
        self.check_result(declared.ret_type, body_t, fn.body, f"@{name} result")
        fn_type = FuncType(declared.arg_types, declared.ret_type, fn.type_params)
        self.memo[id(fn)] = (fn, fn_type)
        self.where = None


def infer_types(mod: IRModule) -> ModuleTypes:
    """Type-check every function of `mod`; returns the types, raises `ShapeError` / `TypeError` on a mismatch."""
    checker = _TypeChecker(mod)
    with deep_recursion():
        for name, fn in mod.functions.items():
            checker.declare(name, fn)
        for name, fn in mod.functions.items():
            checker.check_global(name, fn)
    types = ModuleTypes(dict(checker.global_types), checker.memo, checker.var_types, checker.unifier)
    if debug_level() >= 1:
        _log.debug("typed module:\n%s", print_module(mod, types))
    return types


def infer_type(expr: Expr, mod: IRModule | None = None) -> Type:
    """The type of one expression (its free variables must be annotated), in the context of `mod`."""
    mod = mod or IRModule()
    checker = _TypeChecker(mod)
    with deep_recursion():
        for name, fn in mod.functions.items():
            checker.declare(name, fn)
        checker.where = ("expr", Function((), expr))
        return checker.unifier.resolve(checker.visit(expr), finalize=True)

