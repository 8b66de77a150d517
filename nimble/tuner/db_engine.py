"""Engines of the records database: one per (process, URL), SQLite tuned for concurrent tuners.

``database_url`` turns a path, a URL or None (``tuning_logs/<target>.db``) into a SQLAlchemy URL;
``engine_for`` gives the process's one engine of a URL. SQLite engines run in WAL mode with a
busy timeout and begin write transactions with ``BEGIN IMMEDIATE`` (connections executed with
``nimble_write=True``); server engines (PostgreSQL) ping connections before use.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import StaticPool

from ..errors import FormatError

BUSY_TIMEOUT_S = 60.0


def target_name(target: str) -> str:
    """File-name-safe first word of a target string: ``"llvm -mcpu=znver4"`` -> ``"llvm"``."""
    words = target.split() if isinstance(target, str) else []
    if not words:
        raise FormatError(f"target: expected a target string such as 'llvm', got {target!r}")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", words[0])


def database_url(url_or_path: str | os.PathLike | None = None, target: str = "llvm") -> str:
    """The SQLAlchemy URL of a URL, a file path, ``":memory:"`` (SQLite in memory, this process only), or None
    (``tuning_logs/<target-name>.db``)."""
    if url_or_path is None:
        url_or_path = Path("tuning_logs") / f"{target_name(target)}.db"
    if isinstance(url_or_path, str) and "://" in url_or_path:
        try:
            make_url(url_or_path)
        except ArgumentError as exc:
            raise FormatError(f"url_or_path: expected a SQLAlchemy URL or a file path, got {url_or_path!r}") from exc
        return url_or_path
    if not isinstance(url_or_path, (str, os.PathLike)):
        raise FormatError(f"url_or_path: expected a SQLAlchemy URL or a file path, got {url_or_path!r}")
    if url_or_path == ":memory:":  # SQLite's name for a database in memory, not a file in this folder
        return "sqlite:///:memory:"
    path = Path(url_or_path).expanduser().resolve()
    return f"sqlite:///{path}"


_ENGINES: dict[tuple[int, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(url: str) -> Engine:
    """The one engine of ``url`` in this process (created on first use)."""
    key = (os.getpid(), url)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = _create_engine(url)
        return _ENGINES[key]


def dispose_engines() -> None:
    """Close every engine this process created (their databases stay as they are)."""
    with _ENGINES_LOCK:
        for (pid, _), engine in list(_ENGINES.items()):
            if pid == os.getpid():
                engine.dispose()
        _ENGINES.clear()


def dispose_engine(url: str) -> None:
    """Close this process's engine of ``url``, if it has one (the database stays as it is)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.pop((os.getpid(), url), None)
    if engine is not None:
        engine.dispose()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    engine = create_engine(
        parsed,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun by _begin below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Writers take the write lock up front, so they queue on the busy timeout instead of
        # failing when upgrading a read lock that another process has overtaken.
        write = connection.get_execution_options().get("nimble_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def is_transient(exc: DBAPIError) -> bool:
    """A deadlock or serialization failure (PostgreSQL SQLSTATE 40P01 / 40001): the write may be retried."""
    return getattr(exc.orig, "sqlstate", None) in ("40P01", "40001")
