"""Debug printing through the ``nimble`` logger; the levels are ``NIMBLE_DEBUG``'s table in ``nimble.settings``."""
from __future__ import annotations

import logging
import sys

from . import settings


def debug_level() -> int:
    return settings.current().debug


def attach_stderr_handler() -> None:
    """Make the ``nimble`` logger print debug records to stderr (once; a handler already there is kept)."""
    root = logging.getLogger("nimble")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)


def debug_logger(name: str) -> logging.Logger:
    """A child of the ``nimble`` logger that prints to stderr when NIMBLE_DEBUG is set."""
    if debug_level() > 0 or settings.current().print_after:
        attach_stderr_handler()
    return logging.getLogger(name)
