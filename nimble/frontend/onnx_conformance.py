"""Running ONNX's backend node test cases (`onnx.backend.test.case.node`) through the frontend, compiler and VM."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import is_extended
from ..errors import NimbleError


@dataclass(frozen=True)
class CaseResult:
    name: str
    ops: tuple
    status: str  # "pass", "fail" or "skip"
    reason: str = ""


def graph_ops(graph) -> set:
    """Op types used in `graph` and its subgraphs."""
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            subs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for sub in subs:
                ops |= graph_ops(sub)
    return ops


def op_family(ops) -> str:
    """The family of a case's ops: the frontend module converting its last op that is not a Constant."""
    from .onnx_functions import FUNCTION_OPS
    from .onnx_graph import CONVERTERS

    names = [op for op in ops if op != "Constant"] or list(ops)
    families = sorted({CONVERTERS[op].__module__.rsplit(".", 1)[-1].replace("onnx_ops_", "").replace("onnx_", "")
                       for op in names if op in CONVERTERS} | {"functions" for op in names if op in FUNCTION_OPS})
    return "+".join(families) or "unclaimed"


def case_dtype(case) -> str:
    """The element type of a case's first graph input (its first output when it has no inputs)."""
    from onnx import TensorProto

    infos = list(case.model.graph.input) or list(case.model.graph.output)
    t = infos[0].type
    which = t.WhichOneof("value")
    if which != "tensor_type":
        return which or "?"
    return TensorProto.DataType.Name(t.tensor_type.elem_type).lower()


def node_cases():
    from onnx.backend.test.case.node import collect_testcases

    return collect_testcases(None) if _takes_arg(collect_testcases) else collect_testcases()


def _takes_arg(fn) -> bool:
    import inspect

    return bool(inspect.signature(fn).parameters)


def _as_list(result) -> list:
    """The outputs of one run as a list (a sequence output stays a list of arrays)."""
    if isinstance(result, tuple):
        return [r if isinstance(r, list) else np.asarray(r) for r in result]
    return [result if isinstance(result, list) else np.asarray(result)]


def _sequence_ranks(case) -> dict | None:
    """For sequence inputs whose tensors declare no shape: their rank from the first data set (dims unknown), as
    `from_onnx`'s `shapes` (a user gives it the same way); None when there are none."""
    shapes = {}
    inputs = case.data_sets[0][0] if case.data_sets else []
    for info, value in zip(case.model.graph.input, inputs):
        t = info.type
        if t.WhichOneof("value") == "sequence_type" and not t.sequence_type.elem_type.tensor_type.HasField("shape"):
            if isinstance(value, list) and value:
                shapes[info.name] = (None,) * as_array(value[0]).ndim
    return shapes or None


def compare_sequence(got, want: list) -> str:
    """'' when `got` is a list matching the list of arrays `want` element by element, else why not."""
    if not isinstance(got, list):
        return f"got {type(got).__name__}, expected a sequence (list) of {len(want)} tensors"
    if len(got) != len(want):
        return f"a sequence of {len(got)} tensors, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        why = compare(g, as_array(w))
        if why:
            return f"element {k}: {why}"
    return ""


def as_array(value) -> np.ndarray:
    """A data set's value as numpy: ONNX's newer cases (Cast, CastLike) hold ``TensorProto``s for dtypes
    numpy lacks or stores differently; those are converted by ``onnx.numpy_helper``."""
    if type(value).__name__ == "TensorProto":
        from onnx import numpy_helper

        return numpy_helper.to_array(value)
    return np.asarray(value)


def compare(got: np.ndarray, want: np.ndarray, rtol: float = 1e-3, atol: float = 1e-5) -> str:
    """'' when `got` matches `want`, else why not."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != expected {want.dtype}"
    if is_extended(want.dtype.name):  # ml_dtypes: the integer ones exactly, the float ones as float64
        if want.dtype.name.startswith(("int", "uint")):
            return "" if np.array_equal(got.astype(np.int64), want.astype(np.int64)) else "values differ"
        got, want = got.astype(np.float64), want.astype(np.float64)
    if want.dtype.kind in "fc":
        if not np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            err = np.nanmax(np.abs(got.astype(np.float64) - want.astype(np.float64))) if got.size else 0
            return f"values differ (max abs error {err:.3g})"
        return ""
    return "" if np.array_equal(got, want) else "values differ"


def run_case(case, claimed: set) -> CaseResult:
    """Convert, compile and run one node test case on each of its data sets."""
    import nimble

    from .onnx import from_onnx
    from .onnx_graph import ConversionError
    from .onnx_io import python_outputs, vm_inputs

    ops = tuple(sorted(graph_ops(case.model.graph)))
    missing = [op for op in ops if op not in claimed]
    if missing:
        return CaseResult(case.name, ops, "skip", f"unclaimed ops {missing}")
    note = ""
    try:
        try:
            mod = from_onnx(case.model, shapes=_sequence_ranks(case))
        except ConversionError as err:
            if "must be a constant" not in str(err) and "must be constants" not in str(err):
                raise
            # axes / shapes / weights fed as graph inputs: bind every input but the first to its test value
            names = [i.name for i in case.model.graph.input]
            frozen = {n: [as_array(e) for e in v] if isinstance(v, list) else as_array(v)
                      for n, v in zip(names[1:], case.data_sets[0][0][1:])}
            mod = from_onnx(case.model, constants=frozen)
            note = "frozen inputs"
            case = _first_data_set_only(case, len(frozen))
    except nimble.FormatError as err:
        return CaseResult(case.name, ops, "skip", str(err).splitlines()[0])
    except (NimbleError, NotImplementedError) as err:
        return CaseResult(case.name, ops, "fail", f"convert: {type(err).__name__}: {str(err).splitlines()[0]}")
    try:
        vm = nimble.VirtualMachine(nimble.compile(mod))
    except Exception as err:  # noqa: BLE001 - every compiler failure is a reported failure
        return CaseResult(case.name, ops, "fail", f"compile: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    for k, (inputs, expected) in enumerate(case.data_sets):
        try:
            args = [[as_array(e) for e in i] if isinstance(i, list) else as_array(i) for i in inputs]
            got = _as_list(python_outputs(vm.run(*vm_inputs(mod, args))))
        except Exception as err:  # noqa: BLE001
            return CaseResult(case.name, ops, "fail", f"run: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
        if len(got) != len(expected):
            return CaseResult(case.name, ops, "fail", f"{len(got)} outputs, expected {len(expected)}")
        for j, (g, w) in enumerate(zip(got, expected)):
            why = compare_sequence(g, w) if isinstance(w, list) else compare(g, as_array(w))
            if why:
                return CaseResult(case.name, ops, "fail", f"data set {k} output {j}: {why}")
    return CaseResult(case.name, ops, "pass", note)


@dataclass(frozen=True)
class _Case:
    name: str
    model: object
    data_sets: list


def _first_data_set_only(case, n_frozen: int):
    inputs, outputs = case.data_sets[0]
    return _Case(case.name, case.model, [(list(inputs[: len(inputs) - n_frozen]), outputs)])


LIGHT_MODELS = ("squeezenet", "resnet50", "shufflenet", "densenet121", "inception_v1", "inception_v2", "vgg19",
                "bvlc_alexnet", "zfnet512")


def light_model(name: str, seed: int = 0, logits: bool = True):
    """The onnx package's ``light_<name>.onnx`` CNN with random weights (its own are constant fills, ConstantOfShape
    nodes, that make every output 0.001): each float weight becomes an initializer, normal with variance 2 / fan-in
    at rank >= 2, uniform in [0.5, 1.5) at rank 1 (biases, batch-norm scales, means and variances). ``logits``: the
    final Softmax dropped (with random weights it saturates: a comparison of one-hot outputs shows nothing). None
    when the wheel lacks the model."""
    import os

    import onnx
    from onnx import numpy_helper

    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    if not os.path.exists(path):
        return None
    model = onnx.load(path)
    rng = np.random.default_rng(seed)

    def weight(shape, dtype, name_):
        if len(shape) >= 2:
            values = rng.standard_normal(shape) * np.sqrt(2.0 / max(int(np.prod(shape[1:])), 1))
        else:
            values = rng.uniform(0.5, 1.5, shape)
        return numpy_helper.from_array(values.astype(dtype), name_)

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    for k, t in enumerate(graph.initializer):
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and a.size > 1:
            graph.initializer[k].CopyFrom(weight(a.shape, a.dtype, t.name))
    kept = []
    for node in graph.node:
        shape = inits.get(node.input[0]) if node.op_type == "ConstantOfShape" and node.input else None
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if shape is not None and value is not None and value.data_type == onnx.TensorProto.FLOAT:
            dims = tuple(int(d) for d in numpy_helper.to_array(shape))
            if int(np.prod(dims)) > 1:
                graph.initializer.append(weight(dims, np.float32, node.output[0]))
                if model.ir_version < 4:  # (an initializer was also a graph input then)
                    graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, dims))
                continue
        kept.append(node)
    out = graph.output[0].name
    if logits and kept and kept[-1].op_type == "Softmax" and kept[-1].output[0] == out:
        last = kept.pop()
        del graph.output[:]
        graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], onnx.TensorProto.FLOAT, None))
    del graph.node[:]
    graph.node.extend(kept)
    return model
