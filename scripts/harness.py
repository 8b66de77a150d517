"""What the benchmark scripts share: the CPU's name, a median timer, and running a script's ``--child`` once per thread count.

    from harness import median_time, run_children
    results = run_children(__file__, [1, 2], ["--quick"])   # {threads: the child's last stdout line, as JSON}

Each child runs in its own process with ``NIMBLE_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` set
to its thread count, so nimble's kernels and numpy's BLAS use the same number of threads.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


SETTLE_S = 0.05


def settle() -> None:
    """Pause before a system's timed pass: the previous system's thread pool may still be spinning (ONNX
    Runtime's workers spin after a run) and would hold a core during the next pass. At 2 threads on 2 cores,
    timing GPT-2 right after an ONNX Runtime pass cost nimble 10-15% (127.8 ms against 110.0 alone; with a
    50 ms pause, 114.7 ms); the pause is not timed."""
    time.sleep(SETTLE_S)


def forget_setup_load() -> None:
    """Clear the nimble pool's contention mark before timing starts. Setting up the peers (an ONNX export,
    OpenVINO's compile, sessions that start thread pools) keeps the cores busy for a while; the pool sees that as
    an oversubscribed machine and runs its regions serially for seconds after (LSTM at 2 threads: 84 ms in the
    benchmark, 31 ms alone). A machine that stays busy (``--busy``) marks it again within milliseconds."""
    from nimble.codegen import parallel

    parallel.set_contention_watch(False)
    parallel.set_contention_watch(True)


def median_time(fn, min_time: float, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` over at least 5 calls, more (up to 200) until ``min_time`` has passed."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def thread_env(threads: int) -> dict:
    """This process's environment with every thread-count variable set to ``threads``."""
    n = str(threads)
    return dict(os.environ, NIMBLE_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, OMP_NUM_THREADS=n)


def run_children(script: str, thread_counts, args=()) -> dict:
    """Run ``script --child *args`` once per thread count; each child prints its result as JSON on its last line."""
    results = {}
    for t in thread_counts:
        out = subprocess.run([sys.executable, script, "--child", *args], env=thread_env(t), capture_output=True,
                             text=True)
        if out.returncode != 0:
            sys.exit(f"benchmark at {t} thread(s) failed:\n{out.stderr}")
        results[t] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def cpu_name() -> str:
    """The CPU's model name and LLVM's name for its microarchitecture."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        import llvmlite.binding as llvm

        return f"{model} ({llvm.get_host_cpu_name()})"
    except ImportError:
        return model
