"""The tuner: workload keys, shape buckets, host fingerprints and the tuning records database."""
from .buckets import Bucket, BucketKey, BucketMatch, BucketSpace, BucketSpec, buckets_from_histogram
from .db import BucketSummary, Database
from .fingerprint import HostFingerprint, host_fingerprint, num_threads
from .measure import MeasureOptions, MeasureResult, Measurer
from .records import ERROR_KINDS, RECORD_FORMAT, RECORD_VERSION, ErrorKind, ImportReport, MalformedLine, TuningRecord
from .tune import TuneSummary, tune
from .workload import ArgSpec, WorkloadKey

__all__ = [
    "ArgSpec", "WorkloadKey",
    "Bucket", "BucketKey", "BucketMatch", "BucketSpace", "BucketSpec", "buckets_from_histogram",
    "HostFingerprint", "host_fingerprint", "num_threads",
    "ERROR_KINDS", "RECORD_FORMAT", "RECORD_VERSION", "ErrorKind", "MalformedLine", "TuningRecord",
    "BucketSummary", "Database", "ImportReport",
    "MeasureOptions", "MeasureResult", "Measurer", "TuneSummary", "tune",
]


def __getattr__(name):
    # model-level extraction needs the IR and the VM's fusion, layers above the tuner: import lazily
    if name == "extract_tasks":
        from ..vm.tasks import extract_tasks

        return extract_tasks
    raise AttributeError(f"module 'nimble.tuner' has no attribute {name!r}")
