"""Checks on a records database's file and rows: an empty or missing SQLite file is refused (never
silently a new database), driver errors name the file and say what to do, and a row that is
malformed or outside its template's space is skipped (logged), so it is never anyone's best."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, OperationalError

from ..errors import FormatError, TuningError
from .record_check import config_problem
from .records import TuningRecord

log = logging.getLogger("nimble.tuner.db")

CREATION_WINDOW_S = 5.0  # an empty file younger than this may be another process creating the database
CREATION_WAIT_S = 1.0


def _being_created(path: Path) -> bool:
    """True when the empty SQLite file ``path`` fills within ``CREATION_WAIT_S``: another process has just
    created it (SQLite makes the file on connect and writes its header a moment later)."""
    try:
        if time.time() - path.stat().st_mtime > CREATION_WINDOW_S:
            return False
        deadline = time.monotonic() + CREATION_WAIT_S
        while time.monotonic() < deadline:
            if path.stat().st_size > 0:
                return True
            time.sleep(0.02)
    except OSError:
        return False
    return False


def sqlite_file(url: str, create: bool) -> None:
    """Refuse a SQLite file that is empty (not a database: never silently a new one) or, unless
    ``create``, missing; make its folder when creating."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if path.exists():
        if path.is_file() and path.stat().st_size == 0 and not _being_created(path):
            raise FormatError(f"database {path}: the file is empty (0 bytes), not a records database; delete it "
                              f"to start a new database there, or restore it from a copy")
    elif not create:
        raise FormatError(f"database {path}: no such file (nothing was created); check the path")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)


def database_error(url: str, exc: DatabaseError) -> Exception:
    """The nimble error for a driver error on ``url``: it names the file and what to do."""
    detail = str(getattr(exc, "orig", exc))
    if isinstance(exc, OperationalError) and "locked" in detail:
        return TuningError(f"database {url}: {detail}; another process holds it, retry later")
    return FormatError(f"database {url}: {detail}; it is not a readable nimble records database (restore it from "
                       f"a copy, or move it away to start a new one)")


def valid_record(row, key_json: str, url: str) -> TuningRecord | None:
    """The row as a record, or None (logged) when it is malformed or its config is not in its
    template's space: such a row is never anyone's best."""
    from .db import _to_record

    try:
        rec = _to_record(row, key_json)
    except (FormatError, ValueError, TypeError) as exc:
        log.warning("database %s: skipped malformed record %s: %s", url, row.id, exc)
        return None
    problem = config_problem(rec)
    if problem is not None:
        log.warning("database %s: skipped record %s of %s: %s", url, row.id, rec.workload.template, problem)
        return None
    return rec


def first_valid(rows, url: str) -> TuningRecord | None:
    for row, key_json in rows:
        rec = valid_record(row, key_json, url)
        if rec is not None:
            return rec
    return None
