"""``KernelEntry``: a compiled kernel as data (object code, variant symbols, argument signature).

It is what a dispatch table lists per bucket and what the VM links; it lives here, with the
dispatch tables, so that ``nimble.dispatch`` never imports ``nimble.vm`` (the VM lowers these
records; they never call back into it). ``nimble.vm.executable`` re-exports it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import numpy_dtype
from ..errors import NimbleError


@dataclass(frozen=True)
class KernelEntry:
    """A compiled kernel: ``variants`` are ``(conds, symbol)``, residue variants first (conds of
    ``(arg_index, dim_index, factor)``), the general symbol last with empty conds. ``object_code``
    is one object file, or a tuple of them when variants were compiled apart. A symbol names the
    function; the ``.pyarrays`` entry taking numpy arrays is the one called."""

    name: str
    object_code: bytes | tuple
    variants: tuple
    arg_dtypes: tuple
    arg_ndims: tuple
    shape_vars: tuple
    assert_messages: tuple = ()

    @staticmethod
    def from_kernel(kernel) -> KernelEntry:
        """The entry for a ``nimble.build`` kernel (its residue variants included)."""
        args = [(b.shape, b.dtype) for b in kernel.general.func.params]

        def where(var):
            for i, (shape, _) in enumerate(args):
                for k, d in enumerate(shape):
                    if d is var:
                        return i, k
            raise NimbleError(f"{kernel.name}: shape variable {var} is bound by no argument dimension")

        variants = tuple((tuple((*where(v), f) for v, f in conds), cf.func.name) for conds, cf in kernel.variants)
        objects = tuple(cf.object_code for _, cf in kernel.variants) + (kernel.general.object_code,)
        return KernelEntry(kernel.name, objects if len(objects) > 1 else objects[0],
                           variants + (((), kernel.general.func.name),),
                           tuple(str(numpy_dtype(dt)) for _, dt in args), tuple(len(s) for s, _ in args),
                           tuple(where(v) for v in kernel.func.shape_vars),
                           tuple(kernel.func.attrs.get("assert_messages", ())))
