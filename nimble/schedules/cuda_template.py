"""What the CUDA templates share: lowering an instance to CUDA C, compiling and launching it.

A CUDA template is a ``Template`` registered for target "cuda" whose schedule binds loops to
blocks and threads. ``kernel_source`` gives the generated kernel without compiling (the tests
check its text and compile many configs in one nvcc call); ``build`` compiles it with nvcc and
returns a kernel that runs on the GPU through ``codegen.cuda_runtime`` (numpy in, numpy out).
"""
from __future__ import annotations

import numpy as np

from ..codegen.cuda import CudaKernel, codegen_cuda, translation_unit
from ..tir.lower import lower
from .base import Signature, Template


def concrete_dims(sig: Signature, inputs: list) -> dict:
    """Symbolic dim name -> value, read from the shapes of the numpy ``inputs``."""
    dims: dict = {}
    for (shape, _), a in zip(sig.args, inputs):
        for d, v in zip(shape, np.shape(a)):
            if isinstance(d, str):
                dims.setdefault(d, int(v))
    return dims


class CudaTemplate(Template):
    """Base class of the templates for target "cuda"."""

    target = "cuda"

    def kernel_source(self, sig: Signature, cfg, name: str | None = None, residue: dict | None = None) -> CudaKernel:
        """The CUDA C of ``cfg`` (a residue variant when ``residue`` maps dim names to factors)."""
        inst = self.instantiate(sig, cfg)
        assume = {inst.dims[k]: f for k, f in (residue or {}).items()}
        func = lower(inst.schedule, inst.args, name=name or self.name, assume_multiple=assume, bounds_checks=False)
        return codegen_cuda(func)

    def build(self, sig: Signature, cfg, name: str | None = None, arch: str | None = None):
        """Compile ``cfg`` for the GPU of this process: a ``CudaTemplateKernel``."""
        from ..codegen import cuda_runtime
        from ..codegen.nvcc import compile_cuda

        kernel = self.kernel_source(sig, cfg, name)
        device = cuda_runtime.default_device()
        cubin = compile_cuda(translation_unit([kernel]), arch=arch or device.arch)
        return CudaTemplateKernel(self, sig, kernel, device.load(cubin, kernel))


class CudaTemplateKernel:
    """A compiled CUDA template config: call with the template's numpy inputs, get numpy outputs."""

    def __init__(self, template: CudaTemplate, sig: Signature, kernel: CudaKernel, launcher):
        self.template, self.sig, self.kernel, self.launcher = template, sig, kernel, launcher

    def __call__(self, *inputs):
        by_name = concrete_dims(self.sig, list(inputs))
        dims = {v: by_name[v.name] for v in self.kernel.shape_vars}
        return self.launcher(list(inputs), dims)


def sources(template: CudaTemplate, sig: Signature, configs) -> str:
    """One translation unit with the kernel of each config (named ``<template>_<k>``)."""
    return translation_unit([template.kernel_source(sig, c, name=f"{template.name}_{k}") for k, c in enumerate(configs)])
