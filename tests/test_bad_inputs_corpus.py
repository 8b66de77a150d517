"""The bad-input corpus: every public entry point (kernel call, ``VirtualMachine.run``, ``from_onnx``,
``Executable.load``, JSONL import, records databases, the CLIs) fed what a careless user or an
attacker would, each case in a subprocess (batched; a crash costs only the case it hit).

Outcomes: ``clear`` (a nimble error naming the problem, an OSError, a CLI's non-zero exit),
``correct`` (an odd but valid input handled right), ``crash`` (the process died or hung),
``silent`` (a bad input accepted, or a wrong answer), ``raw`` (a bare Python error), ``refused``
(a valid input refused). Only the first two pass.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bad_inputs"))
from cases import CASES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "tests" / "bad_inputs" / "run_cases.py"
BATCH = 30
BATCH_TIMEOUT_S = 240
GOOD = ("clear", "correct")


def _run(names: list) -> dict:
    """Outcomes of ``names`` run in one child; after a crash, the rest in a fresh one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "NIMBLE_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    results: dict = {}
    remaining = list(names)
    while remaining:
        try:
            proc = subprocess.run([sys.executable, str(RUNNER), *remaining], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=BATCH_TIMEOUT_S)
            stdout, tail, code = proc.stdout, proc.stderr[-600:], proc.returncode
        except subprocess.TimeoutExpired as exc:
            stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            tail, code = "hung", "timeout"
        started = None
        for line in stdout.splitlines():
            if line.startswith("@@corpus start "):
                started = line.split(" ", 2)[2]
            elif line.startswith("@@corpus result "):
                r = json.loads(line[len("@@corpus result "):])
                results[r["name"]] = r
                started = None
        if started is not None:
            results[started] = {"name": started, "outcome": "crash", "detail": f"exit {code}: {tail}"}
        elif code != 0 and all(n in results for n in remaining):
            pass  # died after its last case (at exit): every case was counted
        remaining = [n for n in remaining if n not in results]
        if remaining and started is None:  # died before starting any further case
            for n in remaining:
                results[n] = {"name": n, "outcome": "crash", "detail": f"runner exit {code}: {tail}"}
            remaining = []
    return results


@pytest.fixture(scope="module")
def outcomes() -> dict:
    by_group: dict = {}
    for name, (_, _, group) in CASES.items():
        by_group.setdefault(group, []).append(name)
    batches = [names[i:i + BATCH] for names in by_group.values() for i in range(0, len(names), BATCH)]
    batches.sort(key=len, reverse=True)
    results: dict = {}
    with ThreadPoolExecutor(max(1, min(2, os.cpu_count() or 1))) as pool:
        for part in pool.map(_run, batches):
            results.update(part)
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_case(outcomes, name):
    r = outcomes[name]
    assert r["outcome"] in GOOD, f"{name}: {r['outcome']}: {r['detail']}"


def test_the_corpus_table(outcomes):
    groups = sorted({g for _, _, g in CASES.values()})
    kinds = ("clear", "correct", "crash", "silent", "raw", "refused")
    rows = []
    for g in groups + ["all"]:
        c = Counter(r["outcome"] for n, r in outcomes.items() if g == "all" or CASES[n][2] == g)
        rows.append((g, sum(c.values()), *[c[k] for k in kinds]))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'entry':<{width}} {'cases':>6} " + " ".join(f"{k:>8}" for k in kinds)]
    lines += [f"{r[0]:<{width}} {r[1]:>6} " + " ".join(f"{v:>8}" for v in r[2:]) for r in rows]
    print("\nbad-input corpus\n" + "\n".join(lines))
    total = rows[-1]
    assert total[1] == len(CASES) and total[4] == total[5] == total[6] == total[7] == 0, "\n".join(lines)
