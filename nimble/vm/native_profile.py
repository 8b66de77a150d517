"""``native_profile(vm, items)``: where a native VM run's time goes, by instruction kind.

An instrumented copy of the executable's native program (built on first use, never saved)
reads the CPU's cycle counter at every instruction, around every raw kernel call and at
function entries and exits, and adds the cycles since the last reading to the kind that ran
since then (``native_layout.PROF_EXTRA`` names the kinds that are not opcodes: ``kernel`` is
the raw kernel entry alone; the argument checks, variant choice and call count around it are
``invoke_packed``). Each item also runs on the plain program, interleaved with the instrumented
runs so that a shared machine's load hits both alike: its wall time per boundary step (input
checks, encoding, the native run, outputs) shows where the boundary's time goes. The VM share is
the instrumented calls' time outside the raw kernel calls (kernel time and total from the same
runs). Instrumentation costs a few ns a reading; ``tick_ns`` estimates it.
"""
from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns


@dataclass(frozen=True)
class NativeProfile:
    """One pass over the items (each item's fastest run); times in ns."""

    function: str
    items: int
    kinds: dict  # kind -> {"count": executions, "ns": time in the instrumented program}
    phases: dict  # boundary step -> ns in the plain program
    instrumented_ns: float  # wall time of the instrumented program's calls (boundary included)
    cycles_per_ns: float

    @property
    def total_ns(self) -> float:
        return sum(self.phases.values())

    @property
    def kernel_ns(self) -> float:
        return self.kinds.get("kernel", {}).get("ns", 0.0)

    @property
    def vm_share(self) -> float:
        """Share of the instrumented calls' wall time spent outside kernels (kernel time and total
        from the same runs; the readings themselves make it an upper bound)."""
        return 1 - self.kernel_ns / self.instrumented_ns if self.instrumented_ns else 0.0

    @property
    def tick_ns(self) -> float:
        """Estimated cost of one cycle-counter reading (instrumented less plain native run, per reading)."""
        ticks = sum(k["count"] for k in self.kinds.values())  # one reading each, one more after a call:
        ticks += sum(self.kinds.get(k, {}).get("count", 0) for k in ("kernel", "host callback", "invoke",
                                                                      "invoke_closure"))
        return (self.instrumented_ns - self.total_ns) / ticks if ticks else 0.0

    def to_dict(self) -> dict:
        return {"function": self.function, "items": self.items, "kinds": self.kinds, "phases": self.phases,
                "instrumented_ns": self.instrumented_ns, "cycles_per_ns": self.cycles_per_ns,
                "vm_share": self.vm_share, "tick_ns": self.tick_ns}

    def table(self) -> str:
        total = self.total_ns
        inst = self.instrumented_ns
        lines = [f"native profile of @{self.function} over {self.items} item(s): instrumented {inst / 1e3:.1f} us "
                 f"a pass, kernels {self.kernel_ns / 1e3:.1f} us, VM share {self.vm_share:.1%}; plain "
                 f"{total / 1e3:.1f} us a pass (~{self.tick_ns:.1f} ns a reading)",
                 f"{'kind (instrumented program)':<30} {'count':>8} {'us':>10} {'ns each':>9} {'% of pass':>9}"]
        for name, k in sorted(self.kinds.items(), key=lambda kv: -kv[1]["ns"]):
            each = k["ns"] / k["count"] if k["count"] else 0.0
            lines.append(f"{name:<30} {k['count']:>8.0f} {k['ns'] / 1e3:>10.1f} {each:>9.1f} "
                         f"{100 * k['ns'] / inst if inst else 0:>9.1f}")
        boundary = inst - sum(k["ns"] for k in self.kinds.values())
        lines.append(f"{'Python boundary (the rest)':<30} {'':>8} {boundary / 1e3:>10.1f} {'':>9} "
                     f"{100 * boundary / inst if inst else 0:>9.1f}")
        lines.append(f"{'boundary step (plain program)':<30} {'':>8} {'us':>10} {'':>9} {'% of pass':>9}")
        for name, v in self.phases.items():
            lines.append(f"{name:<30} {'':>8} {v / 1e3:>10.1f} {'':>9} {100 * v / total if total else 0:>9.1f}")
        return "\n".join(lines)

    __str__ = table


def native_profile(vm, items: list, name: str = "main", repeat: int = 5) -> NativeProfile:
    """Profile ``name`` over ``items`` (a list of argument tuples) on ``vm`` (a native
    ``VirtualMachine`` or an ``Executable``): ``repeat`` passes after a warm-up pass. Each item
    counts with its fastest plain run and its fastest instrumented run (a shared machine's
    preemptions land in the slower ones)."""
    from .native import NativeVM

    exe = vm.exe if hasattr(vm, "exe") else vm
    plain = getattr(vm, "_vm", None) or NativeVM(exe)
    inst = NativeVM(exe, instrumented=True)
    cycles = inst.program.cycles
    kinds = inst.program.layout.prof_kinds
    for args in items:  # warm-up: pools filled, caches warm
        plain.call(name, tuple(args))
        inst.call(name, tuple(args))
    best_plain: list = [None] * len(items)
    best_inst: list = [None] * len(items)
    c_total = ns_total = 0
    for _ in range(repeat):
        for i, args in enumerate(items):
            phases: dict = {}
            plain.call(name, tuple(args), phases=phases)
            if best_plain[i] is None or sum(phases.values()) < sum(best_plain[i].values()):
                best_plain[i] = phases
            for k in range(len(inst.ops)):
                inst.ops[k] = 0
            c0, t0 = cycles(), perf_counter_ns()
            inst.call(name, tuple(args))
            c, t = cycles() - c0, perf_counter_ns() - t0
            c_total, ns_total = c_total + c, ns_total + t
            if best_inst[i] is None or c < best_inst[i][0]:
                best_inst[i] = (c, list(inst.ops))
    rate = c_total / ns_total if ns_total else 1.0
    out: dict = {}
    for _, ops in best_inst:
        for k, kind in enumerate(kinds):
            count, cyc = ops[2 * k], ops[2 * k + 1]
            if count or cyc:
                entry = out.setdefault(kind, {"count": 0, "ns": 0.0})
                entry["count"] += count
                entry["ns"] += cyc / rate
    phases_sum: dict = {}
    for phases in best_plain:
        for k, v in phases.items():
            phases_sum[k] = phases_sum.get(k, 0) + v
    return NativeProfile(name, len(items), out, phases_sum, sum(c for c, _ in best_inst) / rate, rate)


__all__ = ["NativeProfile", "native_profile"]
