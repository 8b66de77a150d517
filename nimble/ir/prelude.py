"""The prelude: `List`, `Option` and (binary) `Tree` data types and a few polymorphic functions over them.

    type List[a]   { Cons(a, List[a]), Nil }
    type Option[a] { Some(a), Nothing }
    type Tree[a]   { Leaf(a), Node(Tree[a], Tree[a]) }

Functions: `map(f, xs)`, `foldl(f, acc, xs)`, `tree_fold(on_leaf, on_node, t)`.
"""
from __future__ import annotations

from .builder import match, pctor, var
from .expr import Function, GlobalVar
from .module import IRModule, define_adt
from .types import ADTType, FuncType, TypeVar

a, b = TypeVar("a"), TypeVar("b")

LIST = define_adt("List", [a], {"Cons": [a, ADTType("List", (a,))], "Nil": []})
OPTION = define_adt("Option", [a], {"Some": [a], "Nothing": []})
TREE = define_adt("Tree", [a], {"Leaf": [a], "Node": [ADTType("Tree", (a,)), ADTType("Tree", (a,))]})

Cons, Nil = LIST.constructors
Some, Nothing = OPTION.constructors
Leaf, Node = TREE.constructors


def list_type(elem) -> ADTType:
    return ADTType("List", (elem,))


def tree_type(elem) -> ADTType:
    return ADTType("Tree", (elem,))


def _map() -> Function:
    f = var("f", type=FuncType((a,), b))
    xs = var("xs", type=list_type(a))
    head, tail = var("head"), var("tail")
    body = match(xs, [(pctor(Cons, head, tail), Cons(f(head), GlobalVar("map")(f, tail))), (pctor(Nil), Nil())])
    return Function((f, xs), body, list_type(b), (a, b))


def _foldl() -> Function:
    f = var("f", type=FuncType((a, b), a))
    acc = var("acc", type=a)
    xs = var("xs", type=list_type(b))
    head, tail = var("head"), var("tail")
    body = match(xs, [(pctor(Cons, head, tail), GlobalVar("foldl")(f, f(acc, head), tail)), (pctor(Nil), acc)])
    return Function((f, acc, xs), body, a, (a, b))


def _tree_fold() -> Function:
    on_leaf = var("on_leaf", type=FuncType((a,), b))
    on_node = var("on_node", type=FuncType((b, b), b))
    t = var("t", type=tree_type(a))
    value, left, right = var("value"), var("left"), var("right")
    rec = GlobalVar("tree_fold")
    body = match(
        t,
        [
            (pctor(Leaf, value), on_leaf(value)),
            (pctor(Node, left, right), on_node(rec(on_leaf, on_node, left), rec(on_leaf, on_node, right))),
        ],
    )
    return Function((on_leaf, on_node, t), body, b, (a, b))


def add_prelude(mod: IRModule) -> IRModule:
    """Add the prelude's data types and functions to `mod` (in place) and return it."""
    for td in (LIST, OPTION, TREE):
        mod.add_type(td)
    mod.define("map", _map())
    mod.define("foldl", _foldl())
    mod.define("tree_fold", _tree_fold())
    return mod


def from_python_list(values: list, to_value=lambda v: v):
    """The interpreter value of a `List` holding `values` (each converted by `to_value`)."""
    from .values import ConstructorValue

    result = ConstructorValue(Nil, ())
    for v in reversed(values):
        result = ConstructorValue(Cons, (to_value(v), result))
    return result


def to_python_list(value) -> list:
    """The fields of an interpreter `List` value, in order."""
    out = []
    while value.constructor.name == "Cons":
        out.append(value.fields[0])
        value = value.fields[1]
    return out
