"""The CLI papercuts of issue 16, one test each: what a new user met, and what they get now."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nimble.cli import busy
from nimble.cli import db as db_cli
from nimble.cli import rounds
from nimble.cli import run as run_cli
from nimble.cli import tune as tune_cli
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import TuningRecord
from nimble.tuner.workload import WorkloadKey

ROOT = Path(__file__).resolve().parents[2]
HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2", "fma"), 4, 4, "llvm")
DENSE = WorkloadKey("test_unregistered", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")  # no template: configs unchecked
BUCKETS = ("n=129..256", "n=17..32", "n=1..37", "n=1", "n=2..4")
FAST = ["--repeat", "2", "--min-repeat-ms", "1", "--timeout", "60", "--no-progress", "--no-busy-check"]  # nothing hangs


def record(i, bucket, costs=(1e-3,)):
    return TuningRecord(DENSE, bucket, "llvm", HOST, {"tile": i}, i, list(costs),
                        timestamp=f"2026-11-28T10:00:00.{i:06d}Z", tuner="test", flops=1e6)


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "t.db"
    Database(path).add_records([record(i, b) for i, b in enumerate(BUCKETS)])
    return str(path)


def _buckets_in(out: str) -> list[str]:
    return [word for line in out.splitlines() for word in line.split() if word.startswith("n=")]


def test_buckets_are_listed_in_numeric_order_not_as_text(db_path, capsys):
    want = ["n=1", "n=1..37", "n=2..4", "n=17..32", "n=129..256"]
    assert db_cli.main(["--db", db_path, "list"]) == 0
    assert _buckets_in(capsys.readouterr().out) == want
    assert db_cli.main(["--db", db_path, "best"]) == 0
    assert _buckets_in(capsys.readouterr().out) == want


def test_db_option_is_accepted_after_the_subcommand_too(db_path, tmp_path, capsys):
    assert db_cli.main(["list", "--db", db_path]) == 0
    assert "1 workloads, 5 records" in capsys.readouterr().out
    assert db_cli.main(["--db", str(tmp_path / "missing.db"), "list", "--db", db_path]) == 0  # the later one wins
    assert db_cli.main(["--db", db_path, "list"]) == 0  # and before it, as always


def test_export_to_a_closed_pipe_ends_quietly_with_status_0(db_path):
    cmd = (f"{sys.executable} -m nimble.cli.db --db {db_path} export - | head -1; "
           "echo \"status=${PIPESTATUS[0]}\"")
    big = Database(db_path)
    big.add_records([record(100 + i, "n=5..8", costs=(1e-3 + i * 1e-9,)) for i in range(3000)])  # > a pipe buffer
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.startswith("{") and "status=0" in out.stdout
    assert "Broken pipe" not in out.stderr and "Traceback" not in out.stderr


def test_ctrl_c_in_nimble_tune_prints_a_resume_hint_not_a_traceback(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rounds, "tune", interrupted)
    status = tune_cli.main(["--op", "dense", "--shape", "n,16,16", "--bucket", "n=1:4", "--db",
                            str(tmp_path / "t.db"), *FAST])
    err = capsys.readouterr().err
    assert status == 130
    assert "interrupted" in err and "run the same command again to resume" in err and "t.db" in err
    assert "Traceback" not in err


def test_each_task_is_announced_with_its_workload_hash_and_shapes(tmp_path, capsys):
    status = tune_cli.main(["--op", "dense", "--shape", "n,16,16", "--bucket", "n=1:2", "--trials", "1",
                            "--tuner", "random", "--db", str(tmp_path / "t.db"), *FAST])
    assert status == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and lines[0].startswith("[1/2] dense #") and lines[1].startswith("[2/2] dense #")
    assert "(n,16) (16,16)" in lines[0] and lines[0].endswith("n=1") and lines[1].endswith("n=2")
    from nimble.schedules.dense import dense_signature
    from nimble.tuner.task import Task

    a = Task("dense", dense_signature("n", 768, 768), "llvm", "n=1..40")
    b = Task("dense", dense_signature("n", 768, 3072), "llvm", "n=1..40")
    assert tune_cli.task_label(a) != tune_cli.task_label(b)  # one label per workload, not "dense n=1..40"


def test_a_busy_machine_is_reported_and_busy_repeat_measures_more(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tune_cli, "probe_noise", lambda: busy.BusyReport(0.8, 9.5, 2))
    seen = []
    real = rounds.tune

    def spy(*args, **kwargs):
        seen.append(kwargs["measurer"].options.repeat)
        return real(*args, **kwargs)

    monkeypatch.setattr(rounds, "tune", spy)
    args = ["--op", "matmul", "--shape", "4,8,8", "--trials", "1", "--tuner", "random", "--repeat", "2",
            "--min-repeat-ms", "1", "--timeout", "60", "--no-progress", "--db", str(tmp_path / "t.db")]
    assert tune_cli.main(args) == 0
    err = capsys.readouterr().err
    assert "the machine looks busy (repeats of a fixed workload differ by 80%, load average 9.5 on 2 cores)" in err
    assert "--busy-repeat" in err and seen == [2]
    assert tune_cli.main([*args, "--busy-repeat", "7", "--no-resume"]) == 0
    assert "measuring each config 7 times" in capsys.readouterr().err and seen == [2, 7]


def test_noisy_records_mark_their_speedup_and_warn(capsys):
    noisy = [record(i, "n=1", costs=(1e-3, 5e-3, 1e-3)) for i in range(3)]
    assert busy.record_noise(noisy) == pytest.approx(4.0)
    assert busy.record_noise([record(0, "n=1", costs=(1e-3, 1.01e-3))]) == pytest.approx(0.01)

    class Summary:
        workload, bucket, trials, errors = DENSE, "n=1", 3, 0
        fallback_gflops, best_gflops, speedup, best_cost = 0.004, 1.0, 250.0, 1e-3

    table = tune_cli.summary_table([Summary()], [4.0])
    assert "250.00x?" in table and "400%" in table and "0.004" in table  # not "0.00 GFLOP/s"


def test_a_missing_onnx_package_names_the_extra_once(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert run_cli.main([str(tmp_path / "m.onnx")]) == 1
    assert tune_cli.main(["--model", str(tmp_path / "m.onnx"), "--db", str(tmp_path / "t.db"), *FAST]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("pip install 'nimble[onnx]'" in line for line in err)
    assert err[0].startswith("nimble-run: error:") and err[1].startswith("nimble-tune: error:")


def test_nimble_run_takes_one_unnamed_input_and_names_the_parameter_it_misses(tmp_path, capsys):
    import nimble
    from nimble import ir
    from nimble import ops as nb
    from nimble.ir import Any

    x = ir.var("hidden_states", shape=(Any, 8))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.relu(x)))
    nimble.compile(mod).save(tmp_path / "m.nimble")
    data = np.arange(-8, 16, dtype="float32").reshape(3, 8)
    np.save(tmp_path / "x.npy", data)
    assert run_cli.main([str(tmp_path / "m.nimble"), "--input", str(tmp_path / "x.npy"), "--output",
                         str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as o:
        np.testing.assert_array_equal(o["out0"], np.maximum(data, 0))
    assert run_cli.main([str(tmp_path / "m.nimble"), "--input", f"x={tmp_path / 'x.npy'}"]) == 1
    err = capsys.readouterr().err
    assert "missing inputs ['hidden_states']" in err and "got inputs named ['x']" in err
    assert "--input hidden_states=FILE.npy" in err


def test_the_readme_and_docs_link_only_to_files_a_clone_has():
    import re

    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links {target}, which a clone lacks"
        assert "../shared/" not in doc.read_text(encoding="utf-8")


def test_the_plot_legend_sits_outside_the_axes_at_31_curves(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "many.db"
    db = Database(path)
    db.add_records([record(i, f"n={b}", costs=(1e-3 / (1 + i % 7),)) for b in range(1, 32) for i in range(b, b + 3)])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = {}
    real_savefig = matplotlib.figure.Figure.savefig

    def keep(fig, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        captured["axes"] = ax.get_window_extent(renderer)
        captured["legend"] = ax.get_legend().get_window_extent(renderer)
        captured["width"] = fig.bbox.width
        return real_savefig(fig, *args, **kwargs)

    matplotlib.figure.Figure.savefig = keep
    try:
        assert db_cli.main(["--db", str(path), "plot", str(tmp_path / "p.png")]) == 0
    finally:
        matplotlib.figure.Figure.savefig = real_savefig
        plt.close("all")
    assert captured["legend"].x0 >= captured["axes"].x1  # right of the curves, not over them
    assert captured["legend"].x1 <= captured["width"] + 1  # and inside the picture
    assert (tmp_path / "p.png").stat().st_size > 0


def test_no_measure_folder_is_left_in_the_temporary_directory():
    """tests/conftest.py points TMPDIR at a private folder for the session; nothing of ours stays there."""
    folder = Path(os.environ.get("NIMBLE_TEST_TMPDIR", ""))
    if not folder.is_dir():
        pytest.skip("run under tests/conftest.py's private TMPDIR")
    from nimble.tuner.measure import MeasureOptions, Measurer

    with Measurer(MeasureOptions(n_parallel=0)):
        pass
    assert not list(folder.glob("nimble-measure-*"))
