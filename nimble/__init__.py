"""nimble: a compiler and virtual machine for dynamic neural networks."""
from .errors import FormatError, NimbleError, OutOfRangeError, ShapeError, TuningError, TypeError  # noqa: A004

__version__ = "0.1.0"

__all__ = ["NimbleError", "OutOfRangeError", "ShapeError", "TypeError", "TuningError", "FormatError", "build",
           "compile", "VirtualMachine", "Executable", "__version__"]


def __getattr__(name):
    # `nimble.build` pulls in llvmlite; import it on first use so `import nimble` stays light.
    if name == "build":
        from .codegen.build import build

        return build
    if name == "compile":
        from .vm.compiler import compile

        return compile
    if name == "VirtualMachine":
        from .vm.machine import VirtualMachine

        return VirtualMachine
    if name == "Executable":
        from .vm.executable import Executable

        return Executable
    raise AttributeError(f"module 'nimble' has no attribute {name!r}")
