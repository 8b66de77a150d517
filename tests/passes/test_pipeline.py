"""nimble.passes.Pipeline: the compile passes as data, printable after each one, checked by name."""
import logging

import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.passes import Pass, Pipeline, PipelineError
from nimble.passes.fuse import FusedModule
from nimble.vm.compiler import BytecodeModule
from nimble.vm.lower import LoweredModule
from nimble.vm.pipeline import compile_pipeline


def module():
    x = ir.var("x", shape=(Any, 4))
    b = ir.Builder()
    two = b.let("two", nb.add(ir.const(np.ones(4, "float32")), ir.const(np.ones(4, "float32"))))
    b.let("unused", nb.tanh(x))
    y = b.let("y", nb.relu(nb.multiply(x, two)))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(y)))
    return mod


def test_the_compile_pipeline_runs_its_passes_in_order():
    pipe = compile_pipeline()
    assert pipe.names == ("anf", "fold", "dce", "patterns", "rows", "attention", "shape_ops", "fuse", "lower_kernels",
                          "bytecode", "bytecode_opt", "executable")
    kinds = [(p.takes, p.gives) for p in pipe.passes]
    assert kinds[7:] == [("IRModule", "FusedModule"), ("FusedModule", "LoweredModule"),
                         ("LoweredModule", "Bytecode"), ("Bytecode", "Bytecode"), ("Bytecode", "Executable")]


def test_each_pass_hands_its_ir_to_the_next_and_is_timed():
    pipe = compile_pipeline()
    seen = []
    traced = Pipeline([Pass(p.name, (lambda run, name: lambda x: seen.append((name, type(x).__name__)) or run(x))(
        p.run, p.name), p.takes, p.gives) for p in pipe.passes])
    exe = traced.run(module(), print_after=(), debug=0)
    assert [name for name, _ in seen] == list(pipe.names)
    assert dict(seen)["lower_kernels"] == FusedModule.__name__ and dict(seen)["bytecode"] == LoweredModule.__name__
    assert dict(seen)["executable"] == BytecodeModule.__name__
    assert [t.name for t in traced.timings] == list(pipe.names) and all(t.seconds >= 0 for t in traced.timings)
    x = np.arange(8, dtype="float32").reshape(2, 4) - 3
    np.testing.assert_allclose(nimble.VirtualMachine(exe).run(x), np.maximum(x * 2, 0))


def test_print_after_a_named_pass_prints_that_ir_only(caplog):
    with caplog.at_level(logging.DEBUG, logger="nimble.passes"):
        compile_pipeline().run(module(), print_after=("fuse",), debug=0)
    dumps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("IR after")]
    assert len(dumps) == 1 and dumps[0].startswith("IR after fuse (FusedModule):")
    assert "multiply_relu" in dumps[0] and "main: 1 groups" in dumps[0]


def test_debug_level_3_prints_every_ir_and_level_1_the_times(caplog):
    with caplog.at_level(logging.DEBUG, logger="nimble.passes"):
        compile_pipeline().run(module(), print_after=(), debug=3)
    text = [r.getMessage() for r in caplog.records]
    names = compile_pipeline().names
    assert [m.split()[2] for m in text if m.startswith("IR after")] == list(names)
    assert [m.split()[1] for m in text if m.startswith("pass ")] == list(names)
    after_dce = next(m for m in text if m.startswith("IR after dce"))
    assert "unused" not in after_dce and "tanh" not in after_dce  # the dead let is gone by then
    assert any(m.startswith("IR after bytecode") and "invoke_packed @k0_multiply_relu" in m for m in text)


def test_print_after_from_the_environment(nimble_env, caplog):
    nimble_env(NIMBLE_PRINT_AFTER="lower_kernels")
    with caplog.at_level(logging.DEBUG, logger="nimble.passes"):
        nimble.compile(module())
    dumps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("IR after")]
    assert len(dumps) == 1 and "k0_multiply_relu" in dumps[0]


def test_a_bad_pass_name_is_a_clear_error_before_any_work(nimble_env):
    with pytest.raises(PipelineError, match="no pass named 'fusion'; the passes are anf, fold, dce, .*, fuse,"):
        compile_pipeline().run(module(), print_after=("fusion",))
    nimble_env(NIMBLE_PRINT_AFTER="fuse,lowering")
    with pytest.raises(PipelineError, match="no pass named 'lowering'"):
        nimble.compile(module())


def test_passes_must_chain_and_have_unique_names():
    a = Pass("a", lambda m: m, "IRModule", "IRModule")
    b = Pass("b", lambda m: m, "FusedModule", "Bytecode")
    with pytest.raises(PipelineError, match="pass 'a' gives IRModule but the next pass 'b' takes FusedModule"):
        Pipeline([a, b])
    with pytest.raises(PipelineError, match="pass name 'a' appears twice"):
        Pipeline([a, a])


def test_a_pass_can_be_inserted_after_a_named_one():
    calls = []
    extra = Pass("bytecode_count", lambda code: calls.append(len(code.functions)) or code, "Bytecode", "Bytecode")
    pipe = compile_pipeline().insert_after("bytecode", extra)
    assert pipe.names[-4:] == ("bytecode", "bytecode_count", "bytecode_opt", "executable")
    pipe.run(module(), print_after=(), debug=0)
    assert calls == [1]
