import io
import logging
import sqlite3
from dataclasses import replace

import pytest

import nimble.tuner.db as dbmod
from server_db import BACKENDS, backend_url
from nimble.errors import FormatError
from nimble.tuner.db import Database, database_url
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.record_check import _space_of
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2", "fma"), 4, 4, "llvm")
FOREIGN = HostFingerprint("Other CPU", "OtherVendor", ("neon",), 8, 8, "llvm")
DENSE = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")
SOFTMAX = WorkloadKey("softmax", [(("n", 128), "float32")], "llvm")


def config_of(key: WorkloadKey, index: int) -> dict:
    """Config ``index`` of the key's template space (records are checked against it)."""
    return _space_of(key.canonical).get(index).to_json()


def make(index: int, cost: float | None, *, key=DENSE, bucket="n=33..64", host=HOST, error=None,
         target="llvm") -> TuningRecord:
    return TuningRecord(
        workload=key, bucket=bucket, target=target, host=host, config=config_of(key, index), config_index=index,
        costs=[] if cost is None else [cost, cost], error_kind=error, error_message="boom" if error else "",
        timestamp=f"2026-11-28T10:00:00.{index:06d}Z", tuner="test",
    )


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    with backend_url(request.param, tmp_path) as url:
        yield Database(url)


def test_best_record_is_cheapest_success(db):
    db.add_records([make(0, 3e-3), make(1, 1e-3), make(2, None, error="build"), make(3, 2e-3)])
    best = db.best_record(DENSE, "n=33..64", "llvm", HOST)
    assert best == make(1, 1e-3)
    assert db.best_record(DENSE, "n=1..8", "llvm", HOST) is None
    assert db.best_record(DENSE, "n=33..64", "cuda", HOST) is None
    assert db.best_record(DENSE.hash, "n=33..64", "llvm", HOST.id) == best


def test_add_record_commits_and_skips_duplicates(db):
    assert db.add_record(make(0, 1e-3)) is True
    assert db.add_record(make(0, 1e-3)) is False
    assert db.add_records([make(1, 1e-3), make(1, 1e-3), make(2, 1e-3)]) == 2
    assert Database(db.url).count() == 3


def test_best_record_uses_foreign_hosts_only_when_accepted(db):
    db.add_record(make(0, 1e-4, host=FOREIGN))
    assert db.best_record(DENSE, "n=33..64", "llvm", HOST) is None
    assert db.best_record(DENSE, "n=33..64", "llvm", HOST, accept_foreign=True).host == FOREIGN
    db.add_record(make(1, 5e-3, host=HOST))  # own record, slower, still preferred
    assert db.best_record(DENSE, "n=33..64", "llvm", HOST, accept_foreign=True).host == HOST
    assert db.best_record(DENSE, "n=33..64", "llvm", FOREIGN).host == FOREIGN


def test_best_record_defaults_to_this_host(db, nimble_env):
    from nimble.tuner.fingerprint import host_fingerprint

    nimble_env(NIMBLE_NUM_THREADS="1")
    here = host_fingerprint("llvm")
    db.add_records([make(0, 1e-3, host=here), make(1, 1e-4, host=FOREIGN)])
    assert db.best_record(DENSE, "n=33..64", "llvm").host == here
    assert db.measured_configs(DENSE, "n=33..64", "llvm") == {0}


def test_measured_configs_include_errors_and_are_per_bucket_and_host(db):
    db.add_records([make(0, 1e-3), make(1, None, error="timeout"), make(2, 1e-3, bucket="n=1..8"),
                    make(3, 1e-3, host=FOREIGN)])
    assert db.measured_configs(DENSE, "n=33..64", "llvm", HOST) == {0, 1}
    assert db.measured_configs(DENSE, "n=1..8", "llvm", HOST) == {2}
    assert db.measured_configs(DENSE, "n=33..64", "llvm", FOREIGN) == {3}


def test_records_filters(db):
    db.add_records([make(0, 1e-3), make(1, None, error="crash"), make(2, 1e-3, key=SOFTMAX, bucket="n=65..128"),
                    make(3, 1e-3, target="llvm -mcpu=znver4")])
    assert [r.config_index for r in db.records()] == [0, 1, 2, 3]
    assert [r.config_index for r in db.records(template="softmax")] == [2]
    assert [r.config_index for r in db.records(workload=DENSE, include_errors=False)] == [0, 3]
    assert [r.config_index for r in db.records(target="llvm -mcpu=znver4")] == [3]
    assert [r.config_index for r in db.records(bucket="n=65..128")] == [2]
    assert db.records(host=FOREIGN) == []
    assert db.workloads() == [DENSE, SOFTMAX]


def test_default_location_and_sqlite_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = Database(target="llvm -mcpu=znver4")
    assert (tmp_path / "tuning_logs" / "llvm.db").is_file()
    assert db.url == f"sqlite:///{tmp_path / 'tuning_logs' / 'llvm.db'}"
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    assert Database(db.url).engine is db.engine  # one engine per URL


def test_url_and_path_name_the_same_database(tmp_path):
    Database(tmp_path / "a.db").add_record(make(0, 1e-3))
    assert Database(f"sqlite:///{tmp_path / 'a.db'}").count() == 1
    with pytest.raises(FormatError, match="url_or_path"):
        database_url("no-such-driver://")
    with pytest.raises(FormatError, match="url_or_path"):
        database_url(42)


def test_jsonl_round_trip_gives_the_same_best_record(db, tmp_path):
    db.add_records([make(i, (i + 1) * 1e-3) for i in range(5)] + [make(9, None, error="wrong_result")])
    path = tmp_path / "out.jsonl"
    assert db.export_jsonl(path) == 6
    other = Database(tmp_path / "other.db")
    report = other.import_jsonl(path)
    assert (report.added, report.duplicates, report.malformed) == (6, 0, [])
    assert other.best_record(DENSE, "n=33..64", "llvm", HOST) == db.best_record(DENSE, "n=33..64", "llvm", HOST)
    assert other.records() == db.records()
    assert other.import_jsonl(path).duplicates == 6 and other.count() == 6


def test_export_filters_and_streams(db):
    db.add_records([make(0, 1e-3), make(1, None, error="build"), make(2, 1e-3, key=SOFTMAX, bucket="n=1..8")])
    out = io.StringIO()
    assert db.export_jsonl(out, template="dense", include_errors=False) == 1
    assert TuningRecord.from_line(out.getvalue().strip()) == make(0, 1e-3)


def test_malformed_lines_reported_with_line_numbers_and_skipped(db, tmp_path, caplog):
    db.add_record(make(100, 1e-3))
    good = [make(i, 1e-3).to_line() for i in range(3)]
    missing_field = make(5, 1e-3).to_line().replace('"config_index":5,', "")
    wrong_version = make(6, 1e-3).to_line().replace('"version":1', '"version":7')
    lines = [good[0], "{not json", good[1], missing_field, wrong_version, "", good[2]]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = db.records()
    with caplog.at_level(logging.WARNING, logger="nimble.tuner.db"):
        report = db.import_jsonl(path)
    assert [m.line_number for m in report.malformed] == [2, 4, 5]
    assert "invalid JSON" in report.malformed[0].message
    assert "config_index" in report.malformed[1].message
    assert "'version'" in report.malformed[2].message
    assert report.added == 3 and report.duplicates == 0
    expected = before + [make(i, 1e-3) for i in range(3)]
    assert sorted(r.digest for r in db.records()) == sorted(r.digest for r in expected)
    assert "line 2" in caplog.text and "line 4" in caplog.text and "line 5" in caplog.text


def test_merge_between_two_databases(tmp_path):
    a, b = Database(tmp_path / "a.db"), Database(tmp_path / "b.db")
    a.add_records([make(i, 1e-3 * (i + 1)) for i in range(3)])
    b.add_records([make(i, 1e-3 * (i + 1)) for i in range(2, 5)] + [make(7, 1e-4, key=SOFTMAX, bucket="n=1")])
    report = b.merge(a)
    assert (report.added, report.duplicates) == (2, 1)
    assert b.count() == 6 and b.merge(tmp_path / "a.db").added == 0
    assert {r.digest for r in a.records()} <= {r.digest for r in b.records()}
    assert b.best_record(DENSE, "n=33..64", "llvm", HOST) == make(0, 1e-3)
    a.merge(b)
    assert sorted(r.digest for r in a.records()) == sorted(r.digest for r in b.records())


def test_prune_keeps_top_k_per_group_and_drops_errors(db):
    db.add_records([make(i, 1e-3 * (5 - i)) for i in range(5)])
    db.add_records([make(10 + i, 1e-3 * (i + 1), bucket="n=1..8") for i in range(4)])
    db.add_records([make(20 + i, 1e-3 * (i + 1), host=FOREIGN) for i in range(3)])
    db.add_records([make(30, None, error="crash"), make(31, 1e-3, key=SOFTMAX, bucket="n=1", error="runtime")])
    best_before = db.best_record(DENSE, "n=33..64", "llvm", HOST)
    assert db.prune(2, drop_errors=False) == (5 - 2) + (4 - 2) + (3 - 2)
    assert db.count() == 2 + 2 + 2 + 2
    assert db.best_record(DENSE, "n=33..64", "llvm", HOST) == best_before
    assert db.measured_configs(DENSE, "n=33..64", "llvm", HOST) == {3, 4, 30}
    assert db.prune(2) == 2  # now the errors
    assert db.count() == 6 and SOFTMAX not in db.workloads()
    with pytest.raises(FormatError, match="keep_top_k: expected an int >= 1, got 0"):
        db.prune(0)


def test_summary_counts_records_errors_and_best(db):
    db.add_records([make(0, 2e-3), make(1, 1e-3), make(2, None, error="build"), make(3, 1e-3, bucket="n=1")])
    rows = {(s.workload.template, s.bucket): s for s in db.summary()}
    assert (rows["dense", "n=33..64"].records, rows["dense", "n=33..64"].errors) == (3, 1)
    assert rows["dense", "n=33..64"].best_cost == pytest.approx(1e-3)
    assert rows["dense", "n=1"].records == 1
    assert [r.config_index for r in db.best_records()] == [3, 1]


def _set_version(path, version):
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (version,))


def test_newer_schema_version_is_a_clear_format_error(tmp_path):
    Database(tmp_path / "new.db")
    _set_version(tmp_path / "new.db", 5)
    with pytest.raises(FormatError, match="expected schema version <= 3.*got 5.*upgrade nimble"):
        Database(tmp_path / "new.db")


def test_old_schema_without_migration_is_a_clear_format_error(tmp_path):
    Database(tmp_path / "old.db")
    _set_version(tmp_path / "old.db", 0)
    with pytest.raises(FormatError, match="schema version 0 has no migration to 1"):
        Database(tmp_path / "old.db")


def test_migration_from_a_faked_older_version(tmp_path, monkeypatch):
    path = tmp_path / "v0.db"
    Database(path).add_record(make(0, 1e-3))
    with sqlite3.connect(path) as conn:  # fake version 0: records had no flops column (nor version 2's user_name)
        conn.execute("ALTER TABLE records DROP COLUMN flops")
        conn.execute("ALTER TABLE records DROP COLUMN user_name")
        conn.execute("ALTER TABLE records DROP COLUMN cache_mode")
        conn.execute("UPDATE schema_version SET version = 0")
    calls = []

    def add_flops(conn):
        calls.append(1)
        conn.exec_driver_sql("ALTER TABLE records ADD COLUMN flops FLOAT")

    monkeypatch.setitem(dbmod.MIGRATIONS, 0, add_flops)
    migrated = Database(path)
    assert calls == [1] and migrated.schema_version == 3
    assert migrated.records() == [make(0, 1e-3)]
    Database(path)  # already at version 3: no second migration
    assert calls == [1]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (3,)


def test_foreign_database_is_refused(tmp_path):
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE records (x INTEGER)")
    with pytest.raises(FormatError, match="without a schema_version table"):
        Database(path)


def test_add_records_retries_after_a_concurrent_duplicate(db, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    real_insert, calls = Database._insert, []

    def racing_insert(self, session, batch):
        calls.append(len(batch))
        if len(calls) == 1:  # as if another writer committed the same digest first
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: records.digest"))
        return real_insert(self, session, batch)

    monkeypatch.setattr(Database, "_insert", racing_insert)
    assert db.add_records([make(0, 1e-3), make(1, 1e-3)]) == 2
    assert calls == [2, 2] and db.count() == 2


def test_dispose_engines_closes_them_and_databases_reopen(db):
    db.add_record(make(0, 1e-3))
    dbmod.dispose_engines()
    reopened = Database(db.url)
    assert reopened.engine is not db.engine and reopened.count() == 1


def test_schema_1_databases_gain_the_user_column_and_keep_their_records(tmp_path):
    path = tmp_path / "v1.db"
    Database(path).add_record(make(0, 1e-3))
    dbmod.dispose_engines()
    with sqlite3.connect(path) as conn:  # what schema version 1 wrote
        conn.execute("ALTER TABLE records DROP COLUMN user_name")
        conn.execute("ALTER TABLE records DROP COLUMN cache_mode")
        conn.execute("UPDATE schema_version SET version = 1")
    migrated = Database(path)
    assert migrated.schema_version == 3 and migrated.records() == [make(0, 1e-3)]
    migrated.add_record(replace(make(1, 1e-3), user="ana@host3"))
    assert [r.user for r in migrated.records()] == [None, "ana@host3"]


def test_provenance_is_kept_by_the_database_and_jsonl(db, tmp_path):
    record = replace(make(0, 1e-3), user="ana@host3", nimble_version="0.1.0")
    db.add_record(record)
    [back] = db.records()
    assert back == record and back.user == "ana@host3" and back.host == HOST and back.timestamp == record.timestamp
    assert db.add_record(back) is False  # same identity: not stored twice
    db.export_jsonl(tmp_path / "out.jsonl")
    assert '"user":"ana@host3"' in (tmp_path / "out.jsonl").read_text()


def test_merge_between_a_server_database_and_a_sqlite_file_both_ways(tmp_path):
    with backend_url("postgresql", tmp_path) as url:
        team, mine = Database(url), Database(tmp_path / "mine.db")
        team.add_records([make(i, 1e-3 * (i + 1), host=FOREIGN) for i in range(3)])
        mine.add_records([make(i, 1e-3 * (i + 1)) for i in range(2, 6)])
        assert mine.merge(team).added == 3
        report = team.merge(mine.url)
        assert (report.added, report.duplicates) == (4, 3)
        assert team.count() == mine.count() == 7
        assert {r.digest for r in team.records()} == {r.digest for r in mine.records()}
        assert team.best_record(DENSE, "n=33..64", "llvm", HOST) == make(2, 3e-3)


def test_concurrent_duplicates_are_stored_once(db):
    from concurrent.futures import ThreadPoolExecutor

    records = [make(i, 1e-3) for i in range(40)]
    with ThreadPoolExecutor(4) as pool:
        added = list(pool.map(lambda k: Database(db.url).add_records(records[k * 5:] + records[:k * 5]), range(4)))
    assert sum(added) == 40 and db.count() == 40


def test_memory_path_is_an_in_memory_database_not_a_file(tmp_path, monkeypatch):
    from nimble.tuner.db import Database

    monkeypatch.chdir(tmp_path)
    db = Database(":memory:")
    assert db.url == "sqlite:///:memory:"
    assert list(tmp_path.iterdir()) == []


def test_schema_2_databases_gain_the_cache_column_and_keep_their_records(tmp_path):
    path = tmp_path / "v2.db"
    Database(path).add_record(replace(make(0, 1e-3), user="ana@host3"))
    dbmod.dispose_engines()
    with sqlite3.connect(path) as conn:  # what schema version 2 wrote
        conn.execute("ALTER TABLE records DROP COLUMN cache_mode")
        conn.execute("UPDATE schema_version SET version = 2")
    migrated = Database(path)
    assert migrated.schema_version == 3
    assert [(r.user, r.cache) for r in migrated.records()] == [("ana@host3", None)]
    migrated.add_record(replace(make(1, 1e-3), cache="cold"))
    assert [r.cache for r in migrated.records()] == [None, "cold"]


def test_cache_mode_is_kept_by_the_database_and_jsonl_and_part_of_identity(db, tmp_path):
    cold, warm = replace(make(0, 1e-3), cache="cold"), replace(make(0, 1e-3), cache="warm")
    assert db.add_records([cold, warm, make(0, 1e-3)]) == 3  # three measurements, three records
    assert sorted(str(r.cache) for r in db.records()) == ["None", "cold", "warm"]
    db.export_jsonl(tmp_path / "out.jsonl")
    text = (tmp_path / "out.jsonl").read_text()
    assert text.count('"cache":"cold"') == 1 and text.count('"cache":"warm"') == 1
    assert '"cache"' not in make(0, 1e-3).to_line()  # records without the field keep their digest


def test_an_unknown_cache_mode_is_a_format_error_naming_the_field():
    with pytest.raises(FormatError, match="cache"):
        replace(make(0, 1e-3), cache="lukewarm")
    obj = {**make(0, 1e-3).to_json(), "cache": 3}
    with pytest.raises(FormatError, match="cache"):
        TuningRecord.from_json(obj)
