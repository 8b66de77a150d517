"""A measure worker process (``python -m nimble.tuner.runner_main``) seen from its parent.

``WorkerProcess.request`` writes one JSON request line and waits for one reply line; a worker
that dies or does not answer within the time limit is stopped and raises ``WorkerLost``
(``kind`` ``"crash"`` or ``"timeout"``, with the tail of its stderr); the next request starts a
fresh one. Kernels in the worker run with ``NIMBLE_NUM_THREADS`` (``fingerprint.num_threads()``).
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time

from ..errors import TuningError
from .fingerprint import NUM_THREADS_ENV, num_threads

STARTUP_TIMEOUT_S = 120.0


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
        from .scratch import worker_command

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
