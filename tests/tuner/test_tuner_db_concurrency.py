"""Several processes writing into one records database at once (SQLite, and PostgreSQL when a server
is given) lose no record, store none twice, and create the schema and workloads without racing."""
import os
import subprocess
import sys
import time

import pytest

from nimble.tuner.db import Database
from server_db import BACKENDS, backend_url

WRITER = r"""
import sys, time
from pathlib import Path
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

url, writer, count, sync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
host = HostFingerprint("Test CPU", "TestVendor", ("avx2",), 2, 2, "llvm")
db = Database(url)  # every process creates / checks the schema at once
(sync / f"ready{writer}").touch()
while not (sync / "go").exists():
    time.sleep(0.005)
new = 0
for i in range(count):
    shared = i % 4 == 0  # written by every writer: stored once
    owner = -1 if shared else writer
    key = WorkloadKey("test_unregistered", [(("n", 64 + i % 3), "float32")], "llvm")  # workloads created concurrently
    record = TuningRecord(key, f"n={1 + i % 7}", "llvm", host, {"w": owner, "i": i}, i, [1e-3 + i * 1e-6],
                          timestamp=f"2026-11-28T10:00:00.{i:06d}Z", tuner="test")
    new += db.add_record(record)
print("new", new)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_processes_writing_concurrently_lose_and_duplicate_no_record(backend, tmp_path):
    writers, count = 4, 40
    with backend_url(backend, tmp_path) as url:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(w), str(count), str(tmp_path)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(writers)]
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"ready{w}").exists() for w in range(writers)):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                for p in procs:  # the others wait for "go": stop them, or reading their output hangs
                    p.kill()
                pytest.fail(f"a writer died or never became ready: {[p.communicate() for p in procs]}")
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=240) for p in procs]
        assert [p.returncode for p in procs] == [0] * writers, outputs
        shared = count // 4
        expected = writers * (count - shared) + shared
        db = Database(url)
        assert sum(int(out.split()[1]) for out, _ in outputs) == expected  # what the writers say they committed
        records = db.records()
        assert len(records) == expected == len({r.digest for r in records})
        assert len(db.workloads()) == 3
