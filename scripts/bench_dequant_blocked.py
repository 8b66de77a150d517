"""Blocked DequantizeLinear (int8 weights, float32 block scales and int8 zero points as graph inputs): the blocked
dim static against run-time, in one process at 1 thread.

    python scripts/bench_dequant_blocked.py                  # x (256, 4096), block 32 along axis 1
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("NIMBLE_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from harness import cpu_name, median_time  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402


def dequantize_model(x_dims, s_dims, axis: int, block: int):
    """DequantizeLinear (int8 -> float32) with x, scale and zero point as graph inputs of the given dims."""
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=axis, block_size=block)
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT8, x_dims),
              helper.make_tensor_value_info("s", TensorProto.FLOAT, s_dims),
              helper.make_tensor_value_info("z", TensorProto.INT8, s_dims)]
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, x_dims)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--cols", default="4096,4000")
    p.add_argument("--block", type=int, default=32)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}, threads: {os.environ['NIMBLE_NUM_THREADS']}, block {args.block} along axis 1")
    print(f"{'x shape':>14} {'static (ms)':>12} {'run-time (ms)':>14} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for k in map(int, args.cols.split(",")):
        nb = -(-k // args.block)
        x = rng.integers(-128, 127, (args.rows, k)).astype(np.int8)
        s = rng.uniform(0.01, 1, (args.rows, nb)).astype(np.float32)
        z = rng.integers(-5, 5, (args.rows, nb)).astype(np.int8)
        static = dequantize_model([args.rows, k], [args.rows, nb], 1, args.block)
        dynamic = dequantize_model(["n", "k"], ["n", "b"], 1, args.block)
        times = []
        for model in (static, dynamic):
            vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
            want = (x.astype(np.float32) - np.repeat(z, args.block, 1)[:, :k]) * np.repeat(s, args.block, 1)[:, :k]
            np.testing.assert_allclose(vm.run(x, s, z), want, rtol=1e-6)
            times.append(median_time(lambda: vm.run(x, s, z), 0.5))
        print(f"{str((args.rows, k)):>14} {times[0] * 1e3:12.3f} {times[1] * 1e3:14.3f} {times[1] / times[0]:6.1f}")


if __name__ == "__main__":
    main()
