"""The CUDA target on a GPU machine, in one run (< 8 minutes): tests, correctness, dense timings.

    python scripts/gpu_check.py --out gpu_check.md

1. runs tests/codegen/test_cuda_codegen.py (its GPU test runs here instead of skipping);
2. every CUDA template x configs (fallback, first, last, random) x sizes 1, primes and tile
   +- 1 on the GPU vs the template's numpy reference (one nvcc call per template);
3. dense (n, 768, 3072) for n in 1, 16, 128, 512: the fallback and the fastest of a small
   search over sampled configs (CUDA events, device-resident arguments), beside torch.matmul
   (cuBLAS) on the same GPU when torch with CUDA is installed.
Tables go to ``--out`` (markdown) and stdout. Each case records its own error and the run goes
on; a time budget (``--budget``, seconds) skips what is left of the search when it runs out.
"""
from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nimble.codegen import cuda_runtime
from nimble.codegen.cuda import translation_unit
from nimble.codegen.nvcc import compile_cuda, find_nvcc, nvcc_version
from nimble.schedules.cuda_template import CudaTemplateKernel
from nimble.schedules.dense import dense_signature
from nimble.schedules.injective import injective_signature
from nimble.schedules.reduce import reduce_signature
from nimble.schedules.registry import get_template
from nimble.schedules.softmax import softmax_signature

SIZES = (1, 2, 3, 7, 13, 31, 63, 64, 65, 127, 128, 129)  # 1, primes, tiles +- 1
CASES = [  # (template, signature, the dim that takes the sizes, the other dims)
    ("dense", dense_signature("n", 37, 40), "n", {}),
    ("dense", dense_signature("n", 768, 3072, bias=True, epilogue=["gelu"]), "n", {}),
    ("dense", dense_signature("n", 64, 96, epilogue=["residual"]), "n", {}),
    ("injective", injective_signature([("n", 768), (768,)], ["add", "gelu"]), "n", {}),
    ("injective", injective_signature([("b", 12, "s", 64)], ["transpose"], perm=[0, 2, 1, 3]), "s", {"b": 2}),
    ("injective", injective_signature([("n", 12)], ["reshape"], newshape=["n", 3, 4]), "n", {}),
    ("softmax", softmax_signature(("b", 12, "s")), "s", {"b": 2}),
    ("softmax", softmax_signature(("n", 129)), "n", {}),
    ("reduce", reduce_signature(("n", 768), [1], "mean"), "n", {}),
    ("reduce", reduce_signature(("n", 7, "m"), [0, 2], "max", keepdims=True), "m", {"n": 3}),
]


def configs(t, sig, count: int, rng: random.Random) -> list:
    space = t.space(sig)
    out = [t.fallback(sig, space), space.get(0), space.get(len(space) - 1)]
    out += [space.random(rng) for _ in range(count)]
    return list(dict.fromkeys(out))


def load_all(device, t, sig, cfgs, tag: str):
    """CudaTemplateKernels of ``cfgs``, compiled in one nvcc call."""
    kernels = [t.kernel_source(sig, c, name=f"{tag}_{k}") for k, c in enumerate(cfgs)]
    cubin = compile_cuda(translation_unit(kernels), arch=device.arch)
    return [CudaTemplateKernel(t, sig, k, device.load(cubin, k)) for k in kernels]


def check_templates(device, args, rng) -> list:
    rows = []
    for case, (name, sig, dim, fixed) in enumerate(CASES):
        t = get_template(name, "cuda")
        cfgs = configs(t, sig, args.configs, rng)
        try:
            kernels = load_all(device, t, sig, cfgs, f"check{case}")
        except Exception as exc:  # noqa: BLE001 - recorded in the table
            rows.append((name, str(sig.args), "all", "-", f"BUILD ERROR {type(exc).__name__}: {exc}"[:300]))
            continue
        for cfg, kernel in zip(cfgs, kernels):
            bad, worst, err = [], 0.0, ""
            for size in SIZES:
                dims = dict(fixed, **{dim: size})
                inputs = t.random_inputs(sig, dims, np.random.default_rng(size))
                try:
                    got = kernel(*inputs)
                    ref = t.reference(sig, inputs)
                    for g, r in zip(got, ref):
                        diff = float(np.max(np.abs(g - r) / (1e-3 + np.abs(r)))) if r.size else 0.0
                        worst = max(worst, diff)
                        if not np.allclose(g, r, rtol=1e-3, atol=1e-3):
                            bad.append(size)
                except Exception as exc:  # noqa: BLE001
                    bad.append(size)
                    err = f"{type(exc).__name__}: {exc}"[:200]
            status = "ok" if not bad else f"FAIL at {dim}={bad} {err}"
            rows.append((name, str(sig.args), str(cfg.to_json()), f"{worst:.1e}", status))
    return rows


def torch_matmul_seconds(n: int, k: int, m: int):
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA"
    x = torch.randn(n, k, device="cuda")
    w = torch.randn(m, k, device="cuda")
    for _ in range(5):
        torch.matmul(x, w.t())
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(50):
        torch.matmul(x, w.t())
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / 50, torch.cuda.get_device_name()


def bench_dense(device, args, rng, deadline: float) -> list:
    t = get_template("dense", "cuda")
    sig = dense_signature("n", 768, 3072)
    cfgs = configs(t, sig, args.search, rng)
    kernels = load_all(device, t, sig, cfgs, "bench")
    rows = []
    for n in (1, 16, 128, 512):
        x, w = t.random_inputs(sig, {"n": n}, np.random.default_rng(n))
        ref = t.reference(sig, [x, w])[0]
        timed = []
        for pos, (cfg, kernel) in enumerate(zip(cfgs, kernels)):
            if pos > 0 and time.monotonic() > deadline:
                break  # the fallback (first) is always timed
            try:
                secs = kernel.launcher.benchmark([x, w], {v: n for v in kernel.kernel.shape_vars}, number=args.number)
                timed.append((secs, cfg, kernel))
            except Exception as exc:  # noqa: BLE001
                print(f"dense n={n} {cfg.to_json()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not timed:
            rows.append((n, "-", "-", "-", "-", "no config ran"))
            continue
        fallback = timed[0][0] if timed[0][1] == cfgs[0] else float("nan")
        best_s, best_cfg, best_kernel = min(timed, key=lambda r: r[0])
        correct = np.allclose(best_kernel(x, w)[0], ref, rtol=1e-3, atol=1e-3)
        torch_s, note = torch_matmul_seconds(n, 768, 3072)
        ratio = f"{torch_s / best_s:.2f}" if torch_s else note
        rows.append((n, f"{fallback * 1e6:.1f}", f"{best_s * 1e6:.1f} ({len(timed)} tried)",
                     f"{torch_s * 1e6:.1f}" if torch_s else "-", ratio,
                     f"{'ok' if correct else 'WRONG'} {best_cfg.to_json()}"))
    return rows


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="gpu_check.md")
    ap.add_argument("--configs", type=int, default=3, help="random configs per case besides fallback/first/last")
    ap.add_argument("--search", type=int, default=40, help="sampled dense configs to time per n")
    ap.add_argument("--number", type=int, default=20, help="launches per timing")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--skip-tests", action="store_true")
    args = ap.parse_args()
    t0 = time.monotonic()
    deadline = t0 + args.budget
    rng = random.Random(15)
    report = [f"# nimble CUDA check ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()})", ""]
    device = cuda_runtime.default_device()
    nvcc = find_nvcc()
    report += [(f"device: {device.name}, {device.arch}, launcher {device.launcher}; nvcc: "
                f"{nvcc_version(nvcc) if nvcc else 'absent'}"), ""]
    print("\n".join(report), flush=True)
    if not args.skip_tests:
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/codegen/test_cuda_codegen.py"],
                                  check=False, capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1], timeout=240)
            tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
        except subprocess.TimeoutExpired:
            tail = "the tests ran past 240 s and were stopped"
        report += ["## tests/codegen/test_cuda_codegen.py", "", "```", tail, "```", ""]
        print(tail, flush=True)
    rows = check_templates(device, args, rng)
    n_ok = sum(r[-1] == "ok" for r in rows)
    report += [(f"## templates vs numpy at sizes {SIZES}: {n_ok} of {len(rows)} configs ok "
                f"({time.monotonic() - t0:.0f} s)"), "",
               table(("template", "signature", "config", "max rel err", "status"), rows), ""]
    print(report[-3], flush=True)
    bench = bench_dense(device, args, rng, deadline - 60)
    report += ["## dense (n, 768) x (3072, 768)^T, microseconds per call", "",
               table(("n", "nimble fallback", "nimble best", "torch.matmul", "torch / nimble", "best config"), bench),
               "", f"total {time.monotonic() - t0:.0f} s"]
    text = "\n".join(report) + "\n"
    Path(args.out).write_text(text)
    print(text)
    return 0 if n_ok == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
