"""Records are checked against their template's space on import and on read; database files that
are damaged, empty or missing give errors that name them."""
import io
import json

import pytest

from nimble.errors import FormatError
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.record_check import _space_of, config_problem
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2", "fma"), 4, 4, "llvm")
DENSE = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")


def make(index, cost, config=None, key=DENSE):
    config = config if config is not None else _space_of(key.canonical).get(index).to_json()
    return TuningRecord(key, "n=33..64", "llvm", HOST, config, index, [cost, cost],
                        timestamp=f"2026-11-28T10:00:00.{index:06d}Z", tuner="test")


def test_a_config_outside_the_space_is_a_problem_and_a_real_one_is_not():
    assert config_problem(make(3, 1e-3)) is None
    assert "not in the space" in config_problem(make(3, 1e-3, config={"tile": 999}))
    assert "outside the space" in config_problem(make(10**9, 1e-3, config={"tile": 1}))


def test_a_record_means_its_knob_values_whatever_its_index():
    """A knob that gains values renumbers the configs after it; the record's JSON is what it means."""
    space = _space_of(DENSE.canonical)
    config = space.get(3)
    assert config_problem(make(5, 1e-3, config=config.to_json())) is None
    assert space.recorded(5, config.to_json()) == config


def test_an_unregistered_template_cannot_be_checked_and_passes():
    key = WorkloadKey("no_such_template", [(("n",), "float32")], "llvm")
    assert config_problem(make(0, 1e-3, config={"x": 1}, key=key)) is None


def test_import_skips_a_record_outside_its_space_as_malformed(tmp_path):
    lines = [make(1, 2e-3).to_line(), make(2, 1e-9, config={"tile_rows": 10**6}).to_line()]
    report = Database(tmp_path / "t.db").import_jsonl(io.StringIO("\n".join(lines) + "\n"))
    assert report.added == 1 and len(report.malformed) == 1
    assert "line 2" in str(report.malformed[0]) and "not in the space" in str(report.malformed[0])


def test_best_record_is_the_best_valid_one_when_an_invalid_one_is_cheaper(tmp_path):
    db = Database(tmp_path / "t.db")
    db.add_records([make(1, 2e-3), make(2, 3e-3), make(4, 1e-9, config={"tile_rows": 123})])
    best = db.best_record(DENSE, "n=33..64", "llvm", HOST)
    assert best.config_index == 1
    assert all(r.config_index != 4 for r in db.records())
    assert [r.config_index for r in db.best_records()] in ([1], [])  # the invalid rank-1 row is never shown


def test_a_corrupted_sqlite_file_names_the_file(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(FormatError, match=r"bad\.db.*not a readable nimble records database"):
        Database(path).count()


def test_an_empty_file_is_not_taken_as_a_new_database(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(FormatError, match=r"empty\.db.*empty \(0 bytes\)"):
        Database(path)
    assert path.stat().st_size == 0


def test_create_false_never_creates_a_missing_file_or_its_folder(tmp_path):
    path = tmp_path / "typo" / "recrods.db"
    with pytest.raises(FormatError, match="no such file"):
        Database(path, create=False)
    assert not path.parent.exists()


def test_a_binary_jsonl_file_is_a_format_error_naming_it(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(FormatError, match="records.jsonl"):
        Database(tmp_path / "t.db").import_jsonl(path)


@pytest.mark.parametrize("line", ["[" * 50000, json.dumps({"format": "nimble-record", "version": 1, "x": [1] * 3}),
                                  "1e999", '"str"', "null"])
def test_odd_json_lines_are_malformed_lines(tmp_path, line):
    report = Database(tmp_path / "t.db").import_jsonl(io.StringIO(line + "\n"))
    assert report.added == 0 and len(report.malformed) == 1
