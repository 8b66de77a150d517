"""Measurement: build configs in a pool of worker processes, time them in a separate runner.

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
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TuningError
from ..schedules.registry import Signature
from ..schedules.space import Config
from .fingerprint import NUM_THREADS_ENV, num_threads
from .scratch import ScratchFolder, worker_command
from .task import Task

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 120.0
_TOLERANCES = {"float16": 1e-2, "bfloat16": 1e-2, "float32": 1e-3, "float64": 1e-7}


@dataclass(frozen=True)
class MeasureOptions:
    """How configs are measured.

    ``number`` calls a repeat (raised until a repeat lasts ``min_repeat_ms``), ``repeat``
    repeats; ``timeout_s`` limits a config's build and, separately, its check plus timing;
    ``n_parallel`` builder processes (None: one per core; 0: the runner builds alone);
    ``rtol``/``atol`` override the per-dtype tolerance of the correctness check.
    """

    number: int = 1
    repeat: int = 3
    min_repeat_ms: float = 50.0
    timeout_s: float = 10.0
    check_correctness: bool = True
    n_parallel: int | None = None
    rtol: float | None = None
    atol: float | None = None

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
    return _TOLERANCES.get(np.dtype(dtype).name, 0.0)


# -- worker processes --------------------------------------------------------------------------
class WorkerLost(Exception):
    """A worker gave no reply: ``kind`` is ``"timeout"`` or ``"crash"``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class WorkerProcess:
    """One ``python -m nimble.tuner.runner_main`` process; ``request`` sends a JSON line, awaits one."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.proc: subprocess.Popen | None = None
        self._stderr = None
        self._buffer = b""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        argv, extra_env = worker_command("nimble.tuner.runner_main")
        env = {**os.environ, **extra_env}
        env[NUM_THREADS_ENV] = str(num_threads())
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env)

    def wait_ready(self) -> None:
        try:
            reply = self._read(STARTUP_TIMEOUT_S)
        except WorkerLost as exc:
            self.stop()
            raise TuningError(f"measure {self.role}: the worker process failed to start: {exc}") from None
        if not reply.get("ready"):
            raise TuningError(f"measure {self.role}: expected a ready line from the worker, got {reply!r}")

    def request(self, message: dict, timeout_s: float) -> dict:
        """The worker's reply to ``message``; raises ``WorkerLost`` (and stops the worker) on a timeout or death."""
        if not self.alive:
            self.start()
            self.wait_ready()
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._lost("crash", "the worker closed its input") from None
        return self._read(timeout_s)

    def _read(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise self._lost("timeout", f"no reply within the time limit of {timeout_s:g} s")
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise self._lost("crash", "the worker process died")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _lost(self, kind: str, what: str) -> WorkerLost:
        self.stop()
        code = self.proc.returncode
        if kind == "crash" and code is not None and code < 0:
            what += f" ({signal.Signals(-code).name})"
        elif kind == "crash" and code is not None:
            what += f" (exit status {code})"
        return WorkerLost(kind, f"{what}; {self.role} stderr: {self.stderr_tail()}".rstrip("; "))

    def stderr_tail(self, limit: int = 1500) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - limit))
        return self._stderr.read().decode("utf-8", "replace").strip()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


# -- the measurer ------------------------------------------------------------------------------
class Measurer:
    """Builder pool + runner process; ``measure(task, configs)`` returns one result per config."""

    def __init__(self, options: MeasureOptions | None = None) -> None:
        self.options = options or MeasureOptions()
        self.builders = [WorkerProcess(f"builder {i}") for i in range(self.options.builders)]
        self.runner = WorkerProcess("runner")
        self._pool = ThreadPoolExecutor(len(self.builders)) if self.builders else None
        self._scratch = ScratchFolder()
        self._folder = self._scratch.path
        self._task_data: dict[tuple[str, str], tuple[str, float, float]] = {}

    def __enter__(self) -> Measurer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker and delete the saved task data."""
        for worker in [*self.builders, self.runner]:
            worker.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._scratch.remove()

    def measure(self, task: Task, configs: list[Config]) -> list[MeasureResult]:
        """Build ``configs`` in parallel, then check and time them one by one."""
        description = task_to_json(task)
        folder, rtol, atol = self.task_data(task)
        built = self._build_all(description, configs)
        results = []
        for config, build in zip(configs, built):
            results.append(build if build is not None and not build.ok else
                           self._run(description, config, folder, rtol, atol, build))
        return results

    def task_data(self, task: Task) -> tuple[str, float, float]:
        """(folder of the saved inputs and reference outputs, rtol, atol), made once per task."""
        key = (task.workload_key.hash, str(task.bucket))
        if key not in self._task_data:
            tmpl, sig = task.template_obj, task.signature
            inputs = tmpl.random_inputs(sig, task.dims, np.random.default_rng(0))
            refs = [np.asarray(r) for r in tmpl.reference(sig, inputs)] if self.options.check_correctness else []
            folder = self._folder / f"task{len(self._task_data)}"
            folder.mkdir()
            for k, a in enumerate(inputs):
                np.save(folder / f"input_{k}.npy", np.ascontiguousarray(a), allow_pickle=False)
            for k, r in enumerate(refs):
                np.save(folder / f"reference_{k}.npy", r, allow_pickle=False)
            tol = max([default_tolerance(r.dtype) for r in refs], default=0.0)
            rtol = tol if self.options.rtol is None else self.options.rtol
            atol = tol if self.options.atol is None else self.options.atol
            self._task_data[key] = (str(folder), rtol, atol)
        return self._task_data[key]

    def _call(self, worker: WorkerProcess, message: dict) -> dict:
        try:
            reply = worker.request(message, self.options.timeout_s)
        except WorkerLost as exc:
            return {"ok": False, "kind": exc.kind, "message": str(exc)}
        if reply.get("fatal"):
            raise TuningError(f"measure {worker.role}: {reply['message']}")
        return reply

    def _build_all(self, description: dict, configs: list[Config]) -> list[MeasureResult | None]:
        if self._pool is None:
            return [None] * len(configs)
        idle: queue.Queue = queue.Queue()
        for worker in self.builders:
            idle.put(worker)

        def build(config: Config) -> MeasureResult:
            worker = idle.get()
            try:
                reply = self._call(worker, {"op": "build", "task": description, "index": config.index})
            finally:
                idle.put(worker)
            if reply["ok"]:
                return MeasureResult(config, build_s=reply["build_s"])
            return MeasureResult(config, error_kind=reply["kind"], error_message=reply["message"])

        return list(self._pool.map(build, configs))

    def _run(self, description: dict, config: Config, folder: str, rtol: float, atol: float,
             build: MeasureResult | None) -> MeasureResult:
        reply = self._call(self.runner, {"op": "load", "task": description, "index": config.index})
        if not reply["ok"]:
            return MeasureResult(config, error_kind=reply["kind"], error_message=reply["message"])
        build_s = build.build_s if build is not None else reply["build_s"]
        o = self.options
        reply = self._call(self.runner, {"op": "run", "data": folder, "number": o.number, "repeat": o.repeat,
                                         "min_repeat_ms": o.min_repeat_ms, "check": o.check_correctness,
                                         "rtol": rtol, "atol": atol})
        if not reply["ok"]:
            return MeasureResult(config, error_kind=reply["kind"], error_message=reply["message"], build_s=build_s)
        return MeasureResult(config, costs=tuple(reply["costs"]), build_s=build_s)
