"""Dispatch tables: per concrete shape, the kernel tuned for its bucket."""
from .kernel_entry import KernelEntry  # noqa: F401
from .table import BucketRange, DispatchEntry  # noqa: F401
