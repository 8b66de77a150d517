"""``NIMBLE_DEBUG=1`` logs lowered loop IR, ``=2`` adds LLVM IR; through the ``nimble`` logger."""
from __future__ import annotations

import logging
import os
import sys


def debug_level() -> int:
    try:
        return int(os.environ.get("NIMBLE_DEBUG", "0"))
    except ValueError:
        return 0


def debug_logger(name: str) -> logging.Logger:
    """A child of the ``nimble`` logger that prints to stderr when NIMBLE_DEBUG is set."""
    root = logging.getLogger("nimble")
    if debug_level() > 0 and not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    return logging.getLogger(name)
