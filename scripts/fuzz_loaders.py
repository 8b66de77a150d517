"""Fuzz the loaders for minutes: ``Executable.load`` and the JSONL importer (hypothesis-driven).

    python scripts/fuzz_loaders.py [--minutes 3] [--target executable --target jsonl] [--out fuzz-out]

Each target runs in its own process (a crash there is counted, not fatal here); the input being
run is written to ``OUT/last_<target>`` first, so a crash leaves its reproducer behind. Prints one
row per target: executions, minutes, crashes, failures (an exception other than the allowed one).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = r"""
import json, random, sys, time, traceback
sys.path.insert(0, {tests!r})
from hypothesis import HealthCheck, given, settings, Phase
from fuzz_targets import EXECUTIONS, JsonlTarget, damaged_executables, jsonl_texts, load_target
target, seconds, last = sys.argv[1], float(sys.argv[2]), sys.argv[3]
if target == "executable":
    strategy, run, write = damaged_executables(), load_target, lambda d: open(last, "wb").write(d)
else:
    strategy, run, write = jsonl_texts(), JsonlTarget(), lambda t: open(last, "w").write(t)
failures = []

def one(x):
    write(x)
    try:
        run(x)
    except Exception as exc:  # the target's own allowed error is caught inside it
        failures.append(f"{{type(exc).__name__}}: {{exc}}"[:300])

end = time.time() + seconds
while time.time() < end:
    settings(max_examples=200, deadline=None, database=None, phases=[Phase.generate],
             suppress_health_check=list(HealthCheck))(given(strategy)(one))()
print("@@fuzz " + json.dumps({{"executions": EXECUTIONS[target], "failures": failures[:5], "n_failures": len(failures)}}))
"""


def run_target(target: str, minutes: float, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    last = out / f"last_{target}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD.format(tests=str(REPO / "tests" / "bad_inputs")), target,
                           str(minutes * 60), str(last)], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = (time.time() - t0) / 60
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@fuzz ")), None)
    if line is None:
        kept = out / f"crash_{target}_{int(t0)}"
        if last.exists():
            last.replace(kept)
        return {"target": target, "executions": "?", "minutes": elapsed, "crashes": 1, "failures": 0,
                "detail": f"exit {proc.returncode}; reproducer {kept}; {proc.stderr[-400:]}"}
    r = json.loads(line[len("@@fuzz "):])
    return {"target": target, "executions": r["executions"], "minutes": elapsed, "crashes": 0,
            "failures": r["n_failures"], "detail": "; ".join(r["failures"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="per target")
    ap.add_argument("--target", action="append", choices=("executable", "jsonl"))
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    args = ap.parse_args(argv)
    rows = [run_target(t, args.minutes, args.out) for t in (args.target or ["executable", "jsonl"])]
    print(f"{'target':<12} {'executions':>11} {'minutes':>8} {'crashes':>8} {'failures':>9}")
    for r in rows:
        print(f"{r['target']:<12} {r['executions']:>11} {r['minutes']:>8.2f} {r['crashes']:>8} {r['failures']:>9}")
        if r["detail"]:
            print(f"  {r['detail']}")
    return 1 if any(r["crashes"] or r["failures"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
