"""The tuning records database (SQLAlchemy 2.0; SQLite by default, any SQLAlchemy URL for a team).

    db = Database()                                  # tuning_logs/llvm.db under the cwd
    db = Database("postgresql+psycopg://host/tuning")
    db.add_records(records)                          # one transaction, committed at once
    best = db.best_record(key, "n=33..64", "llvm")   # this host's best, or None

Tables: ``workloads`` (one row per workload key), ``records`` (one row per measurement,
deduplicated by the digest of its canonical JSON line) and ``schema_version``. A database
written by an older schema is upgraded through ``MIGRATIONS`` (version N -> N+1) when
opened; a newer or unknown one is a ``FormatError``.

SQLite databases run in WAL mode with a busy timeout, and write transactions begin with
``BEGIN IMMEDIATE``, so several processes can tune into one file at once. On SQLite and
PostgreSQL (``postgresql+psycopg://user@host/db``) records and workloads are inserted with
``INSERT ... ON CONFLICT DO NOTHING`` on their unique keys (record digest, workload hash), in
key order, so concurrent writers from many tuners and hosts neither lose nor duplicate a
record; a deadlock or serialization failure reported by the server is retried. Creating or
migrating the schema on PostgreSQL holds an advisory lock, so tuners may open an empty
database at once. Engines are created once per (process, URL) and shared by every
``Database`` on that URL.
"""
from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from sqlalchemy import Connection, Engine, ForeignKey, Index, String, Text, delete, exists
from sqlalchemy import func, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..errors import FormatError
from .buckets import BucketKey
from .db_engine import database_url, dispose_engine, dispose_engines, engine_for, is_transient, target_name  # noqa: F401 - re-exported
from .fingerprint import HostFingerprint, host_fingerprint
from .record_check import config_problem
from .db_checks import database_error as _database_error
from .db_checks import first_valid as _first_valid
from .db_checks import sqlite_file as _sqlite_file
from .db_checks import valid_record as _valid_record
from .records import ImportReport, MalformedLine, TuningRecord, read_jsonl, write_jsonl
from .workload import WorkloadKey

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
_BATCH = 500
_RETRIES = 5
_SCHEMA_LOCK = 0x6E696D626C65  # PostgreSQL advisory lock key held while creating or migrating the schema


class Base(DeclarativeBase):
    """Declarative base of the records database."""


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]


class Workload(Base):
    """One workload key (``WorkloadKey``), stored once and referenced by its records."""

    __tablename__ = "workloads"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    template: Mapped[str] = mapped_column(String(128), index=True)
    key_json: Mapped[str] = mapped_column(Text)


class Record(Base):
    """One measured config (a ``TuningRecord``); ``mean_cost`` is null for errors."""

    __tablename__ = "records"
    id: Mapped[int] = mapped_column(primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workloads.id"))
    bucket: Mapped[str] = mapped_column(String(512))
    target: Mapped[str] = mapped_column(String(256))
    host_id: Mapped[str] = mapped_column(String(16))
    host_json: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text)
    config_index: Mapped[int]
    costs_json: Mapped[str] = mapped_column(Text)
    mean_cost: Mapped[float | None]
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[str] = mapped_column(String(32))
    nimble_version: Mapped[str] = mapped_column(String(32))
    tuner: Mapped[str] = mapped_column(String(64))
    flops: Mapped[float | None]
    user_name: Mapped[str | None] = mapped_column(String(256))  # provenance: who measured it (schema 2)
    cache_mode: Mapped[str | None] = mapped_column(String(8))  # "cold" / "warm" / null: how it was measured (schema 3)
    digest: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_records_best", "workload_id", "bucket", "target", "host_id", "mean_cost"),)


def _add_user_column(conn: Connection) -> None:
    """Schema 1 -> 2: records gain ``user_name``, the ``user`` provenance field (null for old rows)."""
    conn.exec_driver_sql("ALTER TABLE records ADD COLUMN user_name VARCHAR(256)")


def _add_cache_column(conn: Connection) -> None:
    """Schema 2 -> 3: records gain ``cache_mode``, the ``cache`` field (null for old rows: unknown)."""
    conn.exec_driver_sql("ALTER TABLE records ADD COLUMN cache_mode VARCHAR(8)")


# MIGRATIONS[n] upgrades a database from schema version n to n + 1 inside one transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_user_column, 2: _add_cache_column}


@dataclass(frozen=True)
class BucketSummary:
    """Record counts of one (workload, target, bucket), for listings."""

    workload: WorkloadKey
    target: str
    bucket: str
    records: int
    errors: int
    best_cost: float | None


def _ensure_schema(writer: Engine, url: str) -> int:
    """Create the schema in an empty database or migrate an old one; returns the version."""
    with writer.begin() as conn:
        if conn.dialect.name == "postgresql":  # tuners opening one server database at once take turns
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        tables = set(inspect(conn).get_table_names())
        if "schema_version" not in tables:
            if tables & {"workloads", "records"}:
                raise FormatError(f"database {url}: expected a nimble records database, "
                                  f"got tables {sorted(tables)} without a schema_version table")
            Base.metadata.create_all(conn)
            conn.execute(SchemaVersion.__table__.insert().values(id=1, version=SCHEMA_VERSION))
            return SCHEMA_VERSION
        version = conn.execute(select(SchemaVersion.version).where(SchemaVersion.id == 1)).scalar()
        if version is None or version > SCHEMA_VERSION:
            raise FormatError(f"database {url}: expected schema version <= {SCHEMA_VERSION} "
                              f"(what this nimble reads), got {version}; upgrade nimble to read it")
        while version < SCHEMA_VERSION:
            migrate = MIGRATIONS.get(version)
            if migrate is None:
                raise FormatError(f"database {url}: schema version {version} has no migration to "
                                  f"{version + 1}; expected a version in {sorted(MIGRATIONS)} or {SCHEMA_VERSION}")
            log.info("migrating %s from schema version %d to %d", url, version, version + 1)
            migrate(conn)
            version += 1
            conn.execute(update(SchemaVersion).where(SchemaVersion.id == 1).values(version=version))
        return version


@functools.lru_cache(maxsize=4096)
def _workload_from_text(key_json: str) -> WorkloadKey:
    return WorkloadKey.from_json(key_json)


@functools.lru_cache(maxsize=256)
def _host_from_text(host_json: str) -> HostFingerprint:
    return HostFingerprint.from_json(json.loads(host_json))


def _to_record(row: Record, key_json: str) -> TuningRecord:
    return TuningRecord(
        workload=_workload_from_text(key_json), bucket=row.bucket, target=row.target,
        host=_host_from_text(row.host_json), config=json.loads(row.config_json),
        config_index=row.config_index, costs=json.loads(row.costs_json), error_kind=row.error_kind,
        error_message=row.error_message, timestamp=row.timestamp, nimble_version=row.nimble_version,
        tuner=row.tuner, flops=row.flops, user=row.user_name, cache=row.cache_mode,
    )


def _host_id(host: HostFingerprint | str) -> str:
    return host.id if isinstance(host, HostFingerprint) else host


_UPSERT = {"postgresql": postgresql_insert, "sqlite": sqlite_insert}

# Rank of a record among those of its (workload, bucket, target, host), cheapest first.
_RANK = func.row_number().over(partition_by=(Record.workload_id, Record.bucket, Record.target, Record.host_id),
                               order_by=(Record.mean_cost, Record.id)).label("rank")


class Database:
    """A records database at a SQLAlchemy URL or a SQLite file path (default ``tuning_logs/<target>.db``).

    ``create=False`` opens an existing database only (a missing SQLite file is a FormatError, never
    created); an empty (0-byte) file is always refused.
    """

    def __init__(self, url_or_path: str | os.PathLike | None = None, target: str = "llvm", create: bool = True) -> None:
        self.url = database_url(url_or_path, target)
        _sqlite_file(self.url, create)
        self.engine = engine_for(self.url)
        self._writer = self.engine.execution_options(nimble_write=True)
        try:
            self.schema_version = _ensure_schema(self._writer, self.url)
        except DatabaseError as exc:
            raise _database_error(self.url, exc) from None

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session inside one transaction, committed on success; ``write`` takes the write lock."""
        try:
            with Session(self._writer if write else self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except IntegrityError:
            raise  # a concurrent duplicate: add_records retries
        except DatabaseError as exc:
            if is_transient(exc):
                raise  # a deadlock or serialization failure: the caller retries
            raise _database_error(self.url, exc) from None

    # -- writing -------------------------------------------------------------------------------
    def add_record(self, record: TuningRecord) -> bool:
        """Store one record and commit; False if it was already there."""
        return self.add_records([record]) == 1

    def add_records(self, records: Iterable[TuningRecord]) -> int:
        """Store records in one committed transaction, skipping duplicates; returns how many were new."""
        batch = sorted({r.digest: r for r in records}.values(), key=lambda r: r.digest)  # one lock order for all writers
        for attempt in range(_RETRIES):
            try:
                with self.session(write=True) as session:
                    return self._insert(session, batch)
            except IntegrityError:  # another writer inserted the same row first (dialects without ON CONFLICT)
                if attempt == _RETRIES - 1:
                    raise
            except DBAPIError as exc:
                if not is_transient(exc) or attempt == _RETRIES - 1:
                    raise
                log.info("%s: retrying a write after %s", self.url, type(exc.orig).__name__)
                time.sleep(0.05 * (attempt + 1))
        return 0

    def _insert(self, session: Session, batch: list[TuningRecord]) -> int:
        if session.bind.dialect.name in _UPSERT:
            return self._upsert(session, batch)
        added = 0
        for start in range(0, len(batch), _BATCH):
            chunk = batch[start:start + _BATCH]
            known = set(session.scalars(select(Record.digest).where(Record.digest.in_([r.digest for r in chunk]))))
            fresh = [r for r in chunk if r.digest not in known]
            hashes = {r.workload.hash: r.workload for r in fresh}
            ids = {h: i for h, i in session.execute(select(Workload.key_hash, Workload.id).where(Workload.key_hash.in_(hashes)))}
            for key_hash, key in hashes.items():
                if key_hash not in ids:
                    row = Workload(key_hash=key_hash, template=key.template, key_json=key.canonical)
                    session.add(row)
                    session.flush()
                    ids[key_hash] = row.id
            session.add_all(self._row(r, ids[r.workload.hash]) for r in fresh)
            added += len(fresh)
        return added

    @staticmethod
    def _upsert(session: Session, batch: list[TuningRecord]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING of workloads, then records; counts the records inserted."""
        insert = _UPSERT[session.bind.dialect.name]
        conn = session.connection()
        added = 0
        for start in range(0, len(batch), _BATCH):
            chunk = batch[start:start + _BATCH]
            keys = sorted({r.workload.hash: r.workload for r in chunk}.items())
            conn.execute(insert(Workload.__table__).on_conflict_do_nothing(index_elements=["key_hash"]),
                         [dict(key_hash=h, template=k.template, key_json=k.canonical) for h, k in keys])
            ids = dict(conn.execute(select(Workload.key_hash, Workload.id).where(Workload.key_hash.in_([h for h, _ in keys]))).all())
            rows = [Database._columns(r, ids[r.workload.hash]) for r in chunk]
            stmt = insert(Record.__table__).on_conflict_do_nothing(index_elements=["digest"]).returning(Record.id)
            added += len(conn.execute(stmt, rows).all())
        return added

    @staticmethod
    def _columns(r: TuningRecord, workload_id: int) -> dict:
        return dict(
            workload_id=workload_id, bucket=r.bucket, target=r.target, host_id=r.host.id,
            host_json=json.dumps(r.host.to_json(), sort_keys=True), config_json=json.dumps(dict(r.config), sort_keys=True),
            config_index=r.config_index, costs_json=json.dumps(list(r.costs)), mean_cost=r.mean_cost,
            error_kind=r.error_kind, error_message=r.error_message, timestamp=r.timestamp,
            nimble_version=r.nimble_version, tuner=r.tuner, flops=r.flops, user_name=r.user, cache_mode=r.cache,
            digest=r.digest,
        )

    @staticmethod
    def _row(r: TuningRecord, workload_id: int) -> Record:
        return Record(**Database._columns(r, workload_id))

    # -- reading -------------------------------------------------------------------------------
    @staticmethod
    def _select(workload: WorkloadKey | str | None = None, bucket: BucketKey | str | None = None,
                target: str | None = None, host: HostFingerprint | str | None = None,
                template: str | None = None, include_errors: bool = True):
        query = select(Record, Workload.key_json).join(Workload, Record.workload_id == Workload.id)
        if workload is not None:
            key_hash = workload.hash if isinstance(workload, WorkloadKey) else workload
            query = query.where(Workload.key_hash == key_hash)
        if bucket is not None:
            query = query.where(Record.bucket == str(BucketKey.parse(str(bucket))))
        if target is not None:
            query = query.where(Record.target == target)
        if host is not None:
            query = query.where(Record.host_id == _host_id(host))
        if template is not None:
            query = query.where(Workload.template == template)
        if not include_errors:
            query = query.where(Record.error_kind.is_(None))
        return query

    def iter_records(self, **filters) -> Iterator[TuningRecord]:
        """Records matching ``filters`` (see ``records``), oldest first, read in pages."""
        with self.session() as session:
            query = self._select(**filters).order_by(Record.timestamp, Record.id)
            for row, key_json in session.execute(query.execution_options(yield_per=1000)):
                rec = _valid_record(row, key_json, self.url)
                if rec is not None:
                    yield rec

    def records(self, workload: WorkloadKey | str | None = None, bucket: BucketKey | str | None = None,
                target: str | None = None, host: HostFingerprint | str | None = None,
                template: str | None = None, include_errors: bool = True) -> list[TuningRecord]:
        """Records oldest first; each filter left as None matches everything (``host``: any host)."""
        return list(self.iter_records(workload=workload, bucket=bucket, target=target, host=host,
                                      template=template, include_errors=include_errors))

    def count(self) -> int:
        """How many records the database holds."""
        with self.session() as session:
            return session.scalar(select(func.count()).select_from(Record))

    def best_record(self, workload: WorkloadKey | str, bucket: BucketKey | str, target: str,
                    fingerprint: HostFingerprint | str | None = None, accept_foreign: bool = False) -> TuningRecord | None:
        """The lowest-mean-cost successful record of (workload, bucket, target) on ``fingerprint``.

        ``fingerprint`` defaults to this host (``host_fingerprint(target)``). Records of other
        hosts are used only with ``accept_foreign=True`` and only when this host has none.
        """
        host = fingerprint if fingerprint is not None else host_fingerprint(target)
        query = self._select(workload, bucket, target, include_errors=False).order_by(Record.mean_cost, Record.id)
        with self.session() as session:
            found = _first_valid(session.execute(query.where(Record.host_id == _host_id(host))), self.url)
            if found is None and accept_foreign:
                found = _first_valid(session.execute(query), self.url)
            return found

    def best_records(self, target: str | None = None, host: HostFingerprint | str | None = None) -> list[TuningRecord]:
        """The best successful record of every (workload, bucket, target, host)."""
        ranked = self._select(target=target, host=host, include_errors=False).add_columns(_RANK).subquery()
        best = select(ranked.c.id).where(ranked.c.rank == 1)
        with self.session() as session:
            query = self._select().where(Record.id.in_(best)).order_by(Workload.template, Workload.key_hash, Record.bucket)
            return [r for r in (_valid_record(row, key_json, self.url) for row, key_json in session.execute(query))
                    if r is not None]

    def measured_configs(self, workload: WorkloadKey | str, bucket: BucketKey | str, target: str,
                         fingerprint: HostFingerprint | str | None = None) -> frozenset[int]:
        """Config indices already measured (errors included) on ``fingerprint`` (default: this host)."""
        host = fingerprint if fingerprint is not None else host_fingerprint(target)
        query = self._select(workload, bucket, target, host).with_only_columns(Record.config_index)
        with self.session() as session:
            return frozenset(session.scalars(query))

    def workloads(self) -> list[WorkloadKey]:
        """Every stored workload key, by template then hash."""
        with self.session() as session:
            texts = session.scalars(select(Workload.key_json).order_by(Workload.template, Workload.key_hash))
            return [_workload_from_text(t) for t in texts]

    def summary(self) -> list[BucketSummary]:
        """Record and error counts and the best cost of every (workload, target, bucket)."""
        errors = func.count(Record.error_kind)
        query = (select(Workload.key_json, Record.target, Record.bucket, func.count(Record.id), errors, func.min(Record.mean_cost))
                 .join(Workload, Record.workload_id == Workload.id)
                 .group_by(Workload.id, Workload.key_json, Workload.template, Record.target, Record.bucket)
                 .order_by(Workload.template, Workload.key_json, Record.target, Record.bucket))
        with self.session() as session:
            return [BucketSummary(_workload_from_text(k), t, b, n, e, best) for k, t, b, n, e, best in session.execute(query)]

    # -- moving records ------------------------------------------------------------------------
    def export_jsonl(self, path_or_file: str | os.PathLike | IO[str], **filters) -> int:
        """Write matching records (filters as in ``records``) as JSON Lines; returns how many."""
        if hasattr(path_or_file, "write"):
            return write_jsonl(self.iter_records(**filters), path_or_file)
        with open(path_or_file, "w", encoding="utf-8") as stream:
            return write_jsonl(self.iter_records(**filters), stream)

    def import_jsonl(self, path_or_file: str | os.PathLike | IO[str]) -> ImportReport:
        """Add the records of a JSON Lines file; malformed lines and duplicates are skipped and reported."""
        if not hasattr(path_or_file, "read"):
            try:
                with open(path_or_file, encoding="utf-8") as stream:
                    return self.import_jsonl(stream)
            except UnicodeDecodeError as exc:
                raise FormatError(f"{path_or_file}: not a JSON Lines file of records (not UTF-8 text: {exc})") from None
        name, report = getattr(path_or_file, "name", "<stream>"), ImportReport()

        def valid_records() -> Iterator[TuningRecord]:
            for number, item in read_jsonl(path_or_file):
                problem = None if isinstance(item, MalformedLine) else config_problem(item)
                if problem is not None:
                    item = MalformedLine(number, problem)
                if isinstance(item, MalformedLine):
                    log.warning("%s: skipped %s", name, item)
                    report.malformed.append(item)
                else:
                    yield item

        return self._add_in_batches(valid_records(), report)

    def merge(self, other: Database | str | os.PathLike) -> ImportReport:
        """Add every record of ``other`` (a Database, URL or path) that this database lacks."""
        source = other if isinstance(other, Database) else Database(other)
        return self._add_in_batches(source.iter_records(), ImportReport())

    def _add_in_batches(self, records: Iterable[TuningRecord], report: ImportReport) -> ImportReport:
        iterator = iter(records)
        while batch := list(itertools.islice(iterator, 2000)):
            added = self.add_records(batch)
            report.added += added
            report.duplicates += len(batch) - added
        return report

    def prune(self, keep_top_k: int, drop_errors: bool = True) -> int:
        """Keep the ``keep_top_k`` cheapest successful records per (workload, bucket, target, host).

        Error records are dropped too unless ``drop_errors`` is False; workloads left without
        records are removed. Returns how many records were deleted. A pruned config may be
        measured again by a resumed tuning (``measured_configs`` no longer lists it).
        """
        if isinstance(keep_top_k, bool) or not isinstance(keep_top_k, int) or keep_top_k < 1:
            raise FormatError(f"keep_top_k: expected an int >= 1, got {keep_top_k!r}")
        ranked = select(Record.id, _RANK).where(Record.error_kind.is_(None)).subquery()
        doomed = select(ranked.c.id).where(ranked.c.rank > keep_top_k)
        sync = {"synchronize_session": False}
        with self.session(write=True) as session:
            removed = session.execute(delete(Record).where(Record.id.in_(doomed)).execution_options(**sync)).rowcount
            if drop_errors:
                errors = delete(Record).where(Record.error_kind.is_not(None)).execution_options(**sync)
                removed += session.execute(errors).rowcount
            orphan = ~exists().where(Record.workload_id == Workload.id)
            session.execute(delete(Workload).where(orphan).execution_options(**sync))
        return removed
