"""``nimble-run``: run a saved executable on inputs from .npy / .npz files.

    nimble-run model.nimble --input x=x.npy [--input name=file.npy ...] [--output out.npz] [--profile]
    nimble-run model.nimble --inputs inputs.npz
    nimble-run model.onnx --input input_ids=ids.npy        # imported, compiled and cached
    nimble-run model.nimble --input x.npy                  # a function of one parameter: no name needed

Inputs are matched to the function's parameters by name (``--input name=file.npy``) or, for a
.npz, by its array names (else in order); a function of one parameter takes one ``--input FILE``.
Outputs go to an .npz under the model's output names (ONNX graph outputs; ``out0``, ``out1``, ...
otherwise) or are summarised on stdout. An .onnx model is compiled once per model content,
nimble version, host and records file, and the executable cached under ``$NIMBLE_CACHE_DIR``
(``--no-cache`` recompiles). ``--histogram FILE`` writes the shapes each dispatch table met, for
``nimble-tune --buckets-from``. Files are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import settings
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
            if len(params) != 1 or len(args.input) != 1:
                raise NimbleError(f"--input: expected NAME=FILE.npy (the function takes {list(params)}), got {spec!r}")
            name, path = params[0], spec
        named[name] = np.load(path, allow_pickle=False)
    if all(p in named for p in params):
        return [named[p] for p in params]
    if len(ordered) == len(params) and not args.input:
        return ordered
    missing = [p for p in params if p not in named]
    unknown = [n for n in named if n not in params]
    hint = f"; got inputs named {unknown}" if unknown else ""
    raise NimbleError(f"missing inputs {missing}: the function takes {list(params)}{hint} "
                      f"(e.g. --input {missing[0]}=FILE.npy)")


ONNX_EXTRA = ("reading an .onnx model needs the onnx package, which is not installed: "
              "pip install 'nimble[onnx]' (in a checkout: pip install -e '.[onnx]')")


def require_onnx() -> None:
    """A ``NimbleError`` naming the ``onnx`` extra when the onnx package is missing."""
    if importlib.util.find_spec("onnx") is None:
        raise NimbleError(ONNX_EXTRA)


def onnx_cache_path(model_path: str, records: str | None) -> Path:
    """Where the executable compiled from ``model_path`` (with ``records``) is cached: keyed by the
    model's bytes, nimble's version, this host's CPU, the thread count (records are chosen per
    thread count), whether AMX tiles may be used (``NIMBLE_AMX``) and the records file's size and mtime."""
    from ..version import __version__
    from ..codegen.jit import cache_dir, host

    h = hashlib.sha256(Path(model_path).read_bytes())
    for part in (__version__, host().key, str(records), str(settings.num_threads()), f"amx={settings.current().amx}"):
        h.update(b"\0" + part.encode())
    if records and "://" not in records and Path(records).is_file():
        st = Path(records).stat()
        h.update(f"\0{st.st_size}:{st.st_mtime_ns}".encode())
    return cache_dir().parent / "executables" / f"{Path(model_path).stem}-{h.hexdigest()[:20]}.nimble"


def load_onnx_executable(model_path: str, records: str | None, use_cache: bool = True):
    """An executable of an ONNX model, its graph output names in ``metadata["output_names"]``;
    compiled once and cached (see ``onnx_cache_path``)."""
    from ..vm.executable import Executable

    require_onnx()
    cached = onnx_cache_path(model_path, records)
    if use_cache and cached.is_file():
        print(f"nimble-run: using the executable compiled before: {cached}", file=sys.stderr)
        return Executable.load(cached)
    import onnx

    from ..frontend import from_onnx
    from ..vm.compiler import compile as compile_module

    model = onnx.load(model_path)
    t0 = time.perf_counter()
    exe = compile_module(from_onnx(model), records=records)
    exe.metadata["output_names"] = [o.name for o in model.graph.output]
    if use_cache:
        cached.parent.mkdir(parents=True, exist_ok=True)
        exe.save(cached)
    print(f"nimble-run: compiled {model_path} in {time.perf_counter() - t0:.1f} s"
          + (f" (cached: {cached})" if use_cache else ""), file=sys.stderr)
    return exe


def output_names(exe, count: int) -> list[str]:
    """The model's output names when it has one per output, else ``out0``, ``out1``, ..."""
    names = list(exe.metadata.get("output_names") or [])
    if len(names) == count and len(set(names)) == count and all(n.isidentifier() for n in names):
        return names
    return [f"out{i}" for i in range(count)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nimble-run", description=__doc__.splitlines()[0])
    p.add_argument("executable", help="a file written by Executable.save, or an .onnx model")
    p.add_argument("--function", default="main", help="function of the executable to run (default main)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="one input by parameter name (repeat per input); a one-parameter function takes --input FILE.npy")
    p.add_argument("--inputs", metavar="FILE.npz", help="all inputs in one .npz")
    p.add_argument("--output", metavar="FILE.npz", help="write the outputs here")
    p.add_argument("--repeat", type=int, default=1, help="run this many times (timing)")
    p.add_argument("--profile", action="store_true", help="print the per-kernel profile of one run")
    p.add_argument("--histogram", metavar="FILE.json", help="write the dispatch tables' shape histogram")
    p.add_argument("--records", metavar="PATH_OR_URL",
                   help="tuning records to compile an .onnx model with (default: the records shipped for this CPU)")
    p.add_argument("--no-cache", action="store_true", help="compile an .onnx model again instead of using the cache")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nimble-run``; returns the exit status."""
    p = build_parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    from ..vm.executable import Executable
    from ..vm.machine import VirtualMachine

    try:
        if args.executable.endswith(".onnx"):  # an ONNX model: import and compile it first (once)
            exe = load_onnx_executable(args.executable, args.records, use_cache=not args.no_cache)
        else:
            exe = Executable.load(args.executable)
        func = exe.functions[exe.function_index(args.function)]
        inputs = _load_inputs(args, func.params)
        vm = VirtualMachine(exe)
        times = []
        for _ in range(max(args.repeat, 1)):
            t0 = time.perf_counter()
            out = vm.invoke(args.function, *inputs)
            times.append(time.perf_counter() - t0)
        if args.profile:
            print(vm.profile(*inputs, name=args.function))
        outs: list = []
        _flatten(out, outs)
        names = output_names(exe, len(outs))
        if args.output:
            np.savez(args.output, **dict(zip(names, outs)))
        for name, o in zip(names, outs):
            print(f"{name}: shape {o.shape} {o.dtype}" + (f" mean {o.mean():.6g}" if o.size and o.dtype.kind == "f" else ""))
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
