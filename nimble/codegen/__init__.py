"""Code generation: loop IR -> LLVM (JIT for the host CPU)."""
from .build import Kernel, build  # noqa: F401
from .threads import num_threads, set_num_threads  # noqa: F401
