"""nimble: a compiler and virtual machine for dynamic neural networks."""
from .errors import FormatError, NimbleError, OutOfRangeError, ShapeError, TuningError, TypeError  # noqa: A004

__version__ = "0.1.0"

__all__ = ["NimbleError", "OutOfRangeError", "ShapeError", "TypeError", "TuningError", "FormatError", "build", "__version__"]


def __getattr__(name):
    # `nimble.build` pulls in llvmlite; import it on first use so `import nimble` stays light.
    if name == "build":
        from .codegen.build import build

        return build
    raise AttributeError(f"module 'nimble' has no attribute {name!r}")
