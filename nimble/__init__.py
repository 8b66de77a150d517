"""nimble: a compiler and virtual machine for dynamic neural networks."""
from .errors import FormatError, NimbleError, OutOfRangeError, ShapeError, TuningError, TypeError  # noqa: A004

from .version import __version__

__all__ = ["NimbleError", "OutOfRangeError", "ShapeError", "TypeError", "TuningError", "FormatError", "build",
           "compile", "VirtualMachine", "Executable", "extract_tasks", "__version__"]


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
    if name == "extract_tasks":
        from .vm.tasks import extract_tasks

        return extract_tasks
    if name == "Executable":
        from .vm.executable import Executable

        return Executable
    raise AttributeError(f"module 'nimble' has no attribute {name!r}")
