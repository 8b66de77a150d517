"""ONNX TopK (values and indices, k a run-time input, one row of n float32) through nimble's VM, against ONNX
Runtime (1 intra-op thread) and numpy (np.argpartition, then a sort of the k winners), all in one process.

    NIMBLE_NUM_THREADS=1 python scripts/bench_topk.py                 # n = 100 .. 100000, k = 1, 10, n/2
    NIMBLE_NUM_THREADS=1 python scripts/bench_topk.py --nimble-max-n 8192   # skip nimble above that n
"""
from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from harness import median_time

import nimble
from nimble.frontend import from_onnx


def topk_model(largest: bool = True):
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1, largest=int(largest))
    graph = helper.make_graph(
        [node], "topk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", "n"]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("indices", TensorProto.INT64, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def numpy_topk(x: np.ndarray, k: int):
    """The k largest of each row, best first: argpartition, then a stable sort of the winners."""
    part = np.argpartition(-x, k - 1, axis=-1)[..., :k] if k < x.shape[-1] else np.broadcast_to(
        np.arange(x.shape[-1]), x.shape)
    values = np.take_along_axis(x, part, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    return np.take_along_axis(values, order, axis=-1), np.take_along_axis(part, order, axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,8192,100000")
    ap.add_argument("--nimble-max-n", type=int, default=None, help="time nimble only up to this n")
    ap.add_argument("--min-time", type=float, default=0.3)
    args = ap.parse_args()
    model = topk_model()
    vm = nimble.VirtualMachine(nimble.compile(from_onnx(model)))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    print(f"{'n':>7} {'k':>6} {'nimble us':>11} {'ORT us':>10} {'numpy us':>10} {'nimble/ORT':>11}")
    for n in (int(s) for s in args.sizes.split(",")):
        x = rng.standard_normal((1, n)).astype(np.float32)
        for k in sorted({1, 10, n // 2}):
            kt = np.array([k], np.int64)
            want = sess.run(None, {"x": x, "k": kt})
            t_ort = median_time(lambda: sess.run(None, {"x": x, "k": kt}), args.min_time)
            t_np = median_time(lambda: numpy_topk(x, k), args.min_time)
            if args.nimble_max_n is None or n <= args.nimble_max_n:
                got = vm.run(x, kt)
                for g, w in zip(got, want):
                    np.testing.assert_array_equal(np.asarray(g), w)
                t_nim = median_time(lambda: vm.run(x, kt), args.min_time)
                nim, ratio = f"{t_nim * 1e6:11.1f}", f"{t_nim / t_ort:11.2f}"
            else:
                nim, ratio = f"{'-':>11}", f"{'-':>11}"
            print(f"{n:>7} {k:>6} {nim} {t_ort * 1e6:10.1f} {t_np * 1e6:10.1f} {ratio}")


if __name__ == "__main__":
    main()
