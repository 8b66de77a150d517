"""``nimble-tune --budget``: durations, a tiny budget kept on the wall clock, progress lines."""
import time

import pytest

from nimble.cli import tune as tune_cli
from nimble.errors import NimbleError
from nimble.tuner.db import Database
from nimble.tuner.fingerprint import host_fingerprint
from nimble.tuner.measure import MeasureResult


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("20m", 1200), ("1h30m", 5400), ("1.5h", 5400),
                                           ("0.5s", 0.5)])
def test_durations(text, seconds):
    assert tune_cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "20 minutes", "-5", "0", "1d"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(NimbleError, match="--budget"):
        tune_cli.parse_duration(text)


class SleepyMeasurer:
    """Sleeps ``per_config`` seconds a config (a real clock, no real kernels)."""

    per_config = 0.1

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def host(self, target):
        return host_fingerprint(target)

    def measure(self, task, batch, on_result=None):
        out = []
        for c in batch:
            time.sleep(self.per_config)
            r = MeasureResult(c, (1e-4 / (1 + c.values["tile_rows"]),))
            if on_result:
                on_result(r)
            out.append(r)
        return out


def test_a_tiny_budget_stops_in_time_and_prints_a_line_per_batch(tmp_path, capsys, monkeypatch):
    import importlib

    tune_mod = importlib.import_module("nimble.tuner.tune")

    monkeypatch.setattr(tune_mod, "make_measurer", lambda *a, **k: SleepyMeasurer())
    budget_mod = importlib.import_module("nimble.tuner.budget")
    walls = []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return budget_mod.tune_budget.__wrapped__(*args, **kwargs)
        finally:
            walls.append(time.perf_counter() - t0)

    timed.__wrapped__ = budget_mod.tune_budget
    monkeypatch.setattr(budget_mod, "tune_budget", timed)
    path = str(tmp_path / "b.db")
    status = tune_cli.main(["--op", "dense", "--shape", "n,64,64", "--bucket", "n=1:8,9:64", "--budget", "1s",
                            "--tuner", "random", "--batch", "8", "--db", path, "--no-busy-check"])
    captured = capsys.readouterr()
    assert status == 0 and len(walls) == 1
    assert 1.0 <= walls[0] <= 1.0 + 2 * SleepyMeasurer.per_config + 0.3  # it ended within a config or two of 1 s
    assert len(Database(path).records()) >= 4  # most of the second went to measuring
    lines = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert lines and all("/1 s]" in line and "dense" in line for line in lines)
    assert "n=9..64" in lines[0]  # the larger bucket's share comes first
    assert "n=9..64" in captured.out and "n=1..8" in captured.out


def test_budget_and_time_budget_are_one_option(tmp_path, capsys):
    args = ["--op", "dense", "--shape", "n,64,64", "--bucket", "n=1:8", "--db", str(tmp_path / "x.db")]
    assert tune_cli.main([*args, "--budget", "1m", "--time-budget", "60"]) == 1
    assert "give one of them" in capsys.readouterr().err
    assert tune_cli.main([*args, "--budget", "soon"]) == 1
    assert "--budget: expected a duration" in capsys.readouterr().err


@pytest.mark.parametrize("flags, cold", [([], False), (["--cold-cache"], True), (["--no-cold-cache"], False)])
def test_the_cold_cache_option_reaches_the_measurer(tmp_path, monkeypatch, flags, cold):
    import importlib

    tune_mod = importlib.import_module("nimble.tuner.tune")
    seen = []
    monkeypatch.setattr(tune_mod, "make_measurer", lambda runner, options, address: seen.append(options)
                        or SleepyMeasurer())
    status = tune_cli.main(["--op", "dense", "--shape", "n,64,64", "--bucket", "n=1..8", "--trials", "1",
                            "--tuner", "random", "--db", str(tmp_path / "c.db"), "--no-busy-check", "--no-progress"]
                           + flags)
    assert status == 0 and [o.cold_cache for o in seen] == [cold]
