"""Is this machine too busy to measure kernels? ``nimble-tune``'s check before and after tuning.

Timings on a loaded machine are not slower by a constant: a config measured while another
process held the core looks 10x slower, so a tuner ranks noise and prints speedups such as
"1110x" against a fallback that was measured at the wrong moment. Two signals, both cheap:

- before tuning, ``probe_noise``: the spread of a few repeats of a fixed numpy workload
  (a busy core shows as repeats that differ), and the load average against the core count;
- after tuning, ``record_noise``: the spread of the repeats inside each measured record.

The spread of a set of timings is ``(max - min) / min``; its median over records is the
noise of a task. Above ``NOISE_THRESHOLD`` the tuner's numbers are not to be trusted.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NOISE_THRESHOLD = 0.10  # repeats of one config more than 10% apart: the numbers are not to be trusted


def spread(costs: Sequence[float]) -> float | None:
    """``(max - min) / min`` of a few timings; None with fewer than two."""
    costs = [c for c in costs if c and c > 0]
    if len(costs) < 2:
        return None
    return (max(costs) - min(costs)) / min(costs)


def record_noise(records: Iterable) -> float | None:
    """The median spread of the repeats of successful records (None when none has two repeats)."""
    spreads = [s for s in (spread(r.costs) for r in records if r.error_kind is None) if s is not None]
    return statistics.median(spreads) if spreads else None


@dataclass(frozen=True)
class BusyReport:
    noise: float  # spread of the probe's repeats
    load: float | None  # 1-minute load average
    cores: int

    @property
    def busy(self) -> bool:
        return self.noise > NOISE_THRESHOLD or (self.load is not None and self.load > self.cores + 0.5)

    def describe(self) -> str:
        load = "" if self.load is None else f", load average {self.load:.1f} on {self.cores} cores"
        return f"repeats of a fixed workload differ by {self.noise:.0%}{load}"


def probe_noise(repeats: int = 7, seconds: float = 0.01) -> BusyReport:
    """Time a fixed numpy workload ``repeats`` times (about ``seconds`` each): its spread and the load."""
    import numpy as np

    a = np.ones((96, 96), dtype=np.float32)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:  # size one repeat to about `seconds`
        a @ a
        calls += 1
    costs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            a @ a
        costs.append(time.perf_counter() - t0)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return BusyReport(spread(costs) or 0.0, load, os.cpu_count() or 1)
