"""This CPU's fp32 FMA peak (GFLOP/s a core) and copy bandwidth: the floors benchmarks compare with.

    python scripts/cpu_peak.py            # one line per measure, 1 thread

The peak: a JIT-compiled loop of 12 independent FMA chains, each as wide as the widest vector
register LLVM targets here (so the floor for the ISA the kernels use), timed for ~0.2 s, best of 5.
The bandwidth: numpy copies of 1 MiB (cache) and 256 MiB (memory), best of 5, counted as read + write.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time

import llvmlite.binding as llvm
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import cpu_name  # noqa: E402

CHAINS = 12


def _fma_kernel(lanes: int):
    vec = f"<{lanes} x float>"
    phis = "\n".join(f"  %a{i} = phi {vec} [ %init, %entry ], [ %b{i}, %loop ]" for i in range(CHAINS))
    fmas = "\n".join(f"  %b{i} = call {vec} @llvm.fma.v{lanes}f32({vec} %a{i}, {vec} %m, {vec} %c)"
                     for i in range(CHAINS))
    sums = [f"%b{i}" for i in range(CHAINS)]
    adds, k = [], 0
    while len(sums) > 1:
        adds.append(f"  %s{k} = fadd {vec} {sums[0]}, {sums[1]}")
        sums = sums[2:] + [f"%s{k}"]
        k += 1
    ir = f"""
declare {vec} @llvm.fma.v{lanes}f32({vec}, {vec}, {vec})
define float @fma_loop(i64 %n, float %x) {{
entry:
  %i0 = insertelement {vec} undef, float %x, i32 0
  %init = shufflevector {vec} %i0, {vec} undef, <{lanes} x i32> zeroinitializer
  %m = fmul {vec} %init, %init
  %c = fadd {vec} %init, %init
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
{phis}
{fmas}
  %next = add i64 %i, 1
  %more = icmp ult i64 %next, %n
  br i1 %more, label %loop, label %exit
exit:
{chr(10).join(adds)}
  %r = extractelement {vec} {sums[0]}, i32 0
  ret float %r
}}
"""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                      opt=3)
    mod = llvm.parse_assembly(ir)
    mod.verify()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    fn = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64, ctypes.c_float)(engine.get_function_address("fma_loop"))
    return fn, engine


def fma_peak_gflops() -> tuple[float, int]:
    """(GFLOP/s on one core, vector lanes) of independent fp32 FMA chains."""
    features = llvm.get_host_cpu_features()
    lanes = 16 if features.get("avx512f") else 8 if features.get("avx") else 4
    fn, _engine = _fma_kernel(lanes)
    n = 1 << 16
    while True:  # size one run to ~0.2 s
        t0 = time.perf_counter()
        fn(n, 1.0000001)
        dt = time.perf_counter() - t0
        if dt > 0.2:
            break
        n *= 2
    best = min(_timed(fn, n) for _ in range(5))
    return n * CHAINS * lanes * 2 / best / 1e9, lanes


def _timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn(n, 1.0000001)
    return time.perf_counter() - t0


def copy_gbs(nbytes: int) -> float:
    """Bytes read + written per second by numpy's copy of ``nbytes``."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    reps = max(1, (64 << 20) // nbytes)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.copyto(dst, src)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * nbytes / best / 1e9


def main() -> None:
    peak, lanes = fma_peak_gflops()
    print(f"CPU: {cpu_name()}, 1 thread")
    print(f"fp32 FMA peak: {peak:.1f} GFLOP/s a core ({CHAINS} chains of {lanes}-wide FMA)")
    print(f"copy bandwidth: {copy_gbs(1 << 20):.1f} GB/s at 1 MiB, {copy_gbs(256 << 20):.1f} GB/s at 256 MiB")


if __name__ == "__main__":
    main()
