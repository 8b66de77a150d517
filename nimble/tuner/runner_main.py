"""The measure worker: ``python -m nimble.tuner.runner_main``, one JSON request a line on stdin,
one JSON reply a line on the original stdout (anything else the process prints goes to stderr).

Started by ``measure.Measurer`` as a builder or as the runner. Requests:

- ``{"op": "build", "task": T, "index": i}``: compile config ``i`` of task ``T`` (filling the
  on-disk object cache) and drop the kernel; replies ``{"ok": true, "build_s": s}``.
- ``{"op": "load", "task": T, "index": i}``: the same, keeping the kernel for ``run``.
- ``{"op": "run", "data": DIR, "number", "repeat", "min_repeat_ms", "check", "rtol", "atol", "flush_bytes"}``:
  run the loaded kernel on the inputs saved in ``DIR`` (``input_<k>.npy``), compare its outputs
  with ``reference_<k>.npy`` when ``check``, then time it; replies ``{"ok": true, "costs": [...]}``
  (seconds per call, one per repeat). With ``flush_bytes`` > 0 the timed calls rotate through copies
  of the arguments spanning that many bytes (``rotation``): each call starts with its data out of cache.
  When ``DIR`` holds ``points.json`` (a task measured at traffic points: ``measure.PointsData``), each
  listed folder is checked and timed in turn and each reported repeat is the weighted mean over them.

A failure replies ``{"ok": false, "kind": KIND, "message": TEXT}`` with ``KIND`` one of
``build``, ``invalid_config``, ``runtime``, ``wrong_result``; a task the worker cannot set up
at all (its template module does not import) adds ``"fatal": true``. Crashes and hangs have no reply:
the parent sees the process die or time out. The worker exits when stdin closes or when its
parent process goes away (a watchdog thread; a hanging kernel call releases the GIL).
"""
from __future__ import annotations

import faulthandler
import json
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from ..schedules.registry import TemplateError

_WATCHDOG_PERIOD_S = 0.5
_MAX_NUMBER = 1 << 24
_KEPT_FOLDERS = 8  # task data folders a worker keeps loaded (a task's traffic points)


def time_calls(call, number: int, repeat: int, min_repeat_ms: float) -> list[float]:
    """Seconds per call of ``call()``, one value per repeat of ``number`` calls each.

    ``number`` grows first (untimed calibration runs) until one repeat takes at least
    ``min_repeat_ms``; every repeat then uses that number.
    """
    clock = time.perf_counter
    number = max(1, number)
    while min_repeat_ms > 0 and number < _MAX_NUMBER:
        start = clock()
        for _ in range(number):
            call()
        elapsed_ms = (clock() - start) * 1e3
        if elapsed_ms >= min_repeat_ms:
            break
        grow = math.ceil(number * min_repeat_ms * 1.2 / max(elapsed_ms, 1e-3))
        number = min(max(grow, number * 2), _MAX_NUMBER)
    costs = []
    for _ in range(max(1, repeat)):
        start = clock()
        for _ in range(number):
            call()
        costs.append(max((clock() - start) / number, 1e-12))
    return costs


MAX_COPIES, MAX_ROTATION_BYTES = 64, 1 << 30


def rotation(args: list, flush_bytes: int) -> list:
    """Argument lists to cycle through so that successive calls touch ``flush_bytes`` (a cold cache): ``args``
    itself and copies of every array, as many as span ``flush_bytes`` (at most ``MAX_COPIES`` and 1 GiB);
    ``[args]`` when ``flush_bytes`` is 0 or one set already spans it."""
    size = sum(a.nbytes for a in args)
    copies = min(MAX_COPIES, -(-int(flush_bytes) // max(size, 1)), max(1, MAX_ROTATION_BYTES // max(size, 1)))
    return [args] + [[a.copy() for a in args] for _ in range(copies - 1)]


def rotating(call, sets: list):
    """``call`` on the next argument list of ``sets`` at each call."""
    if len(sets) == 1:
        only = sets[0]
        return lambda: call(*only)
    at = [0]

    def next_call():
        i = at[0]
        at[0] = i + 1 if i + 1 < len(sets) else 0
        call(*sets[i])

    return next_call


def compare_outputs(outputs: list, references: list, rtol: float, atol: float) -> str | None:
    """None when every output matches its reference, else a message naming the first mismatch."""
    if len(outputs) != len(references):
        return f"expected {len(references)} outputs, got {len(outputs)}"
    for k, (got, want) in enumerate(zip(outputs, references)):
        got = np.asarray(got)
        if got.shape != want.shape:
            return f"output {k}: expected shape {want.shape}, got {got.shape}"
        if got.size == 0:
            continue
        close = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
        if not close.all():
            bad = np.argwhere(~close)
            where = tuple(int(i) for i in bad[0])
            err = np.abs(got.astype("float64") - want.astype("float64"))
            finite = err[np.isfinite(err)]
            worst = float(finite.max()) if finite.size else float("nan")
            return (f"output {k}: {len(bad)} of {got.size} elements differ from the reference "
                    f"(rtol {rtol:g}, atol {atol:g}); first at {where}: got {got[where].item()!r}, "
                    f"expected {want[where].item()!r}; largest finite abs error {worst:.4g}")
    return None


class MeasureWorker:
    """The state of one worker process: tasks seen, the loaded kernel and the task data."""

    def __init__(self) -> None:
        self.tasks: dict[str, object] = {}
        self.kernel = None
        self.data: dict[str, tuple[list, list]] = {}

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op in ("build", "load"):
            return self.build(request, keep=op == "load")
        if op == "run":
            return self.run(request)
        return {"ok": False, "kind": "unknown", "message": f"measure worker: unknown op {op!r}"}

    def task(self, description: dict):
        from .measure import task_from_json

        text = json.dumps(description, sort_keys=True)
        if text not in self.tasks:
            self.tasks[text] = task_from_json(description)
        return self.tasks[text]

    def build(self, request: dict, keep: bool) -> dict:
        self.kernel = None
        start = time.perf_counter()
        try:
            task = self.task(request["task"])
        except Exception as exc:  # noqa: BLE001 - no config of this task can be measured here
            return {"ok": False, "fatal": True, "kind": "unknown",
                    "message": f"the measure worker could not set up the task: {_describe(exc)}"}
        try:
            index = request["index"]
            if not isinstance(index, int) or not 0 <= index < len(task.space):
                return _error("invalid_config", f"config index {index!r} is outside [0, {len(task.space)})")
            kernel = task.build(task.space.get(index))
        except TemplateError as exc:
            return _error("invalid_config", _describe(exc))
        except Exception as exc:  # noqa: BLE001 - every build failure is recorded, not raised
            return _error("build", _describe(exc))
        if keep:
            self.kernel = kernel
        return {"ok": True, "build_s": time.perf_counter() - start}

    def load_data(self, folder: str) -> tuple[list, list]:
        """The inputs and references saved in ``folder``, kept for the folders of the latest task (its points)."""
        if folder not in self.data:
            if len(self.data) >= _KEPT_FOLDERS:
                self.data.clear()
            path = Path(folder)
            inputs = [np.load(p, allow_pickle=False) for p in sorted(path.glob("input_*.npy"), key=_number)]
            refs = [np.load(p, allow_pickle=False) for p in sorted(path.glob("reference_*.npy"), key=_number)]
            self.data[folder] = (inputs, refs)
        return self.data[folder]

    def run(self, request: dict) -> dict:
        if self.kernel is None:
            return _error("runtime", "measure worker: run requested before a successful load")
        listing = Path(request["data"]) / "points.json"
        if not listing.exists():
            return self.run_at(request, request["data"])
        total, costs = 0, None
        for point in json.loads(listing.read_text())["points"]:
            reply = self.run_at(request, str(Path(request["data"]) / point["folder"]))
            if not reply["ok"]:
                return reply
            weight = point["weight"]
            total += weight
            timed = [weight * c for c in reply["costs"]]
            costs = timed if costs is None else [a + b for a, b in zip(costs, timed)]
        return {"ok": True, "costs": [c / total for c in costs]}

    def run_at(self, request: dict, folder: str) -> dict:
        tk = self.kernel
        try:
            inputs, refs = self.load_data(folder)
            prepared = tk.prepare_inputs([a.copy() for a in inputs])
            result = tk.kernel(*prepared)
        except Exception as exc:  # noqa: BLE001
            return _error("runtime", _describe(exc))
        outputs = list(result) if isinstance(result, tuple) else [result]
        if request.get("check", True):
            mismatch = compare_outputs(outputs, refs, request["rtol"], request["atol"])
            if mismatch is not None:
                return _error("wrong_result", mismatch)
        kernel = tk.kernel
        full = [None] * (len(kernel.inputs) + len(kernel.outputs))
        for pos, i in enumerate(kernel.inputs):
            full[i] = prepared[pos]
        for pos, i in enumerate(kernel.outputs):
            full[i] = outputs[pos]
        try:
            timed = rotating(kernel, rotation(full, request.get("flush_bytes", 0)))
            costs = time_calls(timed, request["number"], request["repeat"], request["min_repeat_ms"])
        except Exception as exc:  # noqa: BLE001
            return _error("runtime", _describe(exc))
        return {"ok": True, "costs": costs}


def _number(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


def _error(kind: str, message: str) -> dict:
    return {"ok": False, "kind": kind, "message": message}


def _describe(exc: BaseException) -> str:
    tail = "".join(traceback.format_exception(exc)[-3:])
    return f"{type(exc).__name__}: {exc}\n{tail}"[:4000]


def _watch_parent(parent: int) -> None:
    """Exit as soon as the parent process is gone (this process was re-parented)."""
    while True:
        time.sleep(_WATCHDOG_PERIOD_S)
        if os.getppid() != parent:
            os._exit(0)


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # kernels, templates and libraries that print write to stderr, not the protocol
    sys.stdout = sys.stderr
    faulthandler.enable()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    worker = MeasureWorker()
    protocol.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = worker.handle(json.loads(line))
        except Exception as exc:  # noqa: BLE001 - a malformed request must not kill the worker silently
            reply = _error("unknown", _describe(exc))
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
