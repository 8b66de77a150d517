"""Building dispatch tables for a template workload from the tuning records database.

A table keys on one symbolic dim of the workload (any argument, any axis). For each bucket
of the workload that has a record on this target, the best record of this host gives the
config of that bucket's kernel (among configs re-measured beside the fallback, when some were:
``host_pick``); without one, the nearest host's best record when that host is
trusted (``tuner.nearest_host``: ISA-compatible, same vector ISA and thread count), or with
``accept_foreign`` any other host's, nearest first. With no record at all, a few fallback
ranges use the template's fallback config at a representative size each (small batches get
small register tiles).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

from ..errors import FormatError, NimbleError
from ..schedules.registry import Signature
from ..tuner.buckets import FALLBACK_RANGES, UNBOUNDED, BucketKey
from ..tuner.fingerprint import host_fingerprint
from ..tuner.nearest_host import rank_hosts
from ..tuner.records import CONFIRM_TUNER
from ..tuner.task import Task
from .kernel_entry import KernelEntry
from .table import BucketRange, DispatchEntry

log = logging.getLogger("nimble.dispatch")
SHIPPED_RECORDS_DIR = Path(__file__).resolve().parents[2] / "tuning_logs"  # the checkout's, shipped with nimble
ONE_FALLBACK_RANGE = ((0, UNBOUNDED, 64),)  # one untuned kernel for every size, configured for 64


def open_records(records):
    """A ``Database`` for a path, URL or database; with None, the records shipped for this CPU
    (``tuning_logs/*.jsonl`` of the nimble checkout, never of the current directory), if any.

    A path must name an existing SQLite file: ``NimbleError`` naming it otherwise (an empty
    database silently created in the wrong folder would compile every kernel with fallbacks).
    """
    from ..tuner.db import Database

    if records is None:
        return shipped_records()
    if isinstance(records, Database):
        return records
    if isinstance(records, (str, os.PathLike)) and "://" not in str(records):
        path = Path(records).expanduser()
        if not path.is_file():  # a typo or another working directory: say so, never create an empty one
            raise NimbleError(f"records: expected an existing records database, got {str(records)!r} "
                              f"({path.resolve()} does not exist; tune into it with nimble-tune --db, or pass a "
                              "Database or an SQLAlchemy URL)")
    return Database(records)


def _same_cpu(a, b) -> bool:
    return a.cpu_model == b.cpu_model and tuple(a.features) == tuple(b.features)


def shipped_records():
    """A database of the shipped JSON Lines records measured on this CPU model, or None (records
    are then used where this host's fingerprint, thread count included, matches).

    Like TVM's pre-tuned logs: a fresh install on a known CPU runs tuned kernels at once. The
    files are merged into a database under the object cache directory, rebuilt when they change.
    """
    import hashlib
    from pathlib import Path

    from ..codegen.jit import cache_dir
    from ..tuner.db import Database
    from ..tuner.records import TuningRecord, read_jsonl

    roots = [Path(SHIPPED_RECORDS_DIR)]  # never the current directory's
    files = sorted({p.resolve() for r in roots if r.is_dir() for p in r.glob("*.jsonl")})
    if not files:
        return None
    host = host_fingerprint("llvm")
    matching = []
    for f in files:
        with open(f, encoding="utf-8") as stream:
            first = next((rec for _, rec in read_jsonl(stream) if isinstance(rec, TuningRecord)), None)
        if first is not None and _same_cpu(first.host, host):
            matching.append(f)
    if not matching:
        return None
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in matching)).hexdigest()[:16]
    path = cache_dir().parent / f"shipped-records-{digest}.db"
    if not path.exists():
        _build_shipped_database(path, matching)
    log.info("using the tuning records shipped for this CPU: %s", ", ".join(f.name for f in matching))
    return Database(path)


def _build_shipped_database(path: Path, files: list) -> None:
    """Import ``files`` into a private temporary database beside ``path``, then publish it there in one
    step: processes starting at once (test workers, a team's tuners) never open a half-imported one.
    The first complete one wins; a later builder drops its own copy."""
    import shutil
    import tempfile

    from ..tuner.db import Database, dispose_engine

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=path.parent, prefix=path.stem + "-", suffix=".tmp")
    try:
        db = Database(Path(scratch) / path.name)
        for f in files:
            db.import_jsonl(f)
        dispose_engine(db.url)  # the last connection closing checkpoints the WAL into the file
        try:
            os.link(Path(scratch) / path.name, path)  # publish unless another process did (never replace an open one)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            os.replace(Path(scratch) / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)



def host_pick(records):
    """One host's pick among its records of a bucket: when some re-measure the best beside the fallback
    (tuner ``"confirm"``), the config with the lowest median of those (its median record); else the
    record of lowest cost. A config that won its first batch by noise loses side by side. When some
    records were measured with cold caches (``cache == "cold"``, as the model runs: its other layers
    stream through the cache between two calls of a kernel), only those count: warm costs are lower
    and would win without being the model's."""
    cold = [r for r in records if r.cache == "cold"]
    records = cold or records
    confirmed: dict = {}
    for r in records:
        if r.tuner == CONFIRM_TUNER:
            confirmed.setdefault(r.config_index, []).append(r)
    if not confirmed:
        return min(records, key=lambda r: (r.mean_cost, r.timestamp))
    medians = []
    for group in confirmed.values():
        group = sorted(group, key=lambda r: r.mean_cost)
        medians.append(group[(len(group) - 1) // 2])
    return min(medians, key=lambda r: (r.mean_cost, r.timestamp))


def _pick(here, by_host: dict, accept_foreign: bool):
    """(record, source, host description) for one bucket from its records grouped by host, or None.

    This host's best record; else the nearest host's (``tuner.nearest_host``) when it is trusted
    (ISA-compatible, same vector ISA and thread count: source ``"nearest-host"``), or with
    ``accept_foreign`` any host's, nearest first (``"same-cpu"`` for this CPU at another thread
    count, else ``"foreign"``).
    """
    best = {h: host_pick(recs) for h, recs in by_host.items()}
    if here in best:
        return best[here], "record", ""
    for m in rank_hosts(here, best):
        if m.trusted:
            return best[m.host], "nearest-host", m.describe()
        if accept_foreign:
            return best[m.host], "same-cpu" if _same_cpu(m.host, here) else "foreign", m.describe()
    return None


def _ranges_from_records(probe, db, target: str, accept_foreign: bool, dim: str) -> list:
    """(BucketRange, config JSON) per range of ``dim`` with a usable record, sorted by lo (with ``dim``
    None, a static workload: its best "static" record as one unbounded range).

    A record's bucket key may bound several dims; its range is that of ``dim``. Of the records
    whose keys give ``dim`` the same range, those whose other dims have that range too (the
    diagonal: the model's symbolic dims tracking one length, as ``extract_tasks`` tunes them) are
    preferred, then any key; among either, keys measured at traffic points (``Bucket.points``: the
    time the bucket's traffic spends) before those measured at one value, as the costs of the two
    do not compare; within the chosen keys, ``_pick`` decides by host and cost.
    """
    if db is None:
        return []
    by_range: dict = {}
    for rec in db.records(workload=probe.workload_key, target=target, include_errors=False):
        key = BucketKey.parse(str(rec.bucket))
        if dim is None:  # a static workload: its "static" records
            if key.dims:
                continue
            lo, hi, diagonal = 0, UNBOUNDED, True
        elif dim not in key.dims:
            continue
        else:
            lo, hi = key[dim].lo, key[dim].hi
            diagonal = all((x.lo, x.hi) == (lo, hi) for x in key.buckets)
        groups = by_range.setdefault((lo, hi), ({}, {}, {}, {}))
        groups[(0 if diagonal else 2) + (0 if _traffic(key) else 1)].setdefault(rec.host, []).append(rec)
    host = host_fingerprint(target)
    out = []
    for (lo, hi), groups in sorted(by_range.items()):
        picked = next((p for p in (_pick(host, g, accept_foreign) for g in groups if g) if p is not None), None)
        if picked is None:
            continue
        rec, source, where = picked
        out.append((BucketRange(lo, hi, str(rec.bucket), source, None, rec.mean_cost, dict(rec.config), where,
                                cache=rec.cache or ""), dict(rec.config)))
    disjoint = []
    for r, cfg in out:
        if disjoint and r.lo <= disjoint[-1][0].hi:
            continue  # overlapping bucket schemes: keep the first
        disjoint.append((r, cfg))
    return disjoint


def _traffic(key: BucketKey) -> bool:
    """Whether ``key`` was measured at traffic points (its costs are weighted means over them)."""
    return any(b.points for b in key.buckets)


def _boxes_from_records(probe, db, target: str, accept_foreign: bool, dim: str, names) -> tuple:
    """(the other dims, [(BucketRange box, config JSON)]) when records of the workload bound ``dim`` and other
    symbolic dims of ``names`` with ranges that differ (a multi-dim bucket scheme: ``nimble-tune --bucket b=..
    --bucket n=..``); ``((), [])`` when every key is one dim or diagonal (the one-dim table serves those).
    A key that does not bound one of the other dims spans all its values."""
    if db is None or dim is None:
        return (), []
    by_key: dict = {}  # the box's bounds -> (a key, its records by host): traffic-point keys before one-value keys
    for rec in db.records(workload=probe.workload_key, target=target, include_errors=False):
        key = BucketKey.parse(str(rec.bucket))
        if len(key.dims) < 2 or dim not in key.dims or not set(key.dims) <= set(names):
            continue
        bounds = tuple((b.dim, b.lo, b.hi) for b in key.buckets)
        held = by_key.get(bounds)
        if held is None or (_traffic(key) and not _traffic(held[0])):
            held = by_key[bounds] = (key, {})
        elif _traffic(key) != _traffic(held[0]):
            continue
        held[1].setdefault(rec.host, []).append(rec)
    if not any(len({(b.lo, b.hi) for b in key.buckets}) > 1 for key, _ in by_key.values()):
        return (), []
    others = tuple(sorted({d for key, _ in by_key.values() for d in key.dims} - {dim}))
    host = host_fingerprint(target)
    boxes = []
    for key, by_host in by_key.values():
        picked = _pick(host, by_host, accept_foreign)
        if picked is None:
            continue
        rec, source, where = picked
        extra = tuple((key[d].lo, key[d].hi) if d in key.dims else (0, UNBOUNDED) for d in others)
        boxes.append((BucketRange(key[dim].lo, key[dim].hi, str(key), source, None, rec.mean_cost, dict(rec.config),
                                  where, extra, rec.cache or ""), dict(rec.config)))
    boxes.sort(key=lambda rc: rc[0].bounds())
    return (others, boxes) if boxes else ((), [])


def _range_label(dim: str, lo: int, hi: int) -> str:
    return f"{dim}>={lo}" if hi >= UNBOUNDED else f"{dim}={lo}..{hi}"


def _fallback_ranges(tmpl, signature, space, dim: str, ranges) -> list:
    """(BucketRange, config JSON) of ``ranges`` over ``dim``, every symbolic dim hinted at the range's
    representative; neighbours with the same config merge into one range (one kernel)."""
    out = []
    for lo, hi, rep in ranges:
        cfg = tmpl.fallback(signature, space, {d: rep for d in signature.symbolic_dims}).to_json()
        if out and out[-1][1] == cfg:
            lo = out.pop()[0].lo
        out.append((BucketRange(lo, hi, _range_label(dim, lo, hi)), cfg))
    return out


def _one_length(signature):
    """The signature with every symbolic dim named ``n`` (one length, as ``nimble-tune --op softmax
    --shape 12,n,n`` and ``scripts/tune_bert_ops.py`` write it), or None when that is the signature."""
    renamed = Signature(tuple((tuple("n" if isinstance(d, str) else d for d in shape), dt)
                              for shape, dt in signature.args), signature.attrs)
    return None if renamed == signature or not signature.symbolic_dims else renamed


def _fallback_in_gaps(chosen: list, dim: str, ranges, fallback) -> list:
    """``chosen`` (record ranges, sorted) with the gaps between 1 and the last record's ``hi`` filled
    by the fallback ``ranges``' configs (``fallback(rep)``): a bucket without a record runs the fallback
    of its size, not the nearest bucket's record (a config tuned at n=64 is no fit for n=2)."""
    out, at = [], 1
    for r, cfg in chosen:
        for lo, hi, rep in ranges:
            a, b = max(lo, at), min(hi, r.lo - 1)
            if a <= b:
                out.append((BucketRange(a, b, f"{dim}={a}..{b}" if a < b else f"{dim}={a}"), fallback(rep)))
        out.append((r, cfg))
        at = max(at, r.hi + 1)
    return out


REFIT_MAX = 256  # values of the dispatched dim up to which a record's config is refit per value (Template.refit)


def _refit_ranges(tmpl, signature, space, dim: str, chosen: list) -> list:
    """``chosen`` with each range (a record's or a fallback's) split where the template runs another config at
    some values of ``dim`` (``Template.refit``: dense takes the tile height that computes the fewest rows at each
    n, its other knobs as chosen); values above ``REFIT_MAX`` stay as they are. Ranges with the same config share
    one kernel (``template_dispatch``). A fallback refit per length ran BERT-base 1.18x faster at n = 9 and 1.1x
    at n = 12 and 33 on an AVX-512 Xeon guest (one 8-row fallback for n = 5..32 overcomputed 7 rows at n = 9)."""
    out = []
    for r, cfg_json in chosen:
        try:
            cfg = space.from_json(cfg_json)
        except FormatError:
            cfg = None
        if cfg is None:
            out.append((r, cfg_json))
            continue
        pieces: list = []  # [lo, hi, config JSON or None (the record's own)]
        for n in range(r.lo, min(r.hi, REFIT_MAX) + 1):
            other = tmpl.refit(signature, space, cfg, dim, n) if n >= 1 else None
            config = None if other is None else other.to_json()
            if pieces and pieces[-1][2] == config:
                pieces[-1][1] = n
            else:
                pieces.append([n, n, config])
        if r.hi > REFIT_MAX:
            if pieces and pieces[-1][2] is None:
                pieces[-1][1] = r.hi
            else:
                pieces.append([max(r.lo, REFIT_MAX + 1), r.hi, None])
        for lo, hi, config in pieces:
            if config is None:
                out.append((replace(r, lo=lo, hi=hi), cfg_json))
            else:
                note = ", ".join(f"{k} {v}" for k, v in config.items() if cfg_json.get(k) != v)
                at = f"{dim}={lo}" if lo == hi else _range_label(dim, lo, hi)
                out.append((replace(r, lo=lo, hi=hi, cost=None, label=f"{r.label} ({note} at {at})"), config))
    return out


def _one_dim_ranges(template, signature, probe, tmpl, space, db, target, accept_foreign, key_dim, fallback_ranges):
    """(BucketRange, config JSON) of a one-dim table: records of the signature, else of its one-length form,
    with the gaps filled by fallback ranges; else the fallback ranges alone."""
    dims = signature.symbolic_dims
    chosen = _ranges_from_records(probe, db, target, accept_foreign, key_dim)
    one_length = _one_length(signature)
    if not chosen and one_length is not None:
        chosen = _ranges_from_records(Task(template, one_length, target, "n=1"), db, target, accept_foreign, "n")
    if not chosen:
        if not dims:
            return [(BucketRange(0, UNBOUNDED, "static"), tmpl.fallback(signature, space, {}).to_json())]
        fallbacks = _fallback_ranges(tmpl, signature, space, key_dim, fallback_ranges)
        return _refit_ranges(tmpl, signature, space, key_dim, fallbacks)
    if dims:
        chosen = _fallback_in_gaps(chosen, key_dim, fallback_ranges, lambda rep: tmpl.fallback(
            signature, space, {d: rep for d in dims}).to_json())
        chosen = _refit_ranges(tmpl, signature, space, key_dim, chosen)
    return chosen


def template_dispatch(template: str, signature, name: str, dim: tuple, arg_layout, db=None, target: str = "llvm",
                      accept_foreign: bool = False, dim_name: str | None = None,
                      fallback_ranges=FALLBACK_RANGES, dim_places: dict | None = None) -> tuple:
    """(DispatchEntry, per-range configs) for a template workload, keyed on its symbolic dim
    ``dim_name`` (default: the first), which the call's argument ``dim[0]`` has at axis ``dim[1]``.

    ``arg_layout(config, all_configs) -> tuple of call-argument indices`` maps each range's
    kernel to the call's arguments (a packed weight depends on the config). With ``dim_places``
    ({symbolic dim: (argument index, axis)} of the call), records whose bucket keys bound several
    dims with different ranges key a multi-dim table (their boxes, then the fallback ranges of the
    keyed dim for points outside them). Without a usable record of the signature, the records of
    its one-length form (every symbolic dim named ``n``: the model's dynamic dims taken as one
    length) serve, their ``n`` ranges keying the table; without those either, ``fallback_ranges``
    ((lo, hi, representative) of the keyed dim) get fallback configs.
    """
    dims = signature.symbolic_dims
    key_dim = dim_name if dim_name is not None else (dims[0] if dims else None)
    if dims and key_dim not in dims:
        raise NimbleError(f"template_dispatch {name}: dim_name {key_dim!r} is not a symbolic dim of the signature "
                          f"(those are {list(dims)})")
    probe = Task(template, signature, target, ",".join(f"{d}=1" for d in sorted(dims)) if dims else "static")
    tmpl = probe.template_obj
    space = tmpl.space(signature)
    others, chosen = _boxes_from_records(probe, db, target, accept_foreign, key_dim, dim_places or {})
    if others:  # points outside every box: the fallback ranges of key_dim, whatever the other dims
        chosen += [(replace(r, extra=((0, UNBOUNDED),) * len(others)), cfg)
                   for r, cfg in _fallback_ranges(tmpl, signature, space, key_dim, fallback_ranges)]
    else:
        chosen = _one_dim_ranges(template, signature, probe, tmpl, space, db, target, accept_foreign, key_dim,
                                 fallback_ranges)
    resolved = []
    for r, cfg_json in chosen:
        try:
            cfg = space.from_json(cfg_json)
        except FormatError as exc:
            log.warning("%s: record for %s does not fit the template's space (%s); using the fallback", name, r.label, exc)
            cfg = tmpl.fallback(signature, space, {})
            r = BucketRange(r.lo, r.hi, r.label, "fallback", extra=r.extra)
        resolved.append((replace(r, config=cfg.to_json()), cfg))
    configs = [cfg for _, cfg in resolved]
    kernels, maps, built = [], [], {}
    for k, (r, cfg) in enumerate(resolved):
        key = json.dumps(cfg.to_json(), sort_keys=True)
        if key not in built:  # ranges with one config (a record's range split by refit) share its kernel
            built[key] = KernelEntry.from_kernel(tmpl.build(signature, cfg, name=f"{name}_b{k}").kernel)
        kernels.append(built[key])
        maps.append(tuple(arg_layout(cfg, configs)))
    extra_dims = tuple((*dim_places[d], d) for d in others)
    entry = DispatchEntry(name, tuple(dim), tuple(r for r, _ in resolved), tuple(kernels), tuple(maps), key_dim or "n",
                          extra_dims)
    return entry, configs


def any_bucket_dispatch(template: str, signature, name: str, dim: tuple, arg_layout, db=None, target: str = "llvm",
                        accept_foreign: bool = False, dim_name: str = "n"):
    """A one-range table (every value of ``dim_name``) for a template whose kernel cost does not depend on its
    symbolic dims (``lstm_cell``: one step, whatever the sequence's length): the config of the workload's best
    record in any bucket (this host's, else a trusted nearest host's, or with ``accept_foreign`` any host's;
    ``host_pick`` within a host), else the template's fallback. Returns ``(DispatchEntry, [config])``."""
    bucket = ",".join(f"{d}=1..1" for d in signature.symbolic_dims) or "static"
    probe = Task(template, signature, target, bucket)
    tmpl = probe.template_obj
    space = tmpl.space(signature)
    by_host: dict = {}
    if db is not None:
        for rec in db.records(workload=probe.workload_key, target=target, include_errors=False):
            by_host.setdefault(rec.host, []).append(rec)
    picked = _pick(host_fingerprint(target), by_host, accept_foreign) if by_host else None
    cfg, r = None, None
    if picked is not None:
        rec, source, where = picked
        try:
            cfg = space.from_json(dict(rec.config))
            r = BucketRange(0, UNBOUNDED, f"{dim_name}>=0", source, None, rec.mean_cost, cfg.to_json(), where,
                            cache=rec.cache or "")
        except FormatError as exc:
            log.warning("%s: record does not fit the template's space (%s); using the fallback", name, exc)
            cfg = None
    if cfg is None:
        cfg = tmpl.fallback(signature, space, {})
        r = BucketRange(0, UNBOUNDED, f"{dim_name}>=0", "fallback", None, None, cfg.to_json())
    kernel = tmpl.build(signature, cfg, name=f"{name}_b0").kernel
    entry = DispatchEntry(name, tuple(dim), (r,), (KernelEntry.from_kernel(kernel),), (tuple(arg_layout(cfg, [cfg])),),
                          dim_name)
    return entry, [cfg]

