"""Tuning leaves nothing behind and is not fooled by the folder it starts in."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from nimble.schedules.dense import dense_signature
from nimble.tuner.measure import MeasureOptions, Measurer, WorkerProcess
from nimble.tuner.scratch import PREFIX, ScratchFolder, sweep_stale
from nimble.tuner.task import Task

REPO = str(Path(__file__).resolve().parents[2])


def test_a_live_measurers_folder_is_kept_and_a_dead_ones_is_swept(tmp_path):
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import os, signal
            from nimble.tuner.scratch import ScratchFolder
            folder = ScratchFolder()
            print(folder.path, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """)], cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)}, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    leaked = Path(killed.stdout.strip())
    assert leaked.is_dir() and leaked.name.startswith(PREFIX)
    live = Path(__import__("tempfile").mkdtemp(prefix=PREFIX, dir=tmp_path))
    import fcntl
    fd = os.open(live / ".owner", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    old = __import__("time").time() - 3600
    for folder in (leaked, live):
        os.utime(folder / ".owner", (old, old))
    assert sweep_stale(str(tmp_path)) == 1
    assert not leaked.exists() and live.exists()
    os.close(fd)


def test_a_closed_measurer_removes_its_folder():
    m = Measurer(MeasureOptions(n_parallel=0, repeat=1, min_repeat_ms=1.0))
    folder = m._folder
    assert folder.is_dir()
    m.close()
    m.close()
    assert not folder.exists()


def test_a_scratch_folder_sweeps_before_it_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    stale = tmp_path / f"{PREFIX}old"
    stale.mkdir()
    (stale / ".owner").write_text("")
    os.utime(stale / ".owner", (0, 0))
    folder = ScratchFolder()
    assert not stale.exists() and folder.path.parent == tmp_path
    assert sweep_stale(str(tmp_path)) == 0  # a fresh folder (locked, and young) is never swept
    folder.remove()


def test_workers_ignore_a_nimble_folder_in_the_current_directory(tmp_path, monkeypatch):
    fake = tmp_path / "nimble"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('the wrong nimble was imported')\n")
    monkeypatch.chdir(tmp_path)
    worker = WorkerProcess("builder")
    try:
        worker.start()
        worker.wait_ready()
        assert worker.alive
    finally:
        worker.stop()


def test_measuring_from_a_folder_with_a_nimble_folder_works(tmp_path, monkeypatch):
    (tmp_path / "nimble").mkdir()
    (tmp_path / "nimble" / "__init__.py").write_text("raise ImportError('the wrong nimble was imported')\n")
    monkeypatch.chdir(tmp_path)
    task = Task("dense", dense_signature("n", 16, 16), "llvm", "n=1..8")
    with Measurer(MeasureOptions(n_parallel=1, repeat=1, min_repeat_ms=1.0, timeout_s=30.0)) as m:
        [result] = m.measure(task, [task.fallback()])
    assert result.ok, result
