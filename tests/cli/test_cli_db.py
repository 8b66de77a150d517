import json
import math
import sys

import pytest

from nimble.cli.db import best_so_far_curves, main
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.record_check import _space_of
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2", "fma"), 4, 4, "llvm")
DENSE = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")
SOFTMAX = WorkloadKey("softmax", [(("n", 128), "float32")], "llvm")


def make(index, cost, *, key=DENSE, bucket="n=33..64", error=None, flops=None):
    return TuningRecord(key, bucket, "llvm", HOST, _space_of(key.canonical).get(index).to_json(), index, [] if cost is None else [cost],
                        error_kind=error, timestamp=f"2026-11-28T10:00:00.{index:06d}Z", tuner="test", flops=flops)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "t.db"
    Database(path).add_records([
        make(0, 4e-3, flops=8e6), make(1, 2e-3, flops=8e6), make(2, None, error="build"), make(3, 3e-3, flops=8e6),
        make(4, 1e-3, key=SOFTMAX, bucket="n=1..8"),
    ])
    return str(path)


def test_list_shows_workloads_and_counts_per_bucket(db_path, capsys):
    assert main(["--db", db_path, "list"]) == 0
    out = capsys.readouterr().out
    dense_line = next(line for line in out.splitlines() if "dense" in line)
    assert "n=33..64" in dense_line and "2 ms" in dense_line and dense_line.split()[-4:-2] == ["4", "1"]
    assert "softmax" in out and "2 workloads, 5 records" in out
    assert main(["--db", db_path, "list", "--template", "softmax"]) == 0
    assert "dense" not in capsys.readouterr().out


def test_best_shows_best_config_per_bucket(db_path, capsys):
    assert main(["--db", db_path, "best"]) == 0
    out = capsys.readouterr().out
    dense_line = next(line for line in out.splitlines() if "dense" in line)
    assert '"tile_rows": 2' in dense_line and "2 ms" in dense_line and "4.00" in dense_line  # 8e6 / 2e-3 s
    assert HOST.id in dense_line
    assert main(["--db", db_path, "best", "--host", "0123456789abcdef"]) == 0
    assert "dense" not in capsys.readouterr().out


def test_export_then_import_into_a_new_database(db_path, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert main(["--db", db_path, "export", str(out), "--template", "dense", "--no-errors"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["format"] == "nimble-record" for line in lines)
    new_db = str(tmp_path / "new.db")
    assert main(["--db", new_db, "import", str(out)]) == 0
    assert "3 added, 0 duplicates, 0 malformed" in capsys.readouterr().out
    assert Database(new_db).best_record(DENSE, "n=33..64", "llvm", HOST) == make(1, 2e-3, flops=8e6)


def test_export_to_stdout_by_workload_prefix(db_path, capsys):
    assert main(["--db", db_path, "export", "-", "--workload", SOFTMAX.hash[:8]]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["workload"]["template"] for line in captured.out.splitlines()] == ["softmax"]
    assert "exported 1 records" in captured.err


def test_import_reports_malformed_lines_and_exits_1(db_path, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(make(7, 1e-3).to_line() + "\n{oops\n" + make(8, 1e-3).to_line().replace('"version":1', '"version":2') + "\n")
    assert main(["--db", db_path, "import", str(path)]) == 1
    captured = capsys.readouterr()
    assert "1 added, 0 duplicates, 2 malformed" in captured.out
    assert "line 2:" in captured.err and "line 3:" in captured.err and "'version'" in captured.err
    assert Database(db_path).count() == 6


def test_merge_and_prune(db_path, tmp_path, capsys):
    other = str(tmp_path / "other.db")
    Database(other).add_records([make(1, 2e-3, flops=8e6), make(9, 5e-3)])
    assert main(["--db", db_path, "merge", other]) == 0
    assert "1 added, 1 duplicates" in capsys.readouterr().out
    assert main(["--db", db_path, "prune", "--keep", "1"]) == 0
    assert "removed 4 of 6 records, 2 left" in capsys.readouterr().out
    assert main(["--db", db_path, "prune", "--keep", "0"]) == 1
    assert "keep_top_k: expected an int >= 1, got 0" in capsys.readouterr().err


def test_missing_database_and_usage_errors(tmp_path, capsys):
    assert main(["--db", str(tmp_path / "none.db"), "list"]) == 1
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert main(["--db", str(tmp_path / "none.db"), "merge", str(tmp_path / "missing.db")]) == 1


def test_ambiguous_workload_prefix_is_an_error(db_path, capsys):
    assert main(["--db", db_path, "export", "-", "--workload", ""]) == 1
    assert "matching 2" in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_install(db_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["--db", db_path, "plot", str(tmp_path / "p.png")]) == 1
    assert "pip install matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_plot_writes_a_png(db_path, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    assert main(["--db", db_path, "plot", str(out), "--template", "dense"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "GFLOP/s" in capsys.readouterr().out


def test_best_so_far_curves_gflops_when_flops_known():
    unit, curves = best_so_far_curves([make(0, 4e-3, flops=8e6), make(1, None, error="build"),
                                       make(2, 2e-3, flops=8e6), make(3, 8e-3, flops=8e6)])
    assert unit == "GFLOP/s"
    assert list(curves.values()) == [[2.0, 2.0, 4.0, 4.0]]


def test_best_so_far_curves_cost_when_flops_unknown():
    unit, curves = best_so_far_curves([make(0, None, error="timeout"), make(1, 4e-3), make(2, 8e-3), make(3, 1e-3),
                                       make(4, 2e-3, key=SOFTMAX, bucket="n=1")])
    assert unit == "cost (ms)"
    dense = next(v for k, v in curves.items() if k.startswith("dense"))
    assert math.isnan(dense[0]) and dense[1:] == pytest.approx([4.0, 4.0, 1.0])
    assert len(curves) == 2
