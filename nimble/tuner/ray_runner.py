"""Builds and measurements on a Ray cluster: the builder and runner of ``tune(..., runner="ray")``.

    with RayMeasurer(MeasureOptions(), address="auto") as measurer:   # or tune(..., runner="ray", address=...)
        results = measurer.measure(task, configs, on_result=commit)

Builds run on any node (one CPU each; as many at once as the cluster has CPUs; with
``MeasureOptions.n_parallel=0`` there is no separate build and the measuring node builds). Measurements run only on nodes that offer the custom
resource ``nimble_host`` (``ray start ... --resources '{"nimble_host": 1}'``) and whose host
fingerprint (CPU model, codegen features, thread count) equals the target's — by default the
driver's own, or ``host=``. A measurement asks for that resource and every CPU of its node, so
one host times one config at a time, never beside a build on that host, even with several
tuners (drivers) sharing the cluster. Nodes are probed once for their fingerprint.

Each config is a small state machine driven from here: built (any node), then measured (a
matching node with no measurement in flight); results are handed to ``on_result`` as they
arrive, so the tuning loop commits them one by one. A Ray worker or node lost mid-flight loses
only its in-flight configs: they are submitted again (the measurement to another matching node)
and recorded once; a config whose attempts lose ``MAX_LOST`` workers is recorded as a ``crash``.
A kernel that crashes or hangs kills only the measure worker process the Ray task drives
(``measure.WorkerProcess``), which is the ``crash`` / ``timeout`` of the local runner.

Ray workers keep their builder and runner processes between tasks, and each task's inputs and
reference outputs travel once through the object store. Workers import nimble from the driver's
source tree when it exists there (``PYTHONPATH`` in the job's runtime env); other hosts need the
same nimble installed. ``ray`` is an optional extra: ``pip install 'nimble[distributed]'``.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import TuningError
from ..schedules.space import Config
from .fingerprint import NUM_THREADS_ENV, HostFingerprint, host_fingerprint, num_threads
from .measure import (MeasureOptions, MeasureResult, PointsData, TaskData, call_worker, load_and_run, result_of,
                      task_data_of, task_to_json)
from .task import Task
from .worker_process import WorkerProcess

log = logging.getLogger(__name__)

MEASURE_RESOURCE = "nimble_host"
MAX_LOST = 3
PROBE_TIMEOUT_S = 120.0
SUSPECT_S = 30.0  # a node that lost a measurement is not measured on for this long (unless Ray says it is dead)


def _ray():
    try:
        import ray
    except ImportError:
        raise TuningError("runner 'ray': the ray package is not installed: pip install 'nimble[distributed]'") from None
    return ray


def worker_runtime_env() -> dict:
    """The runtime env that lets Ray workers import this nimble (and the driver's ``PYTHONPATH``)."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}


# -- on the Ray workers (state kept per Ray worker process) ------------------------------------
_WORKERS: dict[str, WorkerProcess] = {}
_FOLDERS: dict[str, str] = {}


def _worker(role: str, threads: int) -> WorkerProcess:
    os.environ[NUM_THREADS_ENV] = str(threads)  # the measure worker runs kernels with the target's thread count
    if role not in _WORKERS:
        _WORKERS[role] = WorkerProcess(role)
        atexit.register(_WORKERS[role].stop)
    return _WORKERS[role]


def _node_id() -> str:
    return _ray().get_runtime_context().get_node_id()


def _probe(target: str, threads: int) -> tuple[str, dict]:
    return _node_id(), host_fingerprint(target, threads).to_json()


def _guarded(call) -> dict:
    try:
        reply = call()
    except TuningError as exc:  # the task cannot be set up on this worker: no config can be measured
        return {"ok": False, "fatal": True, "kind": "unknown", "message": str(exc)}
    return {**reply, "node": _node_id()}


def _build(description: dict, index: int, timeout_s: float, threads: int) -> dict:
    message = {"op": "build", "task": description, "index": index}
    return _guarded(lambda: call_worker(_worker("builder", threads), message, timeout_s))


def _measure(description: dict, index: int, data_key: str, data: TaskData | PointsData, options: MeasureOptions,
             threads: int) -> dict:
    if data_key not in _FOLDERS:
        folder = tempfile.mkdtemp(prefix="nimble-ray-task-")
        atexit.register(shutil.rmtree, folder, True)
        data.save(Path(folder))
        _FOLDERS[data_key] = folder
    return _guarded(lambda: load_and_run(_worker("runner", threads), description, index, _FOLDERS[data_key],
                                         data, options))


# -- the driver ---------------------------------------------------------------------------------
@dataclass
class _Job:
    """One config on its way through build and measurement."""

    config: Config
    phase: str  # "build" or "measure"
    lost: int = 0
    build_s: float | None = None
    node: str | None = None


class RayMeasurer:
    """Builder and runner on a Ray cluster; ``measure(task, configs, on_result)`` as ``Measurer``'s.

    ``address``: as ``ray.init``'s (``"auto"``, ``"ray://head:10001"``; None joins ``RAY_ADDRESS``
    or starts a local cluster); ignored when this process is already connected. ``host``: the
    fingerprint to measure on (default: this machine's with ``NIMBLE_NUM_THREADS`` threads).
    """

    def __init__(self, options: MeasureOptions | None = None, address: str | None = None,
                 host: HostFingerprint | None = None, resource: str = MEASURE_RESOURCE) -> None:
        ray = _ray()
        self.options = options or MeasureOptions()
        self.resource = resource
        self._host = host
        self.threads = host.threads if host is not None else num_threads()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, runtime_env=worker_runtime_env(), log_to_driver=False)
        self._remote_build = ray.remote(max_retries=0)(_build)
        self._remote_measure = ray.remote(max_retries=0)(_measure)
        self._remote_probe = ray.remote(max_retries=0, num_cpus=0)(_probe)
        self._fingerprints: dict[str, HostFingerprint] = {}
        self._suspects: dict[str, float] = {}  # node id -> when it lost a measurement
        self.measured_on: Counter = Counter()  # node id -> configs measured there
        self.busy_nodes: set[str] = set()  # nodes with one of this measurer's measurements in flight
        self._task_data: dict[tuple[str, str], tuple[str, object, TaskData | PointsData]] = {}
        self.lost_workers = 0  # Ray workers or nodes lost under a config, over this measurer's life

    def __enter__(self) -> RayMeasurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect from Ray (stopping the cluster this measurer started, if any)."""
        if self._owns_ray:
            _ray().shutdown()
            self._owns_ray = False

    def host(self, target: str) -> HostFingerprint:
        """The fingerprint measurements must match: ``host=`` or this machine's."""
        return self._host if self._host is not None else host_fingerprint(target, self.threads)

    def measuring_nodes(self, target: str) -> list[tuple[str, float]]:
        """(node id, CPUs) of the alive nodes offering ``resource`` whose fingerprint matches ``host(target)``."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = {n["NodeID"]: n for n in ray.nodes()
                 if n.get("Alive") and n.get("Resources", {}).get(self.resource, 0) >= 1}
        now = time.monotonic()
        unknown = [i for i in nodes if i not in self._fingerprints and now - self._suspects.get(i, -SUSPECT_S) >= SUSPECT_S]
        probes = [self._remote_probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(i, soft=False))
                  .remote(target, self.threads) for i in unknown]
        for node_id, probe in zip(unknown, probes):
            try:
                _, fingerprint = ray.get(probe, timeout=PROBE_TIMEOUT_S)
            except ray.exceptions.RayError as exc:
                log.warning("Ray node %s: no fingerprint (%s); not measuring there for now", node_id[:8], exc)
                self._suspects[node_id] = time.monotonic()
                continue
            self._fingerprints[node_id] = HostFingerprint.from_json(fingerprint)
        want = self.host(target)
        matching = [(i, float(n["Resources"].get("CPU", 0))) for i, n in sorted(nodes.items())
                    if i in self._fingerprints and self._fingerprints[i].id == want.id]
        trusted = [m for m in matching if now - self._suspects.get(m[0], -SUSPECT_S) >= SUSPECT_S]
        if trusted:  # nodes that lost a measurement lately only when no other node matches
            return trusted
        if not matching:
            seen = sorted({str(f) for i, f in self._fingerprints.items() if i in nodes}) or ["none"]
            raise TuningError(f"runner 'ray': expected an alive node offering the {self.resource!r} resource "
                              f"with host fingerprint {want}, found: {'; '.join(seen)} "
                              f"(start measuring nodes with --resources '{{\"{self.resource}\": 1}}')")
        return matching

    def _data(self, task: Task) -> tuple[str, object, TaskData | PointsData]:
        key = (task.workload_key.hash, str(task.bucket))
        if key not in self._task_data:
            data = task_data_of(task, self.options)
            self._task_data[key] = (f"{key[0]}:{key[1]}", _ray().put(data), data)
        return self._task_data[key]

    def measure(self, task: Task, configs: list[Config], on_result=None) -> list[MeasureResult]:
        """Build and measure ``configs`` on the cluster; one result per config, in order."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        description, options, threads = task_to_json(task), self.options, self.threads
        data_key, data_ref, _ = self._data(task)
        results: dict[int, MeasureResult] = {}
        inflight: dict = {}  # ObjectRef -> _Job
        waiting: deque[_Job] = deque()  # built, waiting for a free measuring node
        busy = self.busy_nodes
        busy.clear()

        def finish(job: _Job, result: MeasureResult) -> None:
            results[job.config.index] = result
            if on_result is not None:
                on_result(result)

        def build(job: _Job) -> None:
            job.phase = "build"
            inflight[self._remote_build.options(num_cpus=1).remote(description, job.config.index, options.timeout_s,
                                                                   threads)] = job

        def dispatch() -> None:
            if not waiting:
                return
            for node_id, cpus in self.measuring_nodes(task.target):
                if not waiting:
                    break
                if node_id in busy:
                    continue
                job = waiting.popleft()
                job.phase, job.node = "measure", node_id
                busy.add(node_id)
                strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
                ref = self._remote_measure.options(num_cpus=cpus, resources={self.resource: 1},
                                                   scheduling_strategy=strategy)
                inflight[ref.remote(description, job.config.index, data_key, data_ref, options, threads)] = job

        for config in configs:
            if options.builders:
                build(_Job(config, "build"))
            else:
                waiting.append(_Job(config, "measure"))
        dispatch()
        try:
            while inflight:
                [ref], _ = ray.wait(list(inflight), num_returns=1)
                job = inflight.pop(ref)
                busy.discard(job.node if job.phase == "measure" else None)
                try:
                    reply = ray.get(ref)
                except ray.exceptions.RayTaskError:
                    raise  # a bug in the remote functions: they return errors as replies
                except ray.exceptions.RayError as exc:
                    self._lose(job, exc, finish, build, waiting)
                    dispatch()
                    continue
                if reply.get("fatal"):
                    raise TuningError(f"measure on Ray node {reply.get('node', '?')[:8]}: {reply['message']}")
                if job.phase == "build" and reply["ok"]:
                    job.build_s = reply["build_s"]
                    waiting.append(job)
                else:
                    if job.phase == "measure":
                        self.measured_on[reply["node"]] += 1
                    finish(job, result_of(job.config, reply, job.build_s))
                dispatch()
        finally:
            busy.clear()
            for ref in inflight:
                ray.cancel(ref, force=True)
        return [results[c.index] for c in configs]

    def _lose(self, job: _Job, exc: Exception, finish, build, waiting: deque) -> None:
        """A Ray worker or node died under ``job``: submit it again, or record a crash after ``MAX_LOST``."""
        self.lost_workers += 1
        job.lost += 1
        if job.phase == "measure" and job.node is not None:
            self._suspects[job.node] = time.monotonic()
        log.warning("config #%d: lost its Ray worker in the %s phase (%s: %s); attempt %d of %d",
                    job.config.index, job.phase, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
                    job.lost, MAX_LOST)
        if job.lost >= MAX_LOST:
            finish(job, MeasureResult(job.config, error_kind="crash",
                                      error_message=f"lost {job.lost} Ray workers measuring it; last: {exc}"[:4000]))
        elif job.phase == "build":
            build(job)
        else:
            job.phase = "measure"
            waiting.appendleft(job)
