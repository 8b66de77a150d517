"""Helpers the native VM runtime's emitters share: exported functions, errors left in the context."""
from __future__ import annotations

import llvmlite.ir as ir

from . import native_layout as L
from .native_ir import c32, store
from .native_ir import function as _function

PREFIX = "nvm_"


def function(module, name, ret, args, internal: bool = False, inline=None):
    """Runtime functions are exported: programs link against them by (versioned) name."""
    return _function(module, name, ret, args, internal=False, inline=inline)


def set_error(b: ir.IRBuilder, ctx, code: int, status=None) -> None:
    store(b, c32(code), ctx, L.C_ERR_CODE)
    if status is not None:
        store(b, status if not isinstance(status, int) else c32(status), ctx, L.C_ERR_STATUS)


def set_detail(b: ir.IRBuilder, ctx, slot: int, value) -> None:
    store(b, value, ctx, L.C_ERR_DETAIL + 8 * slot)
