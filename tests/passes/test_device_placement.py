"""Device placement on a two-device plan (CPU = 0, an accelerator = 1)."""
import numpy as np

from nimble import ir
from nimble import ops as nb
from nimble.ir import Any
from nimble.models import lstm
from nimble.passes.device import place_devices


def test_cpu_target_needs_no_copy():
    cfg = lstm.LSTMConfig()
    mod = lstm.build_module(lstm.random_weights(cfg, 0), cfg)
    assert place_devices(mod, 0).copies == []


def test_branch_conditions_come_back_to_the_host():
    cfg = lstm.LSTMConfig()
    mod = lstm.build_module(lstm.random_weights(cfg, 0), cfg)
    plan = place_devices(mod, 1)
    to_cpu = [c for c in plan.copies if c[1] == 1 and c[2] == 0]
    assert to_cpu and all(isinstance(c[3], ir.If) for c in to_cpu)  # `less(t, n)` runs on the device


def test_shape_values_stay_on_the_host():
    x = ir.var("x", shape=(Any, 8))
    w = ir.const(np.ones((8, 8), "float32"))
    b = ir.Builder()
    y = b.let("y", nb.dense(x, w))
    s = b.let("s", nb.shape_of(y))
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], b.ret(nb.reshape(y, s))))
    plan = place_devices(mod, 1)
    assert plan.device_of(s) == 0 and plan.device_of(y) == 1
    # the shape goes to the host shape function, the data to the device kernel: no copy needed
    assert plan.copies == []


def test_a_device_value_read_as_data_by_a_shape_function_is_copied():
    n = ir.var("n", shape=(), dtype="int64")
    b = ir.Builder()
    m = b.let("m", nb.add(n, ir.const(np.array(1, "int64"))))  # a kernel: on the device
    r = nb.arange(ir.const(np.array(0, "int64")), m, ir.const(np.array(1, "int64")))
    mod = ir.IRModule()
    mod.define("main", ir.Function([n], b.ret(r)))
    plan = place_devices(mod, 1)
    assert plan.device_of(m) == 1
    assert any(arg is m and src == 1 and dst == 0 for arg, src, dst, _ in plan.copies)
