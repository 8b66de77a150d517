"""``vm.profile(*inputs)``: one timed run: per-kernel and per-instruction-kind time and counts,
allocations and peak bytes, as a dict (``to_dict``) and a readable table (``table``/``str``).

Timing wraps every instruction's step with ``perf_counter_ns``; the wrapper costs about as much
as a cheap instruction, so instruction times are upper bounds and the total is slower than a
plain run. Kernel times are the whole ``InvokePacked`` (argument checks and the ctypes call).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter_ns

from . import bytecode as bc


@dataclass(frozen=True)
class ProfileReport:
    """What one profiled run did. Times are in seconds."""

    function: str
    total_s: float
    kernels: dict  # name -> {"calls", "time_s"}
    instructions: dict  # opname -> {"count", "time_s"}
    storage_allocations: int
    system_allocations: int
    peak_bytes: int
    outputs: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"function": self.function, "total_s": self.total_s, "kernels": self.kernels,
                "instructions": self.instructions, "storage_allocations": self.storage_allocations,
                "system_allocations": self.system_allocations, "peak_bytes": self.peak_bytes}

    def table(self) -> str:
        lines = [f"profile of @{self.function}: {self.total_s * 1e3:.3f} ms",
                 f"{'kernel':<32} {'calls':>8} {'total ms':>10} {'mean us':>10} {'%':>6}"]
        for name, k in sorted(self.kernels.items(), key=lambda kv: -kv[1]["time_s"]):
            mean = k["time_s"] / k["calls"] * 1e6 if k["calls"] else 0.0
            share = 100 * k["time_s"] / self.total_s if self.total_s else 0.0
            lines.append(f"{name:<32} {k['calls']:>8} {k['time_s'] * 1e3:>10.3f} {mean:>10.2f} {share:>6.1f}")
        lines.append(f"{'instruction':<32} {'count':>8} {'total ms':>10} {'mean us':>10} {'%':>6}")
        for name, k in sorted(self.instructions.items(), key=lambda kv: -kv[1]["time_s"]):
            mean = k["time_s"] / k["count"] * 1e6 if k["count"] else 0.0
            share = 100 * k["time_s"] / self.total_s if self.total_s else 0.0
            lines.append(f"{name:<32} {k['count']:>8} {k['time_s'] * 1e3:>10.3f} {mean:>10.2f} {share:>6.1f}")
        lines.append(f"storages allocated: {self.storage_allocations} ({self.system_allocations} from the system), "
                     f"peak bytes in use: {self.peak_bytes:,}")
        return "\n".join(lines)

    __str__ = table


def _timed(step, kind_stats: list, kernel_stats: list | None):
    """``step`` wrapped to add its count and time to ``kind_stats`` (and ``kernel_stats``)."""
    def timed(regs, pc):
        t0 = perf_counter_ns()
        nxt = step(regs, pc)
        dt = perf_counter_ns() - t0
        kind_stats[0] += 1
        kind_stats[1] += dt
        if kernel_stats is not None:
            kernel_stats[0] += 1
            kernel_stats[1] += dt
        return nxt
    return timed


def profile_run(vm, name: str, inputs: tuple) -> ProfileReport:
    """Run ``name`` once on ``vm`` with every step timed."""
    exe = vm.exe
    kinds: dict[str, list] = {}
    kernels: dict[str, list] = {}
    code = []
    for func, steps in zip(exe.functions, vm.code):
        timed_steps = []
        for ins, step in zip(func.instructions, steps):
            kernel = None
            if isinstance(ins, bc.InvokePacked):
                kernel = kernels.setdefault(exe.packed[ins.packed_index].name, [0, 0])
            timed_steps.append(_timed(step, kinds.setdefault(ins.opname, [0, 0]), kernel))
        code.append(timed_steps)
    pool = vm.pool
    pool.reset_peak()
    reuses0, system0 = pool.pool_reuses, pool.system_allocations
    t0 = perf_counter_ns()
    outputs = vm._call(name, inputs, code)
    total = (perf_counter_ns() - t0) * 1e-9
    system = pool.system_allocations - system0
    return ProfileReport(
        name, total,
        {k: {"calls": c, "time_s": t * 1e-9} for k, (c, t) in kernels.items() if c},
        {k: {"count": c, "time_s": t * 1e-9} for k, (c, t) in kinds.items() if c},
        pool.pool_reuses - reuses0 + system, system, pool.peak_bytes_in_use, outputs)
