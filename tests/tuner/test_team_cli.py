"""The command-line paths a team uses: a server database URL in nimble-db, runner flags in nimble-tune."""

from nimble.cli import db as db_cli
from nimble.cli import tune as tune_cli
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey
from server_db import backend_url

HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2",), 2, 2, "llvm")
KEY = WorkloadKey("test_unregistered", [(("n", 64), "float32")], "llvm")


def make(index, user="ana@laptop"):
    return TuningRecord(KEY, "n=33..64", "llvm", HOST, {"tile": index}, index, [1e-3 * (index + 1)],
                        timestamp=f"2026-11-28T10:00:00.{index:06d}Z", tuner="test", user=user)


def test_nimble_db_merges_a_server_database_and_a_sqlite_file_both_ways(tmp_path, capsys):
    with backend_url("postgresql", tmp_path) as url:
        Database(url).add_records([make(i, "bo@team") for i in range(3)])
        Database(tmp_path / "mine.db").add_records([make(i) for i in range(3, 5)])
        assert db_cli.main(["--db", url, "merge", str(tmp_path / "mine.db")]) == 0
        assert db_cli.main(["--db", str(tmp_path / "mine.db"), "merge", url]) == 0
        assert "2 added" in capsys.readouterr().out
        team, mine = Database(url), Database(tmp_path / "mine.db")
        assert team.count() == mine.count() == 5
        assert {r.user for r in mine.records()} == {"bo@team", "ana@laptop"}
        assert db_cli.main(["--db", url, "list"]) == 0
        assert "5 records" in capsys.readouterr().out


def test_nimble_tune_refuses_an_address_without_the_ray_runner(tmp_path, capsys):
    argv = ["--op", "dense", "--shape", "n,16,16", "--bucket", "n=1..8", "--db", str(tmp_path / "t.db"),
            "--address", "auto", "--no-progress"]
    assert tune_cli.main(argv) == 1
    assert "--address: only with --runner ray" in capsys.readouterr().err
    assert tune_cli.main(argv[:-3] + ["--runner", "spark"]) == 2
