"""The thread count generated kernels use: ``NIMBLE_NUM_THREADS``, else every core."""
from __future__ import annotations

import os

from ..errors import NimbleError


def _from_env() -> int:
    raw = os.environ.get("NIMBLE_NUM_THREADS", "")
    if not raw:
        return os.cpu_count() or 1
    try:
        n = int(raw)
    except ValueError:
        raise NimbleError(f"NIMBLE_NUM_THREADS: expected a positive integer, got {raw!r}") from None
    if n < 1:
        raise NimbleError(f"NIMBLE_NUM_THREADS: expected a positive integer, got {n}")
    return n


_num_threads = _from_env()


def num_threads() -> int:
    return _num_threads


def set_num_threads(n: int) -> None:
    """Set how many threads parallel loops of every kernel use from now on."""
    global _num_threads
    if not isinstance(n, int) or n < 1:
        raise NimbleError(f"set_num_threads: expected a positive integer, got {n!r}")
    _num_threads = n
