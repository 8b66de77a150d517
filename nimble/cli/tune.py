"""``nimble-tune``: tune operator templates per shape bucket into a records database.

    nimble-tune --op dense --shape n,768,3072 --bucket n=1:512 --trials 200
    nimble-tune --op batch_matmul --shape 12,n,64,n --bucket n=1:8,9:32,33:128 --tuner random
    nimble-tune --tasks tasks.json --db postgresql+psycopg://host/tuning
    nimble-tune --tasks tasks.json --db postgresql+psycopg://host/tuning --runner ray --address auto

``--shape`` gives the op's dims (ints, or names for symbolic dims): dense ``n,k,m`` (x (n, k),
w (m, k)), matmul ``n,k,m`` (x (n, k), y (k, m)), batch_matmul ``b,n,k,m`` (x (b, n, k),
y (b, m, k), or (b, k, m) with attr ``transpose_b`` false), softmax / layer_norm / reduce
the input's shape, take ``vocab,dim,i0,...`` (table (vocab, dim), indices (i0, ...)).
``--attrs`` is a JSON object of template attrs (dense: ``bias``, ``epilogue``, ``weight``;
layer_norm: ``eps``; reduce: ``axes`` (required), ``op``, ``keepdims``; take: ``idx_dtype``).
Other templates (injective ...) are tuned through ``--tasks`` with a signature. ``--bucket DIM=SPEC`` (once per
symbolic dim): ``n=1:512`` is power-of-two buckets 1, 2, 3..4, ..., 257..512; ``n=1:8,9:32``
explicit inclusive ranges; ``n=1..512`` one bucket; ``n=64`` one value. One task per bucket.

``--model MODULE:FUNCTION`` (or an ``.onnx`` file): every templated group of the model, as
``nimble.vm.tasks.extract_tasks`` lists them (dense and conv2d groups; lone softmax, layer_norm,
batch_matmul, attention, lstm_cell, gru_cell and sum / mean / max / min calls), one task per bucket.

``--tasks FILE``: a JSON list of ``{"op", "shape", "attrs", "dtype", "buckets"}`` or
``{"template", "signature": {"args": [{"shape", "dtype"}], "attrs"}, "buckets"}`` objects
(``buckets``: a list of bucket specs as above).

``--budget 20m`` (or ``--time-budget SECONDS``) tunes for about that long in all, spread over the
tasks by their share of the model's time (``nimble.tuner.budget``), resuming from the records.

``--db`` defaults to ``tuning_logs/<target>.db``. ``--runner ray`` builds and measures on a Ray
cluster (``--address auto`` or ``ray://head:10001``; none: ``RAY_ADDRESS`` or a local cluster;
see ``nimble.tuner.ray_runner``). Exit status: 0 when every task found a
working config, 1 on an error or when some task found none, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import NimbleError
from ..schedules.registry import Signature
from ..tuner.buckets import Bucket, BucketSpace, BucketSpec
from ..tuner.db import Database
from ..tuner.fingerprint import host_fingerprint
from ..tuner.measure import MeasureOptions
from ..tuner.task import Task
from ..tuner.tune import TuneSummary
from .busy import NOISE_THRESHOLD, probe_noise, record_noise
from .db import _table
from ..tuner.task import task_label  # noqa: F401 - part of this CLI's API
from .rounds import tune_each


@dataclass(frozen=True)
class OpSpec:
    """An op the CLI can tune: its template, what ``--shape`` lists, and a signature builder."""

    template: str
    dims: tuple[str, ...]  # names of the --shape entries; a trailing "..." allows more (any rank)
    signature: Callable[[tuple, str, dict], Signature]

    def check_rank(self, op: str, shape: tuple) -> None:
        fixed = tuple(d for d in self.dims if d != "...")
        ok = len(shape) >= len(fixed) if "..." in self.dims else len(shape) == len(fixed)
        if not ok:
            raise NimbleError(f"--shape for {op}: expected {'at least ' if '...' in self.dims else ''}"
                              f"{len(fixed)} dims {','.join(self.dims)}, got {shape}")


def _dense(shape, dtype, attrs) -> Signature:
    from ..schedules.dense import dense_signature

    n, k, m = shape
    return dense_signature(n, k, m, dtype=dtype, **attrs)


def _matmul(shape, dtype, attrs) -> Signature:
    n, k, m = shape
    return Signature.make([((n, k), dtype), ((k, m), dtype)], **attrs)


def _batch_matmul(shape, dtype, attrs) -> Signature:
    b, n, k, m = shape
    y = (b, m, k) if attrs.get("transpose_b", True) else (b, k, m)
    return Signature.make([((b, n, k), dtype), (y, dtype)], **attrs)


def _softmax(shape, dtype, attrs) -> Signature:
    from ..schedules.softmax import softmax_signature

    return softmax_signature(shape, dtype=dtype, **attrs)


def _layer_norm(shape, dtype, attrs) -> Signature:
    from ..schedules.layer_norm import layer_norm_signature

    return layer_norm_signature(shape, dtype=dtype, **attrs)


def _take(shape, dtype, attrs) -> Signature:
    from ..schedules.take import take_signature

    vocab, dim, *idx_shape = shape
    return take_signature(vocab, dim, idx_shape, **attrs)


def _reduce(shape, dtype, attrs) -> Signature:
    from ..schedules.reduce import reduce_signature

    if "axes" not in attrs:
        raise NimbleError('--attrs for reduce: expected "axes", e.g. \'{"axes": [1], "op": "sum"}\'')
    return reduce_signature(shape, **attrs)


OPS: dict[str, OpSpec] = {
    "dense": OpSpec("dense", ("n", "k", "m"), _dense),
    "matmul": OpSpec("matmul", ("n", "k", "m"), _matmul),
    "batch_matmul": OpSpec("batch_matmul", ("b", "n", "k", "m"), _batch_matmul),
    "softmax": OpSpec("softmax", ("d0", "..."), _softmax),
    "layer_norm": OpSpec("layer_norm", ("d0", "..."), _layer_norm),
    "take": OpSpec("take", ("vocab", "dim", "i0", "..."), _take),
    "reduce": OpSpec("reduce", ("d0", "..."), _reduce),
}


def parse_shape(text: str | Sequence) -> tuple:
    """``"n,768,3072"`` (or a JSON list) -> ``("n", 768, 3072)``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    shape = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if not (isinstance(item, int) and not isinstance(item, bool) and item >= 0) and \
                not (isinstance(item, str) and item.isidentifier()):
            raise NimbleError(f"--shape: expected ints and dim names separated by commas, got {text!r}")
        shape.append(item)
    return tuple(shape)


def parse_bucket_spec(text: str) -> BucketSpec:
    """One ``--bucket`` value: ``n=1:512`` (powers of two), ``n=1:8,9:32`` (ranges), ``n=1..512``, ``n=64``."""
    dim, sep, body = text.partition("=")
    dim, body = dim.strip(), body.strip()
    if not sep or not dim.isidentifier() or not body:
        raise NimbleError(f"--bucket: expected DIM=SPEC such as 'n=1:512' or 'n=1:8,9:32', got {text!r}")
    if ".." in body:
        return BucketSpec(dim, (Bucket.parse(f"{dim}={body}"),))
    if "," in body or ":" not in body or body.startswith("pow2:"):
        return BucketSpec.parse(f"{dim}={body}")
    lo, _, hi = body.partition(":")
    if not (lo.strip().isdigit() and hi.strip().isdigit()) or int(lo) > int(hi):
        raise NimbleError(f"--bucket: expected a range LO:HI with LO <= HI, got {text!r}")
    lo, hi = int(lo), int(hi)
    kept = [b for b in BucketSpec.powers_of_two(dim, hi).buckets if b.hi >= lo]
    kept[0] = Bucket(dim, max(lo, kept[0].lo), kept[0].hi)
    return BucketSpec(dim, tuple(kept))


def make_tasks(template: str, sig: Signature, target: str, bucket_texts: Sequence) -> list[Task]:
    """One task per bucket key of the cross product of ``bucket_texts`` (one spec per symbolic dim: its
    ``--bucket`` text or a ``BucketSpec``)."""
    specs = [t if isinstance(t, BucketSpec) else parse_bucket_spec(t) for t in bucket_texts]
    symbolic = set(sig.symbolic_dims)
    given = [s.dim for s in specs]
    extra = [d for d in given if d not in symbolic]
    if extra:
        raise NimbleError(f"--bucket: dims {extra} are not symbolic dims of the shape (those are {sorted(symbolic)})")
    missing = sorted(symbolic - set(given))
    if missing:
        raise NimbleError(f"--bucket: expected a bucket spec for each symbolic dim, missing {missing} "
                          f"(e.g. --bucket {missing[0]}=1:512)")
    if len(set(given)) != len(given):
        raise NimbleError(f"--bucket: expected one spec per dim, got dims {given}")
    keys = BucketSpace(tuple(specs)).keys() if specs else [None]
    return [Task(template, sig, target, key) if key is not None else Task(template, sig, target) for key in keys]


def op_signature(op: str, shape, dtype: str, attrs: dict) -> tuple[str, Signature]:
    """(template name, signature) of an entry of ``OPS``."""
    if op not in OPS:
        raise NimbleError(f"--op: expected one of {sorted(OPS)}, got {op!r}")
    spec = OPS[op]
    shape = parse_shape(shape)
    spec.check_rank(op, shape)
    try:
        return spec.template, spec.signature(shape, dtype, dict(attrs))
    except TypeError as exc:
        raise NimbleError(f"--attrs for {op}: {exc}") from None


def tasks_from_file(path: str, target: str) -> list[Task]:
    """The tasks of a ``--tasks`` JSON file (see the module docstring)."""
    with open(path, encoding="utf-8") as f:
        try:
            entries = json.load(f)
        except json.JSONDecodeError as exc:
            raise NimbleError(f"--tasks {path}: expected a JSON list of tasks, got invalid JSON: {exc}") from None
    if not isinstance(entries, list):
        raise NimbleError(f"--tasks {path}: expected a JSON list of tasks, got {type(entries).__name__}")
    tasks = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise NimbleError(f"--tasks {path}: entry {i}: expected an object, got {entry!r}")
        buckets = entry.get("buckets", [])
        buckets = [buckets] if isinstance(buckets, str) else list(buckets)
        if "op" in entry:
            template, sig = op_signature(entry["op"], entry.get("shape", ""), entry.get("dtype", "float32"),
                                         entry.get("attrs", {}))
        elif "template" in entry and isinstance(entry.get("signature"), dict):
            s = entry["signature"]
            sig = Signature.make([(a["shape"], a["dtype"]) for a in s.get("args", [])], **s.get("attrs", {}))
            template = entry["template"]
        else:
            raise NimbleError(f"--tasks {path}: entry {i}: expected 'op' and 'shape', or 'template' and 'signature'")
        tasks += make_tasks(template, sig, entry.get("target", target), buckets)
    return tasks


def _gflops(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def summary_table(summaries: Sequence[TuneSummary], noise: Sequence[float | None] | None = None) -> str:
    """One row per task; ``noise`` (per task, the median spread of its records' repeats) adds a
    column, and a speedup measured with noise above the threshold is marked ``?``."""
    noise = list(noise) if noise is not None else [None] * len(summaries)
    rows = []
    for s, z in zip(summaries, noise):
        doubt = "?" if z is not None and z > NOISE_THRESHOLD else ""
        rows.append((f"{s.workload.template} #{s.workload.short_hash}", s.bucket, s.trials, s.errors,
                     _gflops(s.fallback_gflops), _gflops(s.best_gflops),
                     "-" if s.speedup is None else f"{s.speedup:.2f}x{doubt}",
                     "-" if s.best_cost is None else f"{s.best_cost * 1e3:.4g}",
                     "-" if z is None else f"{z:.0%}"))
    headers = ("workload", "bucket", "trials", "errors", "fallback GFLOP/s", "best GFLOP/s", "speedup", "best ms",
               "noise")
    return _table(headers, rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nimble-tune", description="Tune nimble schedule templates per shape bucket.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--op", choices=sorted(OPS), help="operator to tune")
    what.add_argument("--tasks", metavar="FILE", help="JSON list of tasks (see the module docstring)")
    what.add_argument("--model", metavar="MODULE:FUNCTION",
                      help="tune every tunable kernel of a model: MODULE:FUNCTION (FUNCTION() returns a nimble "
                           "IRModule) or an .onnx file")
    p.add_argument("--buckets-from", metavar="HISTOGRAM.json",
                   help="choose n's buckets from traffic: vm.shape_histogram() output or {value: count}")
    p.add_argument("--max-buckets", type=int, default=4, help="with --buckets-from (default 4)")
    p.add_argument("--traffic-points", type=int, default=3, metavar="K",
                   help="with --buckets-from: time each config at up to K lengths drawn from the bucket's traffic "
                        "and rank configs by the traffic's weighted time (default 3); 0: at the bucket's top edge only")
    p.add_argument("--shape", help="dims of --op: ints and symbolic names, e.g. n,768,3072")
    p.add_argument("--bucket", action="append", default=[], metavar="DIM=SPEC",
                   help="buckets of a symbolic dim: n=1:512 (powers of two), n=1:8,9:32 (ranges), n=1..512 (one)")
    p.add_argument("--attrs", default="{}", metavar="JSON", help="template attrs, e.g. '{\"bias\": true}'")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--target", default="llvm")
    p.add_argument("--db", metavar="PATH_OR_URL", help="records database (default tuning_logs/<target>.db)")
    p.add_argument("--trials", type=int, default=200, help="configs measured per task and bucket, in all")
    p.add_argument("--budget", metavar="DURATION",
                   help="tune for about this long (90, 90s, 20m, 1h30m), spread over the tasks by their share of "
                        "the model's time (FLOPs x calls x bucket width), one batch at a time; ends within the "
                        "budget plus one measurement; --trials caps each task; records resume (--no-resume does "
                        "not apply)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS", help="the same as --budget, in seconds")
    p.add_argument("--tuner", default="xgb", choices=("xgb", "random", "grid"))
    p.add_argument("--batch", type=int, default=8, help="configs built and measured per batch")
    p.add_argument("--early-stopping", type=int, metavar="N", help="stop a task after N trials without improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip configs this host already measured (default on)")
    p.add_argument("--number", type=int, default=1, help="calls per repeat (raised to reach --min-repeat-ms)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--min-repeat-ms", type=float, default=50.0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per build, and per check + timing")
    p.add_argument("--cold-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="time each call with its arguments out of cache (calls rotate through copies spanning twice "
                        "the last-level cache), as a layer of a model whose weights do not fit in cache runs "
                        "(default: on with --model, off otherwise)")
    p.add_argument("--parallel", type=int, help="builder processes (default: one per core)")
    p.add_argument("--runner", default="local", choices=("local", "ray"),
                   help="measure in processes here (local, default) or on a Ray cluster (ray)")
    p.add_argument("--address", metavar="ADDRESS",
                   help="with --runner ray: the cluster, 'auto' or ray://head:10001 (default: RAY_ADDRESS or a local one)")
    p.add_argument("--no-check", action="store_true", help="do not compare outputs with the numpy reference")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--busy-repeat", type=int, metavar="R",
                   help="when the machine looks busy (noisy repeats, load above the core count), measure each "
                        "config R times instead of --repeat (default: only warn)")
    p.add_argument("--no-busy-check", action="store_true", help="skip the busy-machine check before tuning")
    p.add_argument("-v", "--verbose", action="store_true", help="log each batch and error")
    return p


def _histogram_spec(path: str, max_buckets: int, points: int = 0):
    """A BucketSpec of n from a histogram file (one table's {value: count}, or several merged), each bucket
    measured at up to ``points`` values of its traffic (``buckets.traffic_points``; 0: at its top edge)."""
    from ..tuner.buckets import buckets_from_traffic, with_traffic_points

    if points < 0:
        raise NimbleError(f"--traffic-points: expected an int >= 0, got {points}")

    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (OSError, json.JSONDecodeError) as exc:
        raise NimbleError(f"--buckets-from: cannot read {path}: {exc}") from None
    tables = data.values() if data and all(isinstance(v, dict) for v in data.values()) else [data]
    merged: dict = {}
    for table in tables:
        for value, count in table.items():
            merged[int(value)] = merged.get(int(value), 0) + int(count)
    spec = buckets_from_traffic("n", merged, max_buckets)
    return with_traffic_points(spec, merged, points) if points else spec


def _model_tasks(args: argparse.Namespace) -> list[Task]:
    import importlib

    from ..vm.tasks import extract_tasks

    if args.model.endswith(".onnx"):
        from ..frontend import from_onnx
        from .run import require_onnx

        require_onnx()

        mod = from_onnx(args.model)
    else:
        module_name, _, func_name = args.model.partition(":")
        if not func_name:
            raise NimbleError(f"--model: expected MODULE:FUNCTION or a .onnx file, got {args.model!r}")
        try:
            mod = getattr(importlib.import_module(module_name), func_name)()
        except (ImportError, AttributeError) as exc:
            raise NimbleError(f"--model: cannot load {args.model}: {exc}") from None
    if args.buckets_from:
        spec = _histogram_spec(args.buckets_from, args.max_buckets, args.traffic_points)
    elif args.bucket:
        spec = parse_bucket_spec(args.bucket[0])
    else:
        spec = None
    return extract_tasks(mod, args.target, spec)


def _tasks(args: argparse.Namespace) -> list[Task]:
    if args.model:
        return _model_tasks(args)
    if args.tasks:
        return tasks_from_file(args.tasks, args.target)
    if args.buckets_from and not args.bucket:
        args.bucket = [_histogram_spec(args.buckets_from, args.max_buckets, args.traffic_points)]
    if not args.shape:
        raise NimbleError("--shape: required with --op")
    try:
        attrs = json.loads(args.attrs)
    except json.JSONDecodeError as exc:
        raise NimbleError(f"--attrs: expected a JSON object, got {args.attrs!r}: {exc}") from None
    if not isinstance(attrs, dict):
        raise NimbleError(f"--attrs: expected a JSON object, got {args.attrs!r}")
    template, sig = op_signature(args.op, args.shape, args.dtype, attrs)
    return make_tasks(template, sig, args.target, args.bucket)


def _busy_check(args: argparse.Namespace) -> int:
    """Warn when the machine looks busy; returns the repeat count to measure with."""
    if args.no_busy_check:
        return args.repeat
    report = probe_noise()
    if not report.busy:
        return args.repeat
    if args.busy_repeat:
        print(f"nimble-tune: warning: the machine looks busy ({report.describe()}): measuring each config "
              f"{max(args.busy_repeat, args.repeat)} times (--busy-repeat)", file=sys.stderr)
        return max(args.busy_repeat, args.repeat)
    print(f"nimble-tune: warning: the machine looks busy ({report.describe()}): timings will be noisy and "
          "speedups unreliable; tune on an idle machine, or add --busy-repeat 10 to measure more", file=sys.stderr)
    return args.repeat


def _task_noise(db: Database, summaries: Sequence[TuneSummary], host) -> list[float | None]:
    return [record_noise(db.records(workload=s.workload, bucket=s.bucket, target=s.target, host=host,
                                    include_errors=False)) for s in summaries]


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds of ``"90"``, ``"90s"``, ``"20m"``, ``"1h30m"`` or ``"1.5h"``."""
    match = _DURATION.match(text.strip().lower()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise NimbleError(f"--budget: expected a duration such as 90, 90s, 20m or 1h30m, got {text!r}")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    seconds = 3600 * h + 60 * m + s
    if not seconds > 0:
        raise NimbleError(f"--budget: expected a duration above zero, got {text!r}")
    return seconds


def _budget_seconds(args: argparse.Namespace) -> float | None:
    if args.budget is not None and args.time_budget is not None:
        raise NimbleError("--budget and --time-budget: give one of them")
    if args.time_budget is not None:
        if not args.time_budget > 0:
            raise NimbleError(f"--time-budget: expected seconds above zero, got {args.time_budget!r}")
        return float(args.time_budget)
    return parse_duration(args.budget) if args.budget is not None else None


def _run(args: argparse.Namespace, tasks: list[Task], db: Database) -> list[TuneSummary]:
    from ..tuner.tune import make_measurer

    if args.address is not None and args.runner != "ray":
        raise NimbleError("--address: only with --runner ray")
    repeat = _busy_check(args)
    options = MeasureOptions(number=args.number, repeat=repeat, min_repeat_ms=args.min_repeat_ms,
                             timeout_s=args.timeout, check_correctness=not args.no_check, n_parallel=args.parallel,
                             cold_cache=args.cold_cache if args.cold_cache is not None else args.model is not None)
    common = dict(tuner=args.tuner, early_stopping=args.early_stopping, seed=args.seed,
                  progress=not args.no_progress)
    budget = args.budget_s
    with make_measurer(args.runner, options, args.address) as measurer:
        if budget is not None:
            from ..tuner.budget import tune_budget

            return tune_budget(tasks, db, budget, measurer, tuner=args.tuner, batch_size=args.batch,
                               max_trials=args.trials, early_stopping=args.early_stopping, seed=args.seed,
                               progress=not args.no_progress)
        return tune_each(tasks, db, args.trials, measurer, announce=len(tasks) > 1, batch_size=args.batch,
                         resume=args.resume, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nimble-tune`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    db = None
    try:
        args.budget_s = _budget_seconds(args)
        tasks = _tasks(args)
        db = Database(args.db, target=args.target)
        print(f"tuning {len(tasks)} task(s) into {db.display_url}", file=sys.stderr)
        summaries = _run(args, tasks, db)
    except KeyboardInterrupt:
        where = db.display_url if db is not None else "the database"
        print(f"\nnimble-tune: interrupted. Every measured batch is already committed to {where}; run the same "
              "command again to resume (configs measured before are skipped; --no-resume starts over).",
              file=sys.stderr)
        return 130
    except (NimbleError, OSError, ImportError) as exc:
        print(f"nimble-tune: error: {exc}", file=sys.stderr)
        return 1
    noise = _task_noise(db, summaries, host_fingerprint(args.target))
    print(summary_table(summaries, noise))
    warm = sorted({s.warm_start for s in summaries if s.warm_start})
    if warm:
        print(f"nimble-tune: no records of this host for {sum(1 for s in summaries if s.warm_start)} task(s): the cost "
              f"model started from the records of the nearest host(s) ({'; '.join(warm)}), whose best configs were "
              "measured here first", file=sys.stderr)
    noisy = [s for s, z in zip(summaries, noise) if z is not None and z > NOISE_THRESHOLD]
    if noisy:
        print(f"nimble-tune: warning: {len(noisy)} of {len(summaries)} task(s) were measured with noise above "
              f"{NOISE_THRESHOLD:.0%} (repeats of one config differ; '?' marks their speedups): the machine was busy. "
              "Tune again on an idle machine or with --busy-repeat 10.", file=sys.stderr)
    skipped = [s for s in summaries if s.trials == 0]
    if skipped:
        print(f"nimble-tune: {len(skipped)} of {len(summaries)} task(s) got no time within the budget (their share of "
              "the model's time is small): their buckets run the templates' fallback configs; a larger --budget "
              "reaches them", file=sys.stderr)
    failed = [s for s in summaries if s.best_cost is None and s.trials]
    for s in failed:
        print(f"nimble-tune: no working config for {s.task} ({dict(s.error_kinds)})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
