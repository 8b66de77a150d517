"""Two processes writing into one SQLite database at once lose no record."""
import os
import subprocess
import sys
import time

from nimble.tuner.db import Database

WRITER = r"""
import sys, time
from pathlib import Path
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

path, writer, count, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
host = HostFingerprint("Test CPU", "TestVendor", ("avx2",), 2, 2, "llvm")
key = WorkloadKey("test_unregistered", [(("n", 64), "float32")], "llvm")  # no template: configs unchecked
db = Database(path)  # both processes create / check the schema at once
(sync / f"ready{writer}").touch()
while not (sync / "go").exists():
    time.sleep(0.005)
for i in range(count):
    db.add_record(TuningRecord(key, f"n={1 + i % 7}", "llvm", host, {"w": writer, "i": i}, writer * count + i,
                               [1e-3 + i * 1e-6], timestamp=f"2026-11-28T10:00:00.{i:06d}Z", tuner="test"))
print("done", writer)
"""


def test_two_processes_writing_concurrently_lose_no_record(tmp_path):
    path, count = tmp_path / "shared.db", 200
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(count), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{w}").exists() for w in range(2)):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "writers never became ready"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    db = Database(path)
    assert db.count() == 2 * count
    assert sorted(r.config_index for r in db.records()) == list(range(2 * count))
    assert len(db.workloads()) == 1
