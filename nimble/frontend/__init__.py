"""Model frontends: `from_onnx` converts an ONNX model into an `IRModule` (needs the `onnx` package)."""


def from_onnx(model_or_path, shapes=None, sym_dims: bool = True, constants=None, patterns: bool = True,
              float16: str = "float32"):
    """See `nimble.frontend.onnx.from_onnx`."""
    from .onnx import from_onnx as convert

    return convert(model_or_path, shapes=shapes, sym_dims=sym_dims, constants=constants, patterns=patterns,
                   float16=float16)


__all__ = ["from_onnx"]
