"""The measurer's scratch folders (``nimble-measure-*`` in the temp dir) and the worker command line.

A folder is locked (``flock`` on ``.owner``) for as long as its measurer lives; a run killed with
SIGKILL cannot delete its own, so every new measurer deletes the folders whose lock is free.
Workers start with ``python -P`` (the current directory not first on ``sys.path``: a ``nimble/``
folder there must not shadow the package) and this process's package first on ``PYTHONPATH``.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("nimble.tuner")
PREFIX = "nimble-measure-"
_OWNER = ".owner"
MIN_AGE_S = 60.0  # a folder younger than this is never swept (between mkdtemp and flock)


class ScratchFolder:
    """A fresh ``nimble-measure-*`` folder, locked until ``remove``."""

    def __init__(self) -> None:
        sweep_stale()
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        self._lock = os.open(self.path / _OWNER, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def sweep_stale(root: str | None = None) -> int:
    """Delete the ``nimble-measure-*`` folders of measurers that are gone; returns how many."""
    removed = 0
    root = Path(root or tempfile.gettempdir())
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:
        return 0
    for folder in candidates:
        try:
            if time.time() - (folder / _OWNER).stat().st_mtime < MIN_AGE_S:
                continue  # maybe made a moment ago and not locked yet
            fd = os.open(folder / _OWNER, os.O_RDWR)
        except FileNotFoundError:
            continue  # being created right now, or not ours
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its measurer is alive
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
            log.info("removed the scratch folder %s of a measurer that was killed", folder)
        finally:
            os.close(fd)
    return removed


def worker_command(module: str) -> tuple:
    """(argv, env additions) running ``python -m module`` with this process's nimble package."""
    package_root = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH", "")
    path = package_root + (os.pathsep + old if old else "")
    return [sys.executable, "-P", "-m", module], {"PYTHONPATH": path}
