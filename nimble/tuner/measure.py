"""Measurement: a builder compiles configs, a runner checks and times them (local processes here; Ray in ``ray_runner``).

    with Measurer(MeasureOptions(repeat=3, timeout_s=10)) as measurer:
        results = measurer.measure(task, configs)      # one MeasureResult per config

Each batch is built first, in parallel, by ``n_parallel`` builder processes (objects land in
the on-disk object cache), then timed one config at a time by the runner process, which
rebuilds from the cache. Builds never overlap a measurement, and measurements never overlap
each other, so a machine with few cores times kernels on quiet cores. Workers are
``python -m nimble.tuner.runner_main`` processes speaking JSON lines; a config that kills
its worker (segfault) is a ``crash``, one that exceeds ``timeout_s`` (in its build, or in its
check and timing) is a ``timeout``, and either way the next config gets a fresh worker.

Each task's inputs (``Template.random_inputs``, seeded) and numpy reference outputs are
computed once, in this process, and saved as ``.npy`` files the runner reads; every config's
outputs are compared with them (``rtol``/``atol`` by dtype: 1e-3 for float32) before timing.
Timing: ``number`` calls a repeat, raised until a repeat lasts ``min_repeat_ms``, ``repeat``
repeats, each reported as seconds per call. Kernels run with ``NIMBLE_NUM_THREADS`` threads
(``fingerprint.num_threads()``), the count the host fingerprint records.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import TuningError
from ..schedules.registry import Signature
from ..schedules.space import Config
from .fingerprint import HostFingerprint, host_fingerprint
from .scratch import ScratchFolder
from .task import Task
from .worker_process import STARTUP_TIMEOUT_S, WorkerLost, WorkerProcess  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

_TOLERANCES = {"float16": 1e-2, "bfloat16": 1e-2, "float32": 1e-3, "float64": 1e-7}


@dataclass(frozen=True)
class MeasureOptions:
    """How configs are measured.

    ``number`` calls a repeat (raised until a repeat lasts ``min_repeat_ms``), ``repeat``
    repeats; ``timeout_s`` limits a config's build and, separately, its check plus timing;
    ``n_parallel`` builder processes (None: one per core; 0: the runner builds alone);
    ``rtol``/``atol`` override the per-dtype tolerance of the correctness check. ``cold_cache``:
    successive calls rotate through copies of the arguments that together span twice the
    last-level cache, so each call finds its inputs (a dense layer's weight too) out of cache, as
    in a model whose other layers stream through the cache in between (TVM's cache flush).
    """

    number: int = 1
    repeat: int = 3
    min_repeat_ms: float = 50.0
    timeout_s: float = 10.0
    check_correctness: bool = True
    n_parallel: int | None = None
    rtol: float | None = None
    atol: float | None = None
    cold_cache: bool = False

    def __post_init__(self) -> None:
        for name in ("number", "repeat"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TuningError(f"MeasureOptions.{name}: expected an int >= 1, got {value!r}")
        if not self.min_repeat_ms >= 0:
            raise TuningError(f"MeasureOptions.min_repeat_ms: expected a number >= 0, got {self.min_repeat_ms!r}")
        if not self.timeout_s > 0:
            raise TuningError(f"MeasureOptions.timeout_s: expected seconds > 0, got {self.timeout_s!r}")
        if self.n_parallel is not None and (not isinstance(self.n_parallel, int) or self.n_parallel < 0):
            raise TuningError(f"MeasureOptions.n_parallel: expected None or an int >= 0, got {self.n_parallel!r}")

    @property
    def builders(self) -> int:
        return (os.cpu_count() or 1) if self.n_parallel is None else self.n_parallel


@dataclass(frozen=True)
class MeasureResult:
    """The outcome of one config: seconds per call of each repeat, or an error kind and message."""

    config: Config
    costs: tuple[float, ...] = ()
    error_kind: str | None = None
    error_message: str = ""
    build_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def mean_cost(self) -> float | None:
        return sum(self.costs) / len(self.costs) if self.ok and self.costs else None


# -- task descriptions (JSON, for the workers) -------------------------------------------------
def template_module(task: Task) -> dict:
    """The module defining ``task``'s template and the sys.path entry that imports it."""
    cls = type(task.template_obj)
    name = cls.__module__
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if name == "__main__" or file is None:
        return {"name": name, "path": None, "file": file}
    depth = len(name.split(".")) - (Path(file).stem != "__init__")  # folders between the root and the file
    root = Path(file).resolve().parents[depth]
    return {"name": name, "path": str(root), "file": file}


def task_to_json(task: Task) -> dict:
    """A JSON description of ``task`` that ``task_from_json`` turns back into an equal task."""
    key = task.workload_key.to_json()
    return {"template": task.template, "args": key["args"], "attrs": key["attrs"], "target": task.target,
            "bucket": str(task.bucket), "module": template_module(task)}


def task_from_json(obj: dict) -> Task:
    """The task of ``task_to_json``, importing the module that registers its template first."""
    import importlib
    import importlib.util

    module = obj.get("module") or {}
    name, path, file = module.get("name"), module.get("path"), module.get("file")
    if name and name not in sys.modules:
        if name == "__main__" or path is None:
            if file:
                spec = importlib.util.spec_from_file_location("nimble_user_templates", file)
                loaded = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(loaded)
        else:
            if path not in sys.path:
                sys.path.insert(0, path)
            importlib.import_module(name)
    sig = Signature.make([(a["shape"], a["dtype"]) for a in obj["args"]], **obj.get("attrs", {}))
    return Task(obj["template"], sig, obj["target"], obj["bucket"])


def default_tolerance(dtype) -> float:
    """rtol = atol of the correctness check for outputs of ``dtype`` (0 for integers)."""
    return _TOLERANCES.get(numpy_dtype(dtype).name, 0.0)


# -- task data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskData:
    """A task's seeded inputs and numpy reference outputs, and the tolerance of the correctness check."""

    inputs: tuple[np.ndarray, ...]
    references: tuple[np.ndarray, ...]
    rtol: float
    atol: float

    @classmethod
    def of(cls, task: Task, options: MeasureOptions, dims: dict | None = None) -> TaskData:
        """The data at ``dims`` (default: the task's representatives); see ``task_data_of`` for traffic points."""
        tmpl, sig = task.template_obj, task.signature
        inputs = tmpl.random_inputs(sig, task.dims if dims is None else dims, np.random.default_rng(0))
        refs = [np.asarray(r) for r in tmpl.reference(sig, inputs)] if options.check_correctness else []
        tol = max([default_tolerance(r.dtype) for r in refs], default=0.0)
        return cls(tuple(np.asarray(a, order="C") for a in inputs), tuple(refs),  # (ascontiguousarray makes 0-d 1-d)
                   tol if options.rtol is None else options.rtol, tol if options.atol is None else options.atol)

    def save(self, folder: Path) -> None:
        """Write ``input_<k>.npy`` and ``reference_<k>.npy`` files, what a runner worker reads."""
        folder.mkdir(parents=True, exist_ok=True)
        for k, a in enumerate(self.inputs):
            np.save(folder / f"input_{k}.npy", a, allow_pickle=False)
        for k, r in enumerate(self.references):
            np.save(folder / f"reference_{k}.npy", r, allow_pickle=False)


POINTS_FILE = "points.json"


@dataclass(frozen=True)
class PointsData:
    """A task's data at each of its traffic points (``Task.points``) with their weights: the runner times
    a config at every point and reports the weighted mean seconds per call of each repeat."""

    parts: tuple[tuple[TaskData, int], ...]

    @property
    def rtol(self) -> float:
        return max(d.rtol for d, _ in self.parts)

    @property
    def atol(self) -> float:
        return max(d.atol for d, _ in self.parts)

    def save(self, folder: Path) -> None:
        """Each point's files in ``point_<k>/``, and ``points.json`` listing them with their weights."""
        folder.mkdir(parents=True, exist_ok=True)
        for k, (data, _) in enumerate(self.parts):
            data.save(folder / f"point_{k}")
        (folder / POINTS_FILE).write_text(json.dumps(
            {"points": [{"folder": f"point_{k}", "weight": w} for k, (_, w) in enumerate(self.parts)]}))


def task_data_of(task: Task, options: MeasureOptions) -> TaskData | PointsData:
    """What a runner needs to measure ``task``: its data at the representatives, or at each traffic point."""
    points = task.points()
    if len(points) == 1:
        return TaskData.of(task, options)
    return PointsData(tuple((TaskData.of(task, options, binding), weight) for binding, weight in points))


def call_worker(worker: WorkerProcess, message: dict, timeout_s: float) -> dict:
    """The worker's reply, or an error reply of kind timeout/crash when the worker is lost."""
    try:
        reply = worker.request(message, timeout_s)
    except WorkerLost as exc:
        return {"ok": False, "kind": exc.kind, "message": str(exc)}
    if reply.get("fatal"):
        raise TuningError(f"measure {worker.role}: {reply['message']}")
    return reply


def load_and_run(runner: WorkerProcess, description: dict, index: int, folder: str, data: TaskData | PointsData,
                 options: MeasureOptions) -> dict:
    """Build (from the object cache) config ``index`` in ``runner``, check and time it: the runner's reply."""
    reply = call_worker(runner, {"op": "load", "task": description, "index": index}, options.timeout_s)
    if not reply["ok"]:
        return reply
    o = options
    timed = call_worker(runner, {"op": "run", "data": folder, "number": o.number, "repeat": o.repeat,
                                 "min_repeat_ms": o.min_repeat_ms, "check": o.check_correctness,
                                 "rtol": data.rtol, "atol": data.atol,
                                 "flush_bytes": flush_bytes() if o.cold_cache else 0}, o.timeout_s)
    return {**timed, "build_s": reply["build_s"]}


def flush_bytes() -> int:
    """Bytes a cold-cache measurement rotates its arguments through: twice this host's last-level cache
    (32 MiB when the fingerprint does not know its caches)."""
    caches = host_fingerprint("llvm").cache_kib
    return 2 * 1024 * (max(caches.values()) if caches else 32 * 1024)


def result_of(config: Config, reply: dict, build_s: float | None = None) -> MeasureResult:
    """The MeasureResult of a worker's reply (``build_s`` from the builder when it built the config)."""
    build_s = reply.get("build_s", 0.0) if build_s is None else build_s
    if not reply["ok"]:
        return MeasureResult(config, error_kind=reply["kind"], error_message=reply["message"], build_s=build_s)
    return MeasureResult(config, costs=tuple(reply.get("costs", ())), build_s=build_s)


# -- local builder and runner ------------------------------------------------------------------
class LocalBuilder:
    """``options.builders`` builder processes on this machine, building a batch in parallel."""

    def __init__(self, options: MeasureOptions) -> None:
        self.options = options
        self.workers = [WorkerProcess(f"builder {i}") for i in range(options.builders)]
        self._pool = ThreadPoolExecutor(len(self.workers)) if self.workers else None

    def build(self, description: dict, configs: list[Config]) -> list[MeasureResult | None]:
        """One result per config (build time or build error); all None when there are no builders."""
        if self._pool is None:
            return [None] * len(configs)
        idle: queue.Queue = queue.Queue()
        for worker in self.workers:
            idle.put(worker)

        def build(config: Config) -> MeasureResult:
            worker = idle.get()
            try:
                reply = call_worker(worker, {"op": "build", "task": description, "index": config.index},
                                    self.options.timeout_s)
            finally:
                idle.put(worker)
            return result_of(config, reply)

        return list(self._pool.map(build, configs))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class LocalRunner:
    """One runner process on this machine: checks and times one config at a time."""

    def __init__(self, options: MeasureOptions) -> None:
        self.options = options
        self.worker = WorkerProcess("runner")

    def host(self, target: str) -> HostFingerprint:
        """The fingerprint of the host the runner measures on."""
        return host_fingerprint(target)

    def run(self, description: dict, config: Config, folder: str, data: TaskData,
            build: MeasureResult | None) -> MeasureResult:
        reply = load_and_run(self.worker, description, config.index, folder, data, self.options)
        return result_of(config, reply, build.build_s if build is not None else None)

    def close(self) -> None:
        self.worker.stop()


# -- the measurer ------------------------------------------------------------------------------
class Measurer:
    """A builder and a runner (local processes by default); ``measure(task, configs)`` returns one result per config.

    ``measure`` builds the batch in parallel, then checks and times the configs one by one in the
    runner, so builds never overlap a measurement; ``on_result`` is called with each result as it is
    measured (the tuning loop commits it there).
    """

    def __init__(self, options: MeasureOptions | None = None, builder: LocalBuilder | None = None,
                 runner: LocalRunner | None = None) -> None:
        self.options = options or MeasureOptions()
        self.builder = builder or LocalBuilder(self.options)
        self.runner = runner or LocalRunner(self.options)
        self._scratch = ScratchFolder()
        self._folder = self._scratch.path
        self._task_data: dict[tuple[str, str], tuple[str, TaskData | PointsData]] = {}

    def __enter__(self) -> Measurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker and delete the saved task data."""
        self.builder.close()
        self.runner.close()
        self._scratch.remove()

    def host(self, target: str) -> HostFingerprint:
        """The fingerprint of the host(s) this measurer measures on: its records' ``host``."""
        return self.runner.host(target)

    def measure(self, task: Task, configs: list[Config],
                on_result: Callable[[MeasureResult], None] | None = None) -> list[MeasureResult]:
        """Build ``configs`` in parallel, then check and time them one by one."""
        description = task_to_json(task)
        folder, data = self.task_data(task)
        built = self.builder.build(description, configs)
        results = []
        for config, build in zip(configs, built):
            result = build if build is not None and not build.ok else self.runner.run(description, config, folder,
                                                                                      data, build)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results

    def task_data(self, task: Task) -> tuple[str, TaskData | PointsData]:
        """(folder of the saved inputs and reference outputs, the data), made once per task."""
        key = (task.workload_key.hash, str(task.bucket))
        if key not in self._task_data:
            data = task_data_of(task, self.options)
            folder = self._folder / f"task{len(self._task_data)}"
            data.save(folder)
            self._task_data[key] = (str(folder), data)
        return self._task_data[key]
