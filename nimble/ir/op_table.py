"""The table of operator definitions, keyed by name: what the type checker and the IR interpreter look an
operator call up in. ``nimble.ops.register`` fills it (``nimble/ops/registry.py``); the model IR reads it
without importing the operator layer above it."""
from __future__ import annotations

from ..errors import NimbleError

OPERATORS: dict = {}  # op name -> nimble.ops.registry.OpDef


def get_op(name: str):
    """The registered operator ``name`` (an ``OpDef``)."""
    if name not in OPERATORS:
        raise NimbleError(f"no operator named {name!r} is registered")
    return OPERATORS[name]


def list_ops() -> list[str]:
    """Names of every registered operator, sorted."""
    return sorted(OPERATORS)
