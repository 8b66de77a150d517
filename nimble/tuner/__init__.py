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
    # model-level extraction needs the model IR and the VM's fusion, layers above the tuner: it is not offered here
    if name == "extract_tasks":
        raise AttributeError("nimble.tuner.extract_tasks moved to nimble.extract_tasks (nimble.vm.tasks): task "
                             "extraction reads the model IR, a layer above the tuner")
    raise AttributeError(f"module 'nimble.tuner' has no attribute {name!r}")
