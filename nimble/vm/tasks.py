"""Model-level task extraction: the template-backed fused groups of a module, deduplicated, with
an estimate of each one's share of the model's run time.

A task is what compile turns into a dispatch table: a dense-family group (``dense`` template), a
conv2d-family group (``conv2d``), or a lone softmax, layer_norm, batch_matmul, attention, lstm_cell, gru_cell or
sum / mean / max / min call (their templates), the same kernels ``nimble.compile`` builds. Groups of
the generic schedule (``take``, elementwise chains: ``vm/template_kernels.py`` says why) are not tasks.

Two ways to weigh tasks. ``shares`` estimates: each kernel call costs the roofline time
``max(FLOPs / PEAK_FLOPS, bytes / BANDWIDTH)`` (the template's FLOP count, its ``bytes_moved`` or
else the bytes of its inputs) with every symbolic dim at the given length, times its call count:
the number of fused groups of the module with that signature. A function called in a loop or
recursively counts once per call site, and exp-bound kernels (softmax, attention) cost more than
their FLOPs say. ``profile_shares`` measures: it compiles the module and times each kernel over
``vm.profile`` runs on real inputs (loops and recursion included).
"""
from __future__ import annotations

from dataclasses import dataclass

import logging

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import NimbleError
from ..passes.pipeline import Pass, Pipeline, default_ir_passes, fuse_pass
from ..schedules.registry import Signature, get_template
from ..tuner.buckets import BucketSpec
from ..tuner.task import Task
from ..ops.registry import get_op
from .conv_kernels import conv2d_template_instance
from .kernels import RECURRENT_CELLS, dense_group_signature, op_template_signature, recurrent_cell_kernel_signature
from .template_kernels import dense_integer_group_signature, lone_template_signature

log = logging.getLogger("nimble.tasks")
MAX_TASK_BYTES = 1 << 30  # buckets whose kernel moves more are not tuned by default (measuring them takes GiBs)
ONE_BUCKET = set(RECURRENT_CELLS)  # templates whose kernel cost does not depend on their symbolic dims: one task each
PEAK_FLOPS = 100e9  # one core's fp32 FMA peak here is ~117 GFLOP/s (shared/NOTES.md); kernels reach less
BANDWIDTH = 20e9  # bytes/s: numpy's one-thread copy runs at 24-26 GB/s


@dataclass(frozen=True)
class ModelTask:
    """A template signature of a model and how many of its fused groups have it."""

    template: str
    signature: Signature
    calls: int

    def flops(self, length: int) -> int:
        return int(get_template(self.template).flops(self.signature, self._dims(length)))

    def bytes_moved(self, length: int) -> int:
        tmpl, dims = get_template(self.template), self._dims(length)
        if hasattr(tmpl, "bytes_moved"):
            return int(tmpl.bytes_moved(self.signature, dims))
        return sum(int(np.prod(shape, dtype=np.int64)) * numpy_dtype(dt).itemsize
                   for shape, (_, dt) in zip(self.signature.concrete(dims), self.signature.args))

    def seconds(self, length: int) -> float:
        """Estimated time of all its calls in one run with every symbolic dim at ``length``."""
        return self.calls * max(self.flops(length) / PEAK_FLOPS, self.bytes_moved(length) / BANDWIDTH)

    def _dims(self, length: int) -> dict:
        return {d: length for d in self.signature.symbolic_dims}


def _fused(mod, ir_passes):
    passes = default_ir_passes() if ir_passes is None else list(ir_passes)
    return Pipeline(passes + [fuse_pass()]).run(mod, print_after=(), debug=0)


def group_task(group, types):
    """(template, signature) of a fused group compile builds from a template, else None."""
    found = dense_group_signature(group, types)
    if found is not None:
        return "dense", found[0]
    found = dense_integer_group_signature(group, types)
    if found is not None:
        from ..schedules.dense_integer_amx import dense_integer_template

        return dense_integer_template(), found[0]
    if len(group.calls) == 1 and group.calls[0].op.name in RECURRENT_CELLS:
        call = group.calls[0]
        op = call.op.name
        sig = recurrent_cell_kernel_signature(call, [types[a] for a in call.args], get_op(op).full_attrs(call.attrs))
        return None if sig is None else (op, sig)
    found = op_template_signature(group, types)
    if found is not None:
        return found[:2]
    conv = conv2d_template_instance(group, types)
    if conv is not None:
        return "conv2d", conv[0]
    found = lone_template_signature(group, types)
    return None if found is None else found[:2]


def model_tasks(mod, ir_passes=None) -> list:
    """The ``ModelTask`` of every template signature of ``mod``'s fused groups, in program order.

    ``ir_passes``: the model-IR passes before fusion (default: ``default_ir_passes()``, what
    ``nimble.compile`` runs; leave out ``attention`` to get BERT's batch_matmul and softmax).
    """
    fused = _fused(mod, ir_passes)
    counts: dict = {}
    for groups, _ in fused.fusion.values():
        for g in reversed(groups.values()):  # fusion lists consumers first: program order
            key = group_task(g, fused.types)
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
    return [ModelTask(t, sig, n) for (t, sig), n in counts.items()]


def model_signatures(mod, ir_passes=None) -> list:
    """(template name, signature) of every template-backed fused group, each once (BERT's 12
    layers share their tasks)."""
    return [(t.template, t.signature) for t in model_tasks(mod, ir_passes)]


def shares(tasks, length: int) -> list:
    """Each ``ModelTask``'s estimated share (0..1) of the templated kernels' time at ``length``."""
    secs = [t.seconds(length) for t in tasks]
    total = sum(secs)
    return [s / total if total else 0.0 for s in secs]


def profile_shares(mod, inputs, records=None, ir_passes=None, runs: int = 3) -> list:
    """(ModelTask, seconds per run, share of all kernels' time) per task of ``model_tasks(mod,
    ir_passes)``, measured: ``mod`` compiled with ``records`` (as ``nimble.compile``), ``main`` run on
    ``inputs`` once to warm up, then ``runs`` times under ``vm.profile``; per kernel the median."""
    from .machine import VirtualMachine
    from .pipeline import compile_pipeline

    if not isinstance(runs, int) or runs < 1:
        raise NimbleError(f"profile_shares: runs must be an int >= 1, got {runs!r}")
    lowered: list = []
    pipe = compile_pipeline("llvm", records)
    if ir_passes is not None:
        n_ir = len(default_ir_passes())
        pipe = Pipeline(list(ir_passes) + list(pipe.passes[n_ir:]))
    pipe = pipe.insert_after("lower_kernels", Pass("keep_lowered", lambda lm: lowered.append(lm) or lm,
                                                   "LoweredModule", "LoweredModule", "profile_shares: the kernels"))
    vm = VirtualMachine(pipe.run(mod, print_after=(), debug=0))
    vm.run(*inputs)
    times: dict = {}
    for _ in range(runs):
        for name, k in vm.profile(*inputs).kernels.items():
            times.setdefault(name, []).append(k["time_s"])
    per_kernel = {name: float(np.median(t)) for name, t in times.items()}
    total = sum(per_kernel.values())
    by_task: dict = {}
    for gk in lowered[0].kernels:
        if gk.template != "auto" and gk.signature is not None:
            key = (gk.template, gk.signature)
            by_task[key] = by_task.get(key, 0.0) + per_kernel.get(gk.name, 0.0)
    out = []
    for mt in model_tasks(mod, ir_passes):
        secs = by_task.get((mt.template, mt.signature), 0.0)
        out.append((mt, secs, secs / total if total else 0.0))
    return out


def _bucket_key(sig: Signature, lo: int, hi: int, bucket=None) -> str:
    """Every symbolic dim of ``sig`` in ``lo..hi`` (or in ``bucket``, with its representative or traffic points)."""
    body = str(bucket).partition("=")[2] if bucket is not None else f"{lo}..{hi}"
    return ",".join(f"{d}={body}" for d in sig.symbolic_dims)


def extract_tasks(mod, target: str = "llvm", buckets=None, ir_passes=None, templates=None,
                  max_bytes: int | None = MAX_TASK_BYTES) -> list:
    """Tuning tasks of a model: each template-backed fused group's signature in each bucket.

    ``buckets``: a ``BucketSpec`` or its text (``"n=1:8,9:32,33:128"``) of the model's dynamic
    length (default: powers of two up to 512); its buckets' representatives or traffic points carry over. A signature with several symbolic dims (softmax
    over (12, n, n), batch_matmul's n and k) is tuned on the diagonal: every symbolic dim in the
    same bucket, as when they all track one sequence length; a static signature gets one
    ``static`` task, and one whose cost does not depend on its symbolic dims (``ONE_BUCKET``: lstm_cell and
    gru_cell, a step) one task at 1. ``templates``: keep only these template names (default: every one). Use
    ``task_shares`` for each task's weight. ``max_bytes``: a bucket whose kernel would move more bytes
    than this at its representative is left out with a warning (a conv2d with a dynamic batch, height
    and width tuned on the diagonal at 512 would allocate gigabytes to be measured); None keeps all.
    """
    spec = buckets if isinstance(buckets, BucketSpec) or buckets is None else BucketSpec.parse(buckets)
    if spec is None:
        spec = BucketSpec.powers_of_two("n", 512)
    tasks = []
    for mt in model_tasks(mod, ir_passes):
        if templates is not None and mt.template not in templates:
            continue
        sig = mt.signature
        if not sig.symbolic_dims:
            tasks.append(Task(mt.template, sig, target, "static"))
            continue
        if mt.template in ONE_BUCKET:  # compile takes its best record of any bucket (``any_bucket_dispatch``)
            tasks.append(Task(mt.template, sig, target, _bucket_key(sig, 1, 1)))
            continue
        for b in spec.buckets:
            task = Task(mt.template, sig, target, _bucket_key(sig, b.lo, b.hi, b))
            moved = mt.bytes_moved(max(v for binding, _ in task.points() for v in binding.values()))
            if max_bytes is not None and moved > max_bytes:
                log.warning("extract_tasks: %s @ %s left out: it moves %.1f GiB at the bucket's representative "
                            "(max_bytes %.1f GiB); tune it with smaller buckets", mt.template, task.bucket,
                            moved / 2**30, max_bytes / 2**30)
                continue
            tasks.append(task)
    return tasks


def task_shares(mod, tasks, ir_passes=None) -> list:
    """Per ``Task`` of ``mod`` (from ``extract_tasks``): its signature's estimated share of the
    templated kernels' time with every symbolic dim at the task's bucket representative."""
    mts = model_tasks(mod, ir_passes)
    by_key = {(t.template, t.signature): t for t in mts}
    out = []
    for task in tasks:
        reps = set(task.dims.values())
        length = max(reps) if reps else 1
        mine = by_key.get((task.template, task.signature))
        if mine is None:
            raise NimbleError(f"task_shares: task {task} is not a task of the module")
        total = sum(t.seconds(length) for t in mts)
        out.append(mine.seconds(length) / total if total else 0.0)
    return out
