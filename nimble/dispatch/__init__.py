"""Dispatch tables: per concrete shape, the kernel tuned for its bucket."""
from .table import BucketRange, DispatchEntry, LinkedDispatch  # noqa: F401
