"""Peer implementations of the three models for scripts/bench_models.py, built from nimble's weights.

Every builder returns either a runner (a callable taking one workload item, as nimble's model takes
it, and returning a tuple of numpy arrays shaped like nimble's outputs) or a `Skipped` that says why
there is none (package not installed, no ONNX export, export failed). Nothing here imports a peer
package at module level: each one is optional.

    PyTorch eager: nn.LSTM; a recursive Tree-LSTM of nn.Linear layers; a BertEncoder of nn.Linear /
                   nn.LayerNorm with BertEncoder's state-dict names (loaded strictly).
    ONNX Runtime / OpenVINO: both read one ONNX file exported from the PyTorch module
                   (`torch.onnx.export(..., dynamo=False, dynamic_axes=...)`, sequence axis dynamic).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from nimble.models.torch_peers import torch_bert, torch_lstm, torch_tree_lstm


@dataclass(frozen=True)
class Skipped:
    """A peer that is not measured, and why (shown in the table)."""

    reason: str


def installed_version(package: str) -> str | None:
    """`package`'s version if it imports, else None."""
    try:
        module = __import__(package)
    except Exception:  # noqa: BLE001 - a broken install counts as not installed
        return None
    return getattr(module, "__version__", "?")


# ------------------------------------------------------------------ runners: one item -> outputs

def _tree_to_torch(torch, tree):
    if isinstance(tree, tuple):
        return tuple(_tree_to_torch(torch, t) for t in tree)
    return torch.from_numpy(np.ascontiguousarray(tree, dtype=np.float32)).reshape(1, -1)


def torch_runner(model: str, weights: dict, config):
    """PyTorch eager on one item of `model` ('lstm', 'tree', 'bert'), under `torch.inference_mode`."""
    if installed_version("torch") is None:
        return Skipped("torch not installed")
    import torch

    if model == "lstm":
        module = torch_lstm(weights, config)

        def run(xs):
            with torch.inference_mode():
                out, (h_n, c_n) = module(torch.from_numpy(xs)[:, None, :])
            return out[:, 0].numpy(), h_n[:, 0].numpy(), c_n[:, 0].numpy()
        return run
    if model == "tree":
        module = torch_tree_lstm(weights, config)

        def run(tree):  # the leaves are converted once per tree, outside the module, as in a data loader
            with torch.inference_mode():
                h, c = module(tree)
            return h.numpy(), c.numpy()
        run.prepare = lambda tree: _tree_to_torch(torch, tree)
        return run
    module = torch_bert(weights, config)

    def run(x):
        with torch.inference_mode():
            return (module(torch.from_numpy(x)[None])[0].numpy(),)
    return run


# ------------------------------------------------------------------ ONNX export, ORT and OpenVINO

ONNX_SPECS = {  # model -> (example input shape from config, input name, output names, dynamic axes)
    "lstm": (lambda c: (7, 1, c.input_size), "xs", ["outputs", "h_n", "c_n"],
             {"xs": {0: "seq"}, "outputs": {0: "seq"}}),
    "bert": (lambda c: (1, 7, c.hidden_size), "hidden_states", ["output"],
             {"hidden_states": {1: "seq"}, "output": {1: "seq"}}),
}


def export_onnx(model: str, weights: dict, config, directory: str):
    """The PyTorch module of `model` exported to `directory`/<model>.onnx (a path), or a `Skipped`."""
    if model not in ONNX_SPECS:
        return Skipped("no ONNX export (recursion over a tree ADT)")
    if installed_version("torch") is None:
        return Skipped("no ONNX export: torch not installed")
    if installed_version("onnx") is None:
        return Skipped("no ONNX export: onnx not installed")
    import torch

    shape_of, input_name, output_names, dynamic_axes = ONNX_SPECS[model]
    module = torch_lstm(weights, config) if model == "lstm" else torch_bert(weights, config)
    path = os.path.join(directory, f"{model}.onnx")
    example = torch.zeros(shape_of(config))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the LSTM exporter warns about batch sizes other than 1: ours is 1
            torch.onnx.export(module, (example,), path, input_names=[input_name], output_names=output_names,
                              dynamic_axes=dynamic_axes, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - a failed export is reported, not fatal
        return Skipped(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:80]}")
    return path


def _onnx_feed(model: str, item: np.ndarray) -> np.ndarray:
    return item[:, None, :] if model == "lstm" else item[None]


def _onnx_outputs(model: str, outputs: list) -> tuple:
    if model == "lstm":  # ONNX outputs (seq, 1, H), (L, 1, H), (L, 1, H)
        return tuple(np.asarray(o)[:, 0] for o in outputs)
    return (np.asarray(outputs[0])[0],)


def ort_runner(model: str, onnx_path, threads: int):
    """ONNX Runtime (CPU provider, all graph optimisations) on the exported file."""
    if isinstance(onnx_path, Skipped):
        return onnx_path
    if installed_version("onnxruntime") is None:
        return Skipped("onnxruntime not installed")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(item):
        return _onnx_outputs(model, session.run(None, {input_name: _onnx_feed(model, item)}))
    return run


def openvino_runner(model: str, onnx_path, threads: int):
    """OpenVINO CPU plugin on the exported file: latency hint, f32 inference precision."""
    if isinstance(onnx_path, Skipped):
        return onnx_path
    if installed_version("openvino") is None:
        return Skipped("openvino not installed")
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(onnx_path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    n_out = len(compiled.outputs)

    def run(item):
        request.infer({0: _onnx_feed(model, item)})
        return _onnx_outputs(model, [request.get_output_tensor(i).data.copy() for i in range(n_out)])
    return run
