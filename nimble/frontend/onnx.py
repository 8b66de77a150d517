"""`from_onnx`: an ONNX model (a ModelProto or a file path) -> an `IRModule` whose `@main` runs the graph.

Graph inputs keep their static dims; a `dim_param` becomes a symbolic dim of that name (the same name is the same
dim), an unknown dim becomes `Any`. Initializers become constants; shape computations over static dims fold to
constants and stay run-time computations (`shape_of`, `dyn.reshape`, ...) otherwise. `If` becomes an IR `if`,
`Loop` (and `LSTM` / `GRU`) a recursive global function. A sequence of tensors is the prelude's `List`
(`onnx_ops_sequence`; `onnx_io` turns Python lists into such values and back).
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError
from ..ir.expr import Function, Var
from ..ir.module import IRModule
from ..ir.prelude import LIST
from ..ir.types import DTYPES, AnyDim, SymDim, TensorType
from . import onnx_control, onnx_ops_dynamic, onnx_ops_index, onnx_ops_math, onnx_ops_nn, onnx_ops_shape, onnx_recurrent  # noqa: F401 - converters
from . import onnx_ops_quant, onnx_ops_sequence  # noqa: F401,E402 - converters
from . import onnx_ops_axis, onnx_ops_bitwise  # noqa: F401,E402 - converters
from .onnx_functions import has_function
from .onnx_graph import CONVERTERS, ConversionError, GraphConverter, UnsupportedOperatorError
from .onnx_ops_sequence import SeqValue, constant_sequence, graph_output, sequence_type
from .onnx_values import Value, const_value

MIN_OPSET = 13
SUPPORTED_DOMAINS = ("", "ai.onnx")


def supported_ops() -> list[str]:
    """The ONNX operator types the frontend converts."""
    from .onnx_functions import FUNCTION_OPS

    return sorted(set(CONVERTERS) | set(FUNCTION_OPS))


def onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        name = helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception as err:  # noqa: BLE001 - onnx raises KeyError / ValueError by version
        raise ConversionError(f"ONNX element type {elem_type} has no numpy dtype") from err
    if name not in DTYPES:
        raise ConversionError(f"ONNX element type {name} is not supported by nimble")
    return name


def value_info_type(info, shapes: dict | None = None, sym_dims: bool = True):
    """The IR type of a graph input / output declaration: a `TensorType`, or for a sequence of tensors a
    `List[Tensor[...]]` whose element dims are all `Any` (`shapes` then gives the elements' rank)."""
    t = info.type
    which = t.WhichOneof("value")
    if which == "sequence_type" and t.sequence_type.elem_type.HasField("tensor_type"):
        tt = t.sequence_type.elem_type.tensor_type
        if shapes and info.name in shapes:
            rank = len(shapes[info.name])
        elif tt.HasField("shape"):
            rank = len(tt.shape.dim)
        else:
            raise ConversionError(f"input {info.name!r} is a sequence whose tensors have no shape (not even a rank); "
                                  f"pass shapes={{{info.name!r}: (None, ...)}} with one None per dim of its tensors")
        return sequence_type(rank, onnx_dtype(tt.elem_type))
    if which != "tensor_type":
        what = "a sequence of non-tensors" if which == "sequence_type" else f"a {which}"
        raise ConversionError(f"input {info.name!r} is {what}; only tensors and sequences of tensors are supported")
    tt = t.tensor_type
    if shapes and info.name in shapes:
        dims = tuple(AnyDim() if d is None or (isinstance(d, int) and d < 0) else d for d in shapes[info.name])
    elif not tt.HasField("shape"):
        raise ConversionError(f"input {info.name!r} has no shape (not even a rank); pass shapes={{name: ...}}")
    else:
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else
            (SymDim(d.dim_param) if d.HasField("dim_param") and sym_dims else AnyDim())
            for d in tt.shape.dim
        )
    return TensorType(dims, onnx_dtype(tt.elem_type))


def _load(model_or_path):
    import onnx

    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (str, os.PathLike, bytes)):
        try:
            if isinstance(model_or_path, bytes):
                return onnx.load_from_string(model_or_path)
            return onnx.load(os.fspath(model_or_path))
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001 - protobuf's DecodeError and friends
            raise FormatError(f"{model_or_path!s:.200}: not a readable ONNX model ({type(err).__name__}: {err})") from err
    raise FormatError(f"from_onnx expects an onnx.ModelProto or a path, got {type(model_or_path).__name__}")


def model_opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in SUPPORTED_DOMAINS:
            return imp.version
    raise FormatError("the model imports no ai.onnx opset")


def unsupported_nodes(graph, opset: int) -> dict:
    """`{(domain.op_type, opset): [node names]}` for every node (subgraphs included) with neither a
    converter nor a function body (``onnx_functions``; the ops of a body are checked when it is expanded)."""
    found: dict = {}
    for node in graph.node:
        claimed = node.op_type in CONVERTERS or has_function(node.op_type, opset)
        if node.domain not in SUPPORTED_DOMAINS or not claimed:
            key = (f"{node.domain or 'ai.onnx'}.{node.op_type}", opset)
            found.setdefault(key, []).append(node.name or node.output[0])
        for attr in node.attribute:
            for sub in list(attr.g.node and [attr.g]) + list(attr.graphs):
                for key, names in unsupported_nodes(sub, opset).items():
                    found.setdefault(key, []).extend(names)
    return found


def from_onnx(model_or_path, shapes: dict | None = None, sym_dims: bool = True,
              constants: dict | None = None, patterns: bool = True, float16: str = "float32") -> IRModule:
    """Convert an ONNX model to an `IRModule` with a `main` function.

    `shapes` overrides input shapes by name (None or -1 = `Any`). With `sym_dims`, a `dim_param` becomes a named
    symbolic dim (otherwise `Any`). `constants` binds graph inputs by name to fixed values (they are then no
    parameters of `main`), for operators whose axes, shapes or weights arrive as inputs. With `patterns`, exported
    LayerNorm / GELU / attention chains become nimble's operators and batch dims fold into rows around dense layers
    (`nimble.passes.patterns`, `nimble.passes.rows`). `float16="float32"` (the default) computes a float16 /
    bfloat16 model in float32, its inputs and outputs keeping their types (`onnx_widen`); `"exact"` rounds after
    every operator as the types say. Raises `FormatError` for a malformed model and one
    `UnsupportedOperatorError` listing every operator without a converter.
    """
    if float16 not in ("float32", "exact"):
        raise ValueError(f"from_onnx: float16 must be 'float32' or 'exact', got {float16!r}")
    model = _load(model_or_path)
    if not model.HasField("graph"):
        raise FormatError("the ONNX model has no graph")
    opset = model_opset(model)
    if opset < MIN_OPSET:
        from .onnx_opset import upgrade

        model = upgrade(model, opset)
        opset = model_opset(model)
    from onnx.defs import onnx_opset_version

    if opset > onnx_opset_version():
        raise FormatError(f"ONNX opset {opset} is newer than the installed onnx package knows "
                          f"({onnx_opset_version()}); expected opset {MIN_OPSET}..{onnx_opset_version()}")
    from .onnx_widen import has_narrow_floats, widen_float16

    if float16 == "float32" and has_narrow_floats(model):
        model = widen_float16(model)
    graph = model.graph
    missing = unsupported_nodes(graph, opset)
    if missing:
        lines = [f"  {op} (opset {v}): nodes {names[:8]}{' ...' if len(names) > 8 else ''}"
                 for (op, v), names in sorted(missing.items())]
        raise UnsupportedOperatorError(
            f"the model uses {len(missing)} unsupported ONNX operator(s):\n" + "\n".join(lines)
        )
    from onnx import numpy_helper

    mod = IRModule()
    ctx = GraphConverter(mod, opset)
    for init in graph.initializer:
        try:
            ctx.env[init.name] = const_value(numpy_helper.to_array(init))
        except (ValueError, TypeError, KeyError) as err:  # KeyError: a data type onnx does not know
            raise FormatError(f"initializer {init.name!r} (dims {list(init.dims)}): its data does not match its "
                              f"dims and type ({err})") from None
    params = []
    for info in graph.input:
        if info.name in ctx.env:  # an initializer gives the input its default: of the declared type
            declared = info.type.tensor_type.elem_type if info.type.HasField("tensor_type") else 0
            if declared and onnx_dtype(declared) != str(ctx.env[info.name].type.dtype):
                raise FormatError(f"initializer {info.name!r}: its type {ctx.env[info.name].type.dtype} differs from "
                                  f"the type {onnx_dtype(declared)} its graph input declares")
            continue
        if constants and info.name in constants:
            given = constants[info.name]
            is_seq = info.type.WhichOneof("value") == "sequence_type"
            ctx.env[info.name] = (constant_sequence(ctx, given, info.name) if is_seq else
                                  const_value(np.asarray(given)))
            continue
        t = value_info_type(info, shapes, sym_dims)
        var = Var(info.name, t)
        params.append(var)
        if not isinstance(t, TensorType):
            mod.add_type(LIST)
        ctx.env[info.name] = Value(var, t) if isinstance(t, TensorType) else SeqValue(var, t)
    ctx.convert_graph_nodes(graph)
    outputs = [graph_output(ctx, ctx.lookup(o.name)) for o in graph.output]
    mod.define("main", Function(params, ctx.result(outputs)))
    if patterns:
        from ..passes.patterns import rewrite_patterns
        from ..passes.rows import fold_rows

        mod = fold_rows(rewrite_patterns(mod))
    return mod
