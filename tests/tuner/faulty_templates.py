"""Test-only templates whose configs crash, hang, compute wrong results or fail to build.

Imported by the measure and tune tests *and* by the measure worker processes (the measure
layer passes a template's module name and path to its workers), so the registrations below
must happen at import time and nowhere else.

``test_faulty`` computes ``out = 2 * x`` for ``x`` of shape ``(n,)``; its one knob, ``mode``,
picks how a config behaves:

- ``double`` / ``double_vec``: correct (``double_vec`` splits and vectorizes);
- ``crash``: reads ``x[i + 2**40]``, far outside any mapping (a segfault);
- ``hang``: a reduction over 2**40 iterations (runs for hours);
- ``wrong``: computes ``3 * x``;
- ``raise_build``: ``instantiate`` raises (a build error);
- ``raise_run``: the input preparation raises in the runner (a runtime error);
- ``hang_build``: ``instantiate`` sleeps for an hour (a build timeout).
"""
from __future__ import annotations

import time

import numpy as np

from nimble import te
from nimble.errors import NimbleError
from nimble.schedules import ConfigSpace, Instance, Signature, Template, template

MODES = ("double", "double_vec", "crash", "hang", "wrong", "raise_build", "raise_run", "hang_build")
FAR = 1 << 40
REFERENCE_CALLS: list = []  # the input shape of each reference call made in this process


@template("test_faulty", "llvm")
class FaultyTemplate(Template):
    def space(self, sig: Signature) -> ConfigSpace:
        space = ConfigSpace("test_faulty")
        space.define_knob("mode", MODES)
        return space

    def fallback(self, sig, space, hints=None):
        return space.config(mode="double")

    def instantiate(self, sig, cfg) -> Instance:
        mode = cfg["mode"]
        if mode == "raise_build":
            raise NimbleError("test_faulty: this config deliberately fails to build")
        if mode == "hang_build":
            time.sleep(3600)
        (x,), dims = sig.placeholders(["x"])
        n = x.shape[0]
        if mode == "crash":
            out = te.compute((n,), lambda i: x[i + FAR] * 2.0, name="out")
        elif mode == "hang":
            r = te.reduce_axis((0, FAR), "r")
            out = te.compute((n,), lambda i: te.sum(x[i] * 1.0000001, axis=r), name="out")
        elif mode == "wrong":
            out = te.compute((n,), lambda i: x[i] * 3.0, name="out")
        else:
            out = te.compute((n,), lambda i: x[i] * 2.0, name="out")
        s = te.create_schedule(out)
        if mode == "double_vec":
            _, inner = s[out].split(s[out].axis[0], 16)
            s[out].vectorize(inner)
        prepare = _refuse_inputs if mode == "raise_run" else None
        return Instance(s, [x, out], dims, [], prepare)

    def reference(self, sig, inputs):
        REFERENCE_CALLS.append(inputs[0].shape)
        return [inputs[0] * np.float32(2.0)]

    def flops(self, sig, dims):
        n = sig.args[0][0][0]
        return dims[n] if isinstance(n, str) else n


def _refuse_inputs(inputs):
    raise ValueError("test_faulty: this config's input preparation deliberately raises")


def faulty_signature(n="n") -> Signature:
    """The signature of one input x(n) (float32); the output out(n) is not an argument."""
    return Signature.make([((n,), "float32")])
