"""The database of shipped records under the object cache is published whole: processes that start
at once (pytest-xdist workers, a team's tuners) never read a half-imported one."""
import os
import subprocess
import sys
from pathlib import Path

import nimble.dispatch.build as dispatch_build
from nimble.schedules.dense import dense_signature
from nimble.tuner import Database, TuningRecord, host_fingerprint
from nimble.tuner.task import Task

N_RECORDS = 300
ROOT = Path(__file__).resolve().parents[2]


def shipped_jsonl(folder: Path) -> Path:
    """``folder/tuning_logs/llvm-this-cpu.jsonl`` with N_RECORDS records of this host."""
    task = Task("dense", dense_signature("n", 32, 48), "llvm", "n=1..64")
    cfg = task.fallback()
    records = [TuningRecord(task.workload_key, "n=1..64", "llvm", host_fingerprint("llvm"), cfg.to_json(), cfg.index,
                            costs=(1e-5 * (1 + i),), tuner="test") for i in range(N_RECORDS)]
    db = Database(folder / "src.db")
    assert db.add_records(records) == N_RECORDS
    (folder / "tuning_logs").mkdir()
    db.export_jsonl(folder / "tuning_logs" / "llvm-this-cpu.jsonl")
    return folder / "tuning_logs"


def test_the_database_appears_only_once_every_record_is_in(tmp_path, monkeypatch, nimble_env):
    monkeypatch.setattr(dispatch_build, "SHIPPED_RECORDS_DIR", shipped_jsonl(tmp_path))
    nimble_env(NIMBLE_CACHE_DIR=str(tmp_path / "cache"))
    seen_during_import = []
    real_import = Database.import_jsonl

    def watching_import(self, path):
        seen_during_import.extend(p.name for p in (tmp_path / "cache").glob("shipped-records-*.db"))
        return real_import(self, path)

    monkeypatch.setattr(Database, "import_jsonl", watching_import)
    db = dispatch_build.shipped_records()
    assert seen_during_import == []  # another process could have opened it half-imported
    assert db.count() == N_RECORDS
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert [n for n in left if n.endswith(".db")] == [Path(db.url).name]
    assert not [n for n in left if ".tmp" in n], left  # the private copy is gone
    assert dispatch_build.shipped_records().count() == N_RECORDS  # opened, not rebuilt


READER = """
import os, sys, time
from pathlib import Path
import nimble.dispatch.build as b
b.SHIPPED_RECORDS_DIR = Path(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
time.sleep(float(sys.argv[3]))
print(b.shipped_records().count(), flush=True)
"""


def test_processes_starting_at_once_each_read_every_record(tmp_path):
    shipped = shipped_jsonl(tmp_path)
    go = tmp_path / "go"
    env = {**os.environ, "NIMBLE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    # staggered by a few ms: some build at once, some arrive while another is importing
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(shipped), str(go), str(0.02 * i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in outs]
    assert [int(out.split()[-1]) for out, _ in outs] == [N_RECORDS] * 4
    left = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len([n for n in left if n.endswith(".db")]) == 1 and not [n for n in left if ".tmp" in n], left
