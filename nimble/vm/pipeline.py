"""The compile pipeline ``nimble.compile`` runs, as data (``nimble.passes.Pipeline``):

    anf -> fold -> dce -> patterns -> rows -> attention -> shape_ops   IRModule -> IRModule  (nimble.passes.default_ir_passes)
    fuse                                       IRModule -> FusedModule    (nimble.passes.fuse.fuse_ops)
    lower_kernels                              FusedModule -> LoweredModule  (nimble.vm.lower, vm/kernels.py)
    bytecode                                   LoweredModule -> Bytecode  (nimble.vm.compiler.ModuleCompiler)
    bytecode_opt                               Bytecode -> Bytecode  (nimble.vm.bytecode_opt)
    executable                                 Bytecode -> Executable

``NIMBLE_DEBUG`` / ``NIMBLE_PRINT_AFTER`` print after any of these names (see ``nimble.settings``).
"""
from __future__ import annotations

import dataclasses

from ..passes.pipeline import Pass, Pipeline, default_ir_passes, fuse_pass
from .compiler import ModuleCompiler, to_executable
from .lower import lower_kernels

def _optimize(code):
    from .bytecode_opt import bytecode_opt_enabled, optimize_bytecode

    if not bytecode_opt_enabled():
        return code
    return dataclasses.replace(code, functions=tuple(optimize_bytecode(list(code.functions))))


# Bytecode -> Bytecode passes, run in order between ``bytecode`` and ``executable``
# (``BytecodeModule.functions`` holds every VM function, lifted closures included, in executable order).
BYTECODE_PASSES: list[Pass] = [
    Pass("bytecode_opt", _optimize, "Bytecode", "Bytecode",
         "liveness metadata instead of kills, tuple unpacking, hoisting, static memory plan (vm/bytecode_opt.py)"),
]


def compile_pipeline(target: str = "llvm", records=None, accept_foreign: bool = False) -> Pipeline:
    """The passes of ``nimble.compile(mod, target, records, accept_foreign)``, in order."""
    from ..dispatch.build import open_records

    db = open_records(records)
    return Pipeline(default_ir_passes() + [
        fuse_pass(),
        Pass("lower_kernels", lambda fused: lower_kernels(fused, db, accept_foreign), "FusedModule", "LoweredModule",
             "each distinct fused group compiled to a kernel (dispatch tables for tuned templates)"),
        Pass("bytecode", lambda lowered: ModuleCompiler(lowered).compile(), "LoweredModule", "Bytecode",
             "VM functions: registers, allocations, kernel calls, kills"),
        *BYTECODE_PASSES,
        Pass("executable", to_executable, "Bytecode", "Executable", "bytecode + constants + kernels as one file"),
    ])
