"""The thread count generated kernels use; it lives in ``nimble.settings`` (``NIMBLE_NUM_THREADS``)."""
from __future__ import annotations

from ..settings import num_threads, set_num_threads  # noqa: F401
