"""The compile pipeline ``nimble.compile`` runs, as data (``nimble.passes.Pipeline``):

    anf -> fold -> dce -> patterns -> rows     IRModule -> IRModule   (nimble.passes.default_ir_passes)
    fuse                                       IRModule -> FusedModule    (nimble.passes.fuse.fuse_ops)
    lower_kernels                              FusedModule -> LoweredModule  (nimble.vm.lower, vm/kernels.py)
    bytecode                                   LoweredModule -> Bytecode  (nimble.vm.compiler.ModuleCompiler)
    [bytecode optimisation slot]               Bytecode -> Bytecode
    executable                                 Bytecode -> Executable

``NIMBLE_DEBUG`` / ``NIMBLE_PRINT_AFTER`` print after any of these names (see ``nimble.settings``).
"""
from __future__ import annotations

from ..passes.pipeline import Pass, Pipeline, default_ir_passes, fuse_pass
from .compiler import ModuleCompiler, to_executable
from .lower import lower_kernels

# Bytecode -> Bytecode passes, run in order between ``bytecode`` and ``executable``. The slot of the bytecode
# optimiser (``nimble/vm/bytecode_opt.py``, ``optimize_bytecode(functions) -> functions`` in executable order):
#     Pass("bytecode_opt", lambda code: dataclasses.replace(code, functions=optimize_bytecode(code.functions))
#          if bytecode_opt_enabled() else code, "Bytecode", "Bytecode", "bytecode optimisations")
# (``BytecodeModule.functions`` holds every VM function, lifted closures included, in executable order.)
BYTECODE_PASSES: list[Pass] = []


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
