"""``VirtualMachine``: runs an executable natively (machine code compiled from its bytecode) or
with the Python interpreter, the reference (``backend="python"`` or ``NIMBLE_VM=python``).

Both give the same results and the same errors; ``run``, ``invoke``, ``profile``,
``shape_histogram``, ``kernel_calls`` and ``pool`` work with both. An executable the native VM
cannot run (a tensor rank above its limit, an unknown host function) runs on the Python VM,
with a warning saying why.
"""
from __future__ import annotations

import logging

from .. import settings
from ..errors import NimbleError

log = logging.getLogger("nimble.vm")
BACKENDS = ("native", "python")


def _backend(backend: str | None) -> str:
    chosen = backend or settings.current().vm
    if chosen not in BACKENDS:
        where = "backend" if backend else "NIMBLE_VM"
        raise NimbleError(f"{where}: expected one of {BACKENDS}, got {chosen!r}")
    return chosen


class VirtualMachine:
    """Runs an ``Executable``: ``vm.run(*inputs)`` calls ``main``; ``vm.invoke(name, *inputs)`` any entry.

    ``backend``: ``"native"`` (default) or ``"python"``; ``NIMBLE_VM`` sets the default.
    One VM runs one call at a time; use one per thread (they may share the executable).
    """

    backend = "base"

    def __new__(cls, exe=None, backend: str | None = None):
        if cls is VirtualMachine:
            from .interpreter import PythonVM

            cls = PythonVM
            if _backend(backend) == "native":
                from .native import native_program
                from .native_codegen import NativeUnsupported

                try:
                    native_program(exe)
                    cls = NativeVirtualMachine
                except NativeUnsupported as exc:
                    log.warning("the native VM cannot run this executable (%s); using the Python VM", exc)
        return object.__new__(cls)

    def run(self, *inputs):
        """Call ``main`` with ``inputs`` (numpy arrays, tuples, ADT values); ``invoke`` (each
        backend's) calls any entry function."""
        return self.invoke("main", *inputs)


class NativeVirtualMachine(VirtualMachine):
    """The native VM (see ``nimble.vm.native``)."""

    backend = "native"

    def __init__(self, exe, backend: str | None = None):
        from .native import NativeVM

        self.exe = exe
        self._vm = NativeVM(exe)
        self.pool = self._vm.pool

    def invoke(self, name: str, *inputs):
        """Call entry function ``name``; outputs come back as numpy arrays / tuples / ``ADT``."""
        return self._vm.call(name, inputs)

    @property
    def kernel_calls(self) -> list:
        """Calls of each packed function (kernels, dispatch tables, host functions) by this VM."""
        return self._vm.kernel_calls()

    def shape_histogram(self) -> dict:
        """Per dispatch table: {value of its dispatched dim: calls} over this VM's runs."""
        return self._vm.shape_histogram()

    def profile(self, *inputs, name: str = "main"):
        """Run once with every kernel call timed: a ``ProfileReport`` (instruction counts, no times)."""
        return self._vm.profile(name, inputs)
