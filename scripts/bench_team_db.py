"""Many tuner processes writing one records database at once: are records lost or duplicated?

    python3 scripts/bench_team_db.py postgresql+psycopg://postgres@127.0.0.1:5432/team --writers 4 --seconds 120

Each writer commits records for ``--seconds`` as a tuner does (one record a transaction, and
every tenth commit a batch of 8), and some of its records are also written by every other
writer (same identity: the duplicates a team's merges and re-runs produce). Each writer reports
the digests it committed as new; the database must then hold exactly the union of the digests
all writers tried, each once, and every digest a writer counted as new exactly once over all writers.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

from sqlalchemy import create_engine, text

from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

HOST = HostFingerprint("Bench CPU", "BenchVendor", ("avx2",), 2, 2, "llvm")


def record(writer: int, i: int, shared: bool) -> TuningRecord:
    key = WorkloadKey("dense", [(("n", 64 + i % 5), "float32")], "llvm")  # a few workloads, created concurrently
    owner = -1 if shared else writer
    return TuningRecord(key, f"n={1 + i % 7}", "llvm", HOST, {"w": owner, "i": i}, i, [1e-3 + (i % 100) * 1e-6],
                        timestamp=f"2026-12-01T10:00:00.{i % 1000000:06d}Z", tuner="bench", user=f"writer{owner}@bench")


def write(url: str, writer: int, seconds: float, start_at: float, out) -> None:
    db = Database(url)
    tried, new, commits, i = set(), [], 0, 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    while time.time() < deadline:
        batch = [record(writer, i + k, shared=(i + k) % 10 == 0) for k in range(8 if commits % 10 == 9 else 1)]
        i += len(batch)
        added = db.add_records(batch)
        commits += 1
        tried.update(r.digest for r in batch)
        if len(batch) == 1 and added == 1:
            new.append(batch[0].digest)
        elif len(batch) > 1:
            new.append([added, [r.digest for r in batch]])
    out.put(json.dumps({"writer": writer, "tried": sorted(tried), "new": new, "commits": commits}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--seconds", type=float, default=120.0)
    args = p.parse_args()
    engine = create_engine(args.url)
    with engine.begin() as conn:  # start from an empty database
        conn.execute(text("DROP TABLE IF EXISTS records, workloads, schema_version"))
    engine.dispose()
    out = mp.get_context("spawn").Queue()
    start_at = time.time() + 8.0  # every writer opens (and races to create) the schema, then all start at once
    procs = [mp.get_context("spawn").Process(target=write, args=(args.url, w, args.seconds, start_at, out))
             for w in range(args.writers)]
    for proc in procs:
        proc.start()
    reports = [json.loads(out.get(timeout=args.seconds + 300)) for _ in procs]
    for proc in procs:
        proc.join()
    db = Database(args.url)
    stored = [r.digest for r in db.iter_records()]
    tried = set().union(*(set(r["tried"]) for r in reports))
    single_new = [d for r in reports for d in r["new"] if isinstance(d, str)]
    batch_new = sum(d[0] for r in reports for d in r["new"] if isinstance(d, list))
    commits = sum(r["commits"] for r in reports)
    print(f"{args.writers} writers x {args.seconds:g} s into {db.display_url}: {commits} commits "
          f"({commits / args.seconds:.0f}/s), {len(tried)} distinct records tried")
    print(f"stored {len(stored)} rows, {len(set(stored))} distinct digests; "
          f"counted new by the writers: {len(single_new) + batch_new}")
    lost = tried - set(stored)
    duplicated = len(stored) - len(set(stored))
    double_counted = len(single_new) - len(set(single_new))
    print(f"lost {len(lost)}, duplicated {duplicated}, counted new twice {double_counted}, "
          f"new-count mismatch {len(stored) - len(single_new) - batch_new}")
    per = {r["writer"]: r["commits"] for r in reports}
    print("commits per writer:", per)


if __name__ == "__main__":
    main()
