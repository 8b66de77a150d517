"""The model IR: types with `Any`, expressions, modules, type inference, printer and reference interpreter."""
from .builder import Builder, const, get, if_, match, pattern, pctor, tensor_type, tuple_, var
from .expr import (
    Attrs, Call, Clause, Constant, Constructor, Expr, Function, GlobalVar, If, Let, Match, Op, Pattern,
    PatternConstructor, PatternTuple, PatternVar, PatternWildcard, Tuple, TupleGetItem, Var, as_expr,
)
from .infer import ModuleTypes, infer_type, infer_types
from .interpreter import Interpreter, evaluate
from .module import IRModule, TypeData, define_adt
from .printer import print_expr, print_function, print_module
from .structural import structural_equal, structural_hash
from .types import (
    ADTType,
    Any,
    AnyDim,
    FuncType,
    IncompleteType,
    SymDim,
    TensorType,
    TupleType,
    Type,
    TypeVar,
    scalar_type,
)
from .values import Closure, ConstructorValue
from .visitor import ExprFunctor, ExprMutator, ExprVisitor, free_vars, substitute_vars

__all__ = [name for name in dir() if not name.startswith("_")]
