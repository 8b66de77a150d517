"""Fuzz the loaders for minutes: ``Executable.load``, the JSONL importer and ``from_onnx``.

    python scripts/fuzz_loaders.py [--minutes 3] [--target executable --target jsonl --target onnx] [--out fuzz-out]

``executable`` and ``jsonl`` are driven by hypothesis; ``onnx`` (``tests/bad_inputs/onnx_fuzz.py``:
mutated small ONNX models, converted, compiled, run and compared with ONNX Runtime) by atheris
(libFuzzer, coverage of ``nimble.frontend``) where it installs, else by hypothesis.

Each target runs in its own process (a crash there is counted, not fatal here); the input being
run is written to ``OUT/last_<target>`` first, so a crash leaves its reproducer behind. Prints one
row per target: executions, minutes, crashes, failures (an exception other than the allowed one, or
for ``onnx`` a result that differs from ONNX Runtime's).
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

ONNX_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {tests!r})
seconds, last, stats = float(sys.argv[2]), sys.argv[3], sys.argv[4]
import onnx_fuzz as F
failures, started = [], time.time()

def save(engine):
    with open(stats + ".tmp", "w") as f:
        json.dump({{"executions": F.EXECUTIONS["onnx"], "failures": failures[:5], "n_failures": len(failures),
                   "outcomes": F.OUTCOMES, "lenient": F.LENIENT[:40], "engine": engine}}, f)
    os.replace(stats + ".tmp", stats)

def one(chooser, engine):
    model, how = F.mutated_model(chooser)
    with open(last, "wb") as f:
        f.write(model if isinstance(model, bytes) else model.SerializeToString())
    try:
        F.check(model, how)
    except F.Finding as exc:
        failures.append(str(exc)[:300])
    save(engine)

try:
    import atheris
except ImportError:
    atheris = None
if atheris is not None:
    with atheris.instrument_imports(include=["nimble.frontend"]):
        import nimble.frontend.onnx  # noqa: F401 - coverage of the frontend guides libFuzzer
    def test_one(data):
        if time.time() - started > seconds:
            save("atheris"); os._exit(0)
        one(F.ProviderChooser(atheris.FuzzedDataProvider(data)), "atheris")
    atheris.Setup([sys.argv[0], f"-max_total_time={{int(seconds) + 5}}", "-rss_limit_mb=8192", "-timeout=120",
                   "-max_len=512"], test_one)
    atheris.Fuzz()
else:
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    end = started + seconds
    while time.time() < end:
        settings(max_examples=50, deadline=None, database=None, phases=[Phase.generate],
                 suppress_health_check=list(HealthCheck))(given(st.data())(lambda d: one(F.HypothesisChooser(d), "hypothesis")))()
    save("hypothesis")
"""


def run_onnx(minutes: float, out: Path) -> dict:
    """The ``from_onnx`` target: its child writes its counts to ``OUT/stats_onnx.json`` as it goes."""
    out.mkdir(parents=True, exist_ok=True)
    last, stats = out / "last_onnx", out / "stats_onnx.json"
    stats.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", ONNX_CHILD.format(tests=str(REPO / "tests" / "bad_inputs")), "onnx",
                           str(minutes * 60), str(last), str(stats)], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = (time.time() - t0) / 60
    r = json.loads(stats.read_text()) if stats.exists() else {"executions": "?", "n_failures": 0, "failures": []}
    crashed = proc.returncode != 0
    detail = "; ".join(r["failures"])
    if crashed:
        kept = out / f"crash_onnx_{int(t0)}"
        if last.exists():
            last.replace(kept)
        detail = f"exit {proc.returncode}; reproducer {kept}; {proc.stderr[-400:]} " + detail
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.get("outcomes", {}).items(), key=lambda kv: -kv[1]))
    return {"target": f"onnx ({r.get('engine', '?')})", "executions": r["executions"], "minutes": elapsed,
            "crashes": int(crashed), "failures": r["n_failures"], "detail": detail, "outcomes": outcomes,
            "lenient": r.get("lenient", [])}


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
    ap.add_argument("--target", action="append", choices=("executable", "jsonl", "onnx"))
    ap.add_argument("--out", type=Path, default=Path("fuzz-out"))
    ap.add_argument("--verbose", action="store_true", help="list models ONNX Runtime refuses but nimble runs")
    args = ap.parse_args(argv)
    rows = [run_onnx(args.minutes, args.out) if t == "onnx" else run_target(t, args.minutes, args.out)
            for t in (args.target or ["executable", "jsonl", "onnx"])]
    print(f"{'target':<18} {'executions':>11} {'minutes':>8} {'crashes':>8} {'failures':>9}")
    for r in rows:
        print(f"{r['target']:<18} {r['executions']:>11} {r['minutes']:>8.2f} {r['crashes']:>8} {r['failures']:>9}")
        if r["detail"]:
            print(f"  {r['detail']}")
        if r.get("outcomes"):
            print(f"  outcomes: {r['outcomes']}")
        for line in r.get("lenient", [])[:8] if args.verbose else []:
            print(f"  ONNX Runtime refuses, nimble runs: {line}")
    return 1 if any(r["crashes"] or r["failures"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
