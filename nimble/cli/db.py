"""``nimble-db``: inspect and move tuning records.

    nimble-db [--db URL_OR_PATH] list [--template T]
    nimble-db best [--template T] [--target T] [--host this|any|ID]
    nimble-db export OUT.jsonl [--workload HASH] [--template T] [--target T] [--no-errors]
    nimble-db import IN.jsonl ...
    nimble-db merge OTHER_DB ...
    nimble-db prune --keep K [--keep-errors]
    nimble-db plot OUT.png [--workload HASH] [--template T] [--target T]

``--db`` defaults to ``tuning_logs/llvm.db`` and goes before or after the command; ``-`` as a
file name means stdout/stdin (a closed pipe, as in ``nimble-db export - | head -1``, ends quietly).
Buckets are listed in numeric order (``n=1, n=2..4, n=17..32, n=129..256``).
Exit status: 0 on success, 1 on an error (or when ``import`` skipped malformed lines),
2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import NimbleError
from ..tuner.buckets import BucketKey
from ..tuner.db import Database
from ..tuner.fingerprint import host_fingerprint
from ..tuner.records import TuningRecord

DEFAULT_DB = "tuning_logs/llvm.db"
LEGEND_ROWS = 16  # curves per legend column; the legend sits outside the axes, never over the curves


def _open(location: str, must_exist: bool) -> Database:
    if must_exist and "://" not in location and not Path(location).is_file():
        raise NimbleError(f"--db: expected an existing database file or a URL, got {location!r} (no such file)")
    return Database(location)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def bucket_order(text: str) -> tuple:
    """A sort key that orders bucket keys by value: ``n=1 < n=2..4 < n=17..32 < n=129..256``."""
    try:
        key = BucketKey.parse(str(text))
    except NimbleError:
        return ((str(text), 0, 0),)
    return tuple((b.dim, b.lo, b.hi) for b in key.buckets)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.4g} ms"


def _resolve_workload(db: Database, prefix: str | None) -> str | None:
    """The full hash of the one stored workload whose hash starts with ``prefix``."""
    if prefix is None:
        return None
    matches = [k.hash for k in db.workloads() if k.hash.startswith(prefix.lower())]
    if len(matches) != 1:
        raise NimbleError(f"--workload: expected a hash prefix matching one workload, got {prefix!r} "
                          f"matching {len(matches)}")
    return matches[0]


def _cmd_list(db: Database, args: argparse.Namespace) -> int:
    summary = sorted(db.summary(), key=lambda s: (s.workload.template, str(s.workload), s.target, bucket_order(s.bucket)))
    rows = [(s.workload, s.target, s.bucket, s.records, s.errors, _ms(s.best_cost))
            for s in summary if args.template in (None, s.workload.template)]
    print(_table(("workload", "target", "bucket", "records", "errors", "best"), rows))
    print(f"{len({r[0] for r in rows})} workloads, {sum(r[3] for r in rows)} records")
    return 0


def _host_filter(choice: str, target: str | None) -> str | None:
    if choice == "any":
        return None
    return host_fingerprint(target or "llvm").id if choice == "this" else choice


def _cmd_best(db: Database, args: argparse.Namespace) -> int:
    best = [r for r in db.best_records(target=args.target, host=_host_filter(args.host, args.target))
            if args.template in (None, r.workload.template)]
    best.sort(key=lambda r: (r.workload.template, str(r.workload), r.target, r.host.id, bucket_order(r.bucket)))
    rows = [(r.workload, r.bucket, r.target, r.host.id, _ms(r.mean_cost),
             "-" if r.gflops is None else f"{r.gflops:.2f}", json.dumps(dict(r.config), sort_keys=True))
            for r in best]
    print(_table(("workload", "bucket", "target", "host", "cost", "GFLOP/s", "config"), rows))
    return 0


def _cmd_export(db: Database, args: argparse.Namespace) -> int:
    filters = dict(workload=_resolve_workload(db, args.workload), template=args.template,
                   target=args.target, include_errors=not args.no_errors)
    count = db.export_jsonl(sys.stdout if args.output == "-" else args.output, **filters)
    print(f"exported {count} records to {args.output}", file=sys.stderr)
    return 0


def _cmd_import(db: Database, args: argparse.Namespace) -> int:
    status = 0
    for name in args.inputs:
        report = db.import_jsonl(sys.stdin if name == "-" else name)
        print(f"{name}: {report.added} added, {report.duplicates} duplicates, {len(report.malformed)} malformed")
        for bad in report.malformed:
            print(f"{name}: skipped {bad}", file=sys.stderr)
        status = status or (1 if report.malformed else 0)
    return status


def _cmd_merge(db: Database, args: argparse.Namespace) -> int:
    for name in args.sources:
        report = db.merge(_open(name, must_exist=True))
        print(f"{name}: {report.added} added, {report.duplicates} duplicates")
    return 0


def _cmd_prune(db: Database, args: argparse.Namespace) -> int:
    before = db.count()
    removed = db.prune(args.keep, drop_errors=not args.keep_errors)
    print(f"removed {removed} of {before} records, {before - removed} left")
    return 0


def best_so_far_curves(records: Iterable[TuningRecord]) -> tuple[str, dict[str, list[float]]]:
    """Per (workload, bucket, target, host), the best value after each trial, in trial order.

    The value is GFLOP/s (higher is better) when every successful record knows its FLOPs,
    else the best mean cost in ms (lower is better, unit ``"cost (ms)"``); trials before the first success are NaN.
    Returns (unit, {label: values}).
    """
    groups: dict[tuple[str, str, str, str], list[TuningRecord]] = {}
    for r in sorted(records, key=lambda r: r.timestamp):
        groups.setdefault((r.workload.hash, r.bucket, r.target, r.host.id), []).append(r)
    use_gflops = all(r.gflops is not None for g in groups.values() for r in g if r.ok)
    hosts = {key[3] for key in groups}
    curves: dict[str, list[float]] = {}
    for (_, bucket, target, host), group in groups.items():
        best, values = math.nan, []
        for r in group:
            if r.ok:
                value = r.gflops if use_gflops else r.mean_cost * 1e3
                better = math.isnan(best) or (value > best if use_gflops else value < best)
                best = value if better else best
            values.append(best)
        w = group[0].workload
        label = f"{w.template} #{w.short_hash} {bucket} {target}" + (f" host {host}" if len(hosts) > 1 else "")
        curves[label] = values
    return ("GFLOP/s" if use_gflops else "cost (ms)"), curves


def _cmd_plot(db: Database, args: argparse.Namespace) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NimbleError("nimble-db plot needs matplotlib, which is not installed: pip install matplotlib") from None
    records = db.records(workload=_resolve_workload(db, args.workload), template=args.template, target=args.target)
    if not records:
        raise NimbleError("plot: expected records to plot, got none matching the filters")
    unit, curves = best_so_far_curves(records)
    legend_rows = min(len(curves), LEGEND_ROWS)
    columns = math.ceil(len(curves) / legend_rows)
    fig, ax = plt.subplots(figsize=(9 + 3.2 * columns, 5))  # the legend gets its own room, right of the axes
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, label=label)
    ax.set_xlabel("trials")
    ax.set_ylabel(f"best {unit}")
    ax.set_title(f"best {unit} against trials ({db.url})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, ncol=columns,
              frameon=False)
    fig.tight_layout()
    fig.savefig(args.output, format="png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.output}: {len(curves)} curves of {unit}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nimble-db", description="Inspect and move nimble tuning records.")
    parser.add_argument("--db", default=DEFAULT_DB, metavar="URL_OR_PATH",
                        help=f"SQLAlchemy URL or SQLite file (default {DEFAULT_DB})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)  # --db after the command too (SUPPRESS: keeps one given before)
    common.add_argument("--db", default=argparse.SUPPRESS, metavar="URL_OR_PATH",
                        help=f"SQLAlchemy URL or SQLite file (default {DEFAULT_DB})")

    def filters(p: argparse.ArgumentParser, workload: bool = True) -> None:
        if workload:
            p.add_argument("--workload", metavar="HASH", help="workload hash or a unique prefix of it")
        p.add_argument("--template", help="only workloads of this template")
        p.add_argument("--target", help="only records of this target string")

    p = sub.add_parser("list", parents=[common], help="workloads and record counts per bucket")
    p.add_argument("--template", help="only workloads of this template")
    p.set_defaults(run=_cmd_list, must_exist=True)
    p = sub.add_parser("best", parents=[common], help="best record per workload, bucket, target and host")
    filters(p, workload=False)
    p.add_argument("--host", default="any", help="'this', 'any' (default) or a host id")
    p.set_defaults(run=_cmd_best, must_exist=True)
    p = sub.add_parser("export", parents=[common], help="write records as JSON Lines")
    p.add_argument("output", help="output .jsonl file, or - for stdout")
    filters(p)
    p.add_argument("--no-errors", action="store_true", help="leave out error records")
    p.set_defaults(run=_cmd_export, must_exist=True)
    p = sub.add_parser("import", parents=[common], help="add records from JSON Lines files")
    p.add_argument("inputs", nargs="+", help="input .jsonl files, or - for stdin")
    p.set_defaults(run=_cmd_import, must_exist=False)
    p = sub.add_parser("merge", parents=[common], help="add the records of other databases")
    p.add_argument("sources", nargs="+", help="other databases (URL or SQLite file)")
    p.set_defaults(run=_cmd_merge, must_exist=False)
    p = sub.add_parser("prune", parents=[common], help="keep the K best records per workload, bucket, target and host")
    p.add_argument("--keep", type=int, required=True, metavar="K", help="records to keep per group (>= 1)")
    p.add_argument("--keep-errors", action="store_true", help="do not delete error records")
    p.set_defaults(run=_cmd_prune, must_exist=True)
    p = sub.add_parser("plot", parents=[common], help="PNG of the best GFLOP/s (or cost) against trials")
    p.add_argument("output", help="output .png file")
    filters(p)
    p.set_defaults(run=_cmd_plot, must_exist=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nimble-db`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.run(_open(args.db, args.must_exist), args)
    except BrokenPipeError:  # the reader went away (| head): not an error; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (NimbleError, OSError) as exc:
        print(f"nimble-db: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
