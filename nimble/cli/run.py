"""``nimble-run``: run a saved executable on inputs from .npy / .npz files.

    nimble-run model.nimble --input x=x.npy [--input name=file.npy ...] [--output out.npz] [--profile]
    nimble-run model.nimble --inputs inputs.npz
    nimble-run model.onnx --input input_ids=ids.npy        # imported and compiled on the fly

Inputs are matched to the function's parameters by name (``--input name=file.npy``) or, for a
.npz, by its array names (else in order). Outputs go to an .npz (``out0``, ``out1``, ... for a
tuple) or are summarised on stdout. ``--histogram FILE`` writes the shapes each dispatch table
met, for ``nimble-tune --buckets-from``. Files are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import numpy as np

from ..errors import NimbleError


def _flatten(value, out: list) -> None:
    if isinstance(value, (tuple, list)):
        for v in value:
            _flatten(v, out)
    elif hasattr(value, "fields"):
        for v in value.fields:
            _flatten(v, out)
    else:
        out.append(np.asarray(value))


def _load_inputs(args, params: tuple) -> list:
    named: dict = {}
    ordered: list = []
    if args.inputs:
        with np.load(args.inputs, allow_pickle=False) as data:
            for k in data.files:
                named[k] = data[k]
                ordered.append(data[k])
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep:
            raise NimbleError(f"--input: expected NAME=FILE.npy, got {spec!r}")
        named[name] = np.load(path, allow_pickle=False)
    if all(p in named for p in params):
        return [named[p] for p in params]
    if len(ordered) == len(params) and not args.input:
        return ordered
    missing = [p for p in params if p not in named]
    raise NimbleError(f"missing inputs {missing}: the function takes {list(params)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nimble-run``; returns the exit status."""
    p = argparse.ArgumentParser(prog="nimble-run", description=__doc__.splitlines()[0])
    p.add_argument("executable", help="a file written by Executable.save, or an .onnx model")
    p.add_argument("--function", default="main")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--inputs", metavar="FILE.npz", help="all inputs in one .npz")
    p.add_argument("--output", metavar="FILE.npz", help="write the outputs here")
    p.add_argument("--repeat", type=int, default=1, help="run this many times (timing)")
    p.add_argument("--profile", action="store_true", help="print the per-kernel profile of one run")
    p.add_argument("--histogram", metavar="FILE.json", help="write the dispatch tables' shape histogram")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    from ..vm.executable import Executable
    from ..vm.machine import VirtualMachine

    try:
        if args.executable.endswith(".onnx"):  # an ONNX model: import and compile it first
            from ..frontend import from_onnx
            from ..vm.compiler import compile as compile_module

            exe = compile_module(from_onnx(args.executable))
        else:
            exe = Executable.load(args.executable)
        func = exe.functions[exe.function_index(args.function)]
        inputs = _load_inputs(args, func.params)
        vm = VirtualMachine(exe)
        import time

        times = []
        for _ in range(max(args.repeat, 1)):
            t0 = time.perf_counter()
            out = vm.invoke(args.function, *inputs)
            times.append(time.perf_counter() - t0)
        if args.profile:
            print(vm.profile(*inputs, name=args.function))
        outs: list = []
        _flatten(out, outs)
        if args.output:
            np.savez(args.output, **{f"out{i}": o for i, o in enumerate(outs)})
        for i, o in enumerate(outs):
            print(f"out{i}: shape {o.shape} {o.dtype}" + (f" mean {o.mean():.6g}" if o.size and o.dtype.kind == "f" else ""))
        print(f"time: median {sorted(times)[len(times) // 2] * 1e3:.3f} ms over {len(times)} run(s)")
        if args.histogram:
            with open(args.histogram, "w", encoding="utf-8") as f:
                json.dump({k: {str(n): c for n, c in v.items()} for k, v in vm.shape_histogram().items()}, f, indent=1)
    except (NimbleError, OSError, ValueError) as exc:
        print(f"nimble-run: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
