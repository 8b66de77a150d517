"""Database URLs for the records-database tests: a SQLite file, and a fresh database on the
PostgreSQL server named by ``NIMBLE_TEST_POSTGRES_URL`` (``.ci/run`` starts one and sets it).

Outside CI a missing server (or psycopg) skips the PostgreSQL cases; in CI (``CI`` set) it fails them.
"""
import os
import uuid
from contextlib import contextmanager

import pytest

POSTGRES_ENV = "NIMBLE_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def missing(what: str) -> None:
    """Skip the calling test for lack of ``what`` (a server, a package); in CI, fail it instead."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must provide {what}; .ci/run installs and starts it")
    pytest.skip(f"needs {what}")


@contextmanager
def fresh_postgres_database():
    """A new, empty database on the test server (dropped afterwards); yields its SQLAlchemy URL."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        missing(f"a PostgreSQL server URL in {POSTGRES_ENV}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg (pip install -e '.[distributed]')")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from nimble.tuner.db import dispose_engines

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"nimble_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@contextmanager
def backend_url(backend: str, tmp_path):
    """A URL of an empty records database on ``backend`` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url
