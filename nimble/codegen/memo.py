"""An in-process memo of compiled loop-IR functions, keyed by their structure.

The on-disk object cache (``jit.compile_object``) skips LLVM's optimiser for IR it has seen, but
emitting the LLVM IR from the loop IR is paid on every build. Compiling the same module twice in
one process (a VM per backend, a model per test, a sweep over options) builds the same kernels
again; this memo returns the first build's object instead.

The key is the loop IR's full structure: every node's type and fields, variables and buffers
numbered by first appearance (they compare by identity, so two distinct ``n`` stay distinct),
floats by their bit pattern. A node the walker does not know makes the functions unkeyable
(never cached), so an unexpected field can cost speed, never correctness.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict

from ..te.expr import Var
from ..tir.nodes import Buffer

MAX_ENTRIES = 256

_lock = threading.Lock()
_memo: OrderedDict = OrderedDict()
stats = {"hits": 0, "misses": 0}


class _Unkeyable(Exception):
    pass


def structural_key(funcs, *context) -> tuple | None:
    """A hashable key equal for structurally identical function lists (names included), or None."""
    numbering: dict = {}
    done: dict = {}

    def walk(x):
        if x is None or isinstance(x, (bool, int, str)):
            return (type(x).__name__, x)
        if isinstance(x, float):
            return ("float", x.hex())
        if isinstance(x, (tuple, list)):
            return (type(x).__name__,) + tuple(walk(v) for v in x)
        if isinstance(x, dict):
            return ("dict",) + tuple(sorted((walk(k), walk(v)) for k, v in x.items()))
        if isinstance(x, (Var, Buffer)):
            n = numbering.get(id(x))
            if n is not None:
                return ("ref", n)
            numbering[id(x)] = len(numbering)
            return ("def", type(x).__name__) + tuple(walk(getattr(x, f.name)) for f in dataclasses.fields(x))
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            cached = done.get(id(x))
            if cached is not None and cached[0] is x:
                return cached[1]
            key = (type(x).__module__, type(x).__qualname__) + tuple(walk(getattr(x, f.name))
                                                                    for f in dataclasses.fields(x))
            done[id(x)] = (x, key)
            return key
        raise _Unkeyable(type(x).__name__)

    try:
        return tuple(walk(f) for f in funcs) + tuple(walk(c) for c in context)
    except (_Unkeyable, RecursionError):
        return None


def lookup(key):
    """The stored value for ``key`` (and marks it recently used), or None."""
    if key is None:
        return None
    with _lock:
        value = _memo.get(key)
        if value is None:
            stats["misses"] += 1
            return None
        _memo.move_to_end(key)
        stats["hits"] += 1
        return value


def store(key, value) -> None:
    if key is None:
        return
    with _lock:
        _memo[key] = value
        _memo.move_to_end(key)
        while len(_memo) > MAX_ENTRIES:
            _memo.popitem(last=False)


def clear() -> None:
    with _lock:
        _memo.clear()
