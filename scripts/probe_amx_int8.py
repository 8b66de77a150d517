"""Probe: an AMX tile GEMM (uint8 x int8 -> int32) against nimble's dense_integer template (VNNI), same process.

Not used by nimble: it measures what Intel AMX (``tdpbusd`` on 16 x 64-byte tiles) would give the int8 dense
layers on this CPU before the compiler grows a path for it. The kernel is hand-written LLVM IR through llvmlite
(the ``*.internal`` tile intrinsics; LLVM inserts the tile configuration), 16 rows by 4 x 16 columns a block, k
fully unrolled, weights packed as the template packs them with 16 columns a block ([m/16, k/4, 16, 4]). Linux asks
each process to request the tile state first (``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``). Shapes:
n a multiple of 16, k of 64, m of 64. Results are checked against numpy exactly.

    python scripts/probe_amx_int8.py            # BERT-base shapes at n = 32 and 128, 1 thread
"""
from __future__ import annotations

import ctypes
import os
import sys

import numpy as np

os.environ.setdefault("NIMBLE_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import median_time  # noqa: E402

ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA, SYS_ARCH_PRCTL = 0x1023, 18, 158
COLS = 4  # 16-column blocks a kernel call


def amx_ir(k: int, m: int) -> str:
    k4, steps = k // 4, k // 64
    lines = ["declare x86_amx @llvm.x86.tileloadd64.internal(i16, i16, ptr, i64)",
             "declare x86_amx @llvm.x86.tdpbusd.internal(i16, i16, i16, x86_amx, x86_amx, x86_amx)",
             "declare void @llvm.x86.tilestored64.internal(i16, i16, ptr, i64, x86_amx)",
             "declare x86_amx @llvm.x86.tilezero.internal(i16, i16)",
             "define internal void @block(ptr %a, ptr %b, ptr %c) noinline {"]
    lines += [f"  %c{j}_0 = call x86_amx @llvm.x86.tilezero.internal(i16 16, i16 64)" for j in range(COLS)]
    for s in range(steps):
        lines += [f"  %ap{s} = getelementptr i8, ptr %a, i64 {s * 64}",
                  f"  %a{s} = call x86_amx @llvm.x86.tileloadd64.internal(i16 16, i16 64, ptr %ap{s}, i64 {k})"]
        for j in range(COLS):
            lines += [f"  %bp{s}_{j} = getelementptr i8, ptr %b, i64 {(j * k4 + 16 * s) * 64}",
                      f"  %b{s}_{j} = call x86_amx @llvm.x86.tileloadd64.internal(i16 16, i16 64, ptr %bp{s}_{j}, i64 64)",
                      f"  %c{j}_{s + 1} = call x86_amx @llvm.x86.tdpbusd.internal(i16 16, i16 64, i16 64, "
                      f"x86_amx %c{j}_{s}, x86_amx %a{s}, x86_amx %b{s}_{j})"]
    for j in range(COLS):
        lines += [f"  %cp{j} = getelementptr i8, ptr %c, i64 {j * 64}",
                  f"  call void @llvm.x86.tilestored64.internal(i16 16, i16 64, ptr %cp{j}, i64 {m * 4}, "
                  f"x86_amx %c{j}_{steps})"]
    lines += ["  ret void", "}",
              "define void @gemm(ptr %x, ptr %wp, ptr %out, i64 %n) {",
              "entry:", "  br label %rows",
              "rows:", "  %i = phi i64 [0, %entry], [%i1, %next]", "  br label %cols",
              "cols:", "  %jb = phi i64 [0, %rows], [%jb1, %cols]",
              f"  %xo = mul i64 %i, {k}", "  %ap = getelementptr i8, ptr %x, i64 %xo",
              f"  %bo = mul i64 %jb, {COLS * k4 * 64}", "  %bp = getelementptr i8, ptr %wp, i64 %bo",
              f"  %co1 = mul i64 %i, {m * 4}", f"  %co2 = mul i64 %jb, {COLS * 64}", "  %co = add i64 %co1, %co2",
              "  %cp = getelementptr i8, ptr %out, i64 %co",
              "  call void @block(ptr %ap, ptr %bp, ptr %cp)",
              "  %jb1 = add i64 %jb, 1", f"  %cdone = icmp eq i64 %jb1, {m // (16 * COLS)}",
              "  br i1 %cdone, label %next, label %cols",
              "next:", "  %i1 = add i64 %i, 16", "  %rdone = icmp sge i64 %i1, %n",
              "  br i1 %rdone, label %exit, label %rows",
              "exit:", "  ret void", "}"]
    return "\n".join(lines)


def main() -> int:
    import llvmlite.binding as llvm

    from nimble.schedules import get_template
    from nimble.schedules.dense_integer import dense_integer_signature

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    features = llvm.get_host_cpu_features().flatten()
    if "+amx-int8" not in features.split(","):
        print(f"this CPU ({llvm.get_host_cpu_name()}) has no AMX-INT8: nothing to probe")
        return 0
    if ctypes.CDLL(None, use_errno=True).syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
        print("the OS refused the AMX tile state (arch_prctl): nothing to probe")
        return 0
    target = llvm.Target.from_default_triple().create_target_machine(cpu=llvm.get_host_cpu_name(), features=features,
                                                                    opt=3)
    template = get_template("dense_integer")
    rng = np.random.default_rng(0)
    print("| n x k x m | AMX ms | AMX GOP/s | dense_integer (VNNI) ms | GOP/s | AMX speedup |")
    print("|---|---|---|---|---|---|")
    engines = []
    for n, k, m in [(32, 768, 768), (128, 768, 768), (32, 768, 3072), (128, 768, 3072), (32, 3072, 768),
                    (128, 3072, 768)]:
        module = llvm.parse_assembly(amx_ir(k, m))
        module.verify()
        engine = llvm.create_mcjit_compiler(module, target)
        engine.finalize_object()
        engines.append(engine)
        gemm = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
            engine.get_function_address("gemm"))
        x = rng.integers(0, 256, (n, k)).astype(np.uint8)
        w = rng.integers(-128, 128, (m, k)).astype(np.int8)
        wp = np.ascontiguousarray(w.reshape(m // 16, 16, k // 4, 4).transpose(0, 2, 1, 3))
        out = np.empty((n, m), np.int32)
        gemm(x.ctypes.data, wp.ctypes.data, out.ctypes.data, n)
        np.testing.assert_array_equal(out, x.astype(np.int32) @ w.astype(np.int32).T)
        amx = 1e3 * median_time(lambda: gemm(x.ctypes.data, wp.ctypes.data, out.ctypes.data, n), 0.2)
        sig = dense_integer_signature("n", k, m)
        kernel = template.build(sig, template.fallback(sig, template.space(sig), {"n": n}))
        prepared = kernel.prepare_inputs([x, w, np.array(0, np.uint8)])
        vnni = 1e3 * median_time(lambda: kernel.kernel(*prepared), 0.2)
        ops = 2 * n * k * m / 1e6
        print(f"| {n} x {k} x {m} | {amx:.3f} | {ops / amx:.0f} | {vnni:.3f} | {ops / vnni:.0f} | {vnni / amx:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
