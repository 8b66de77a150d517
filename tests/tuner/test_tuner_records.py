import json

import pytest

from nimble.errors import FormatError
from nimble.tuner.fingerprint import HostFingerprint
from nimble.tuner.records import ERROR_KINDS, TuningRecord, read_jsonl, write_jsonl
from nimble.tuner.workload import WorkloadKey

HOST = HostFingerprint("Test CPU", "TestVendor", ("avx2", "fma"), 4, 4, "llvm")
KEY = WorkloadKey("dense", [(("n", 64), "float32"), ((64, 64), "float32")], "llvm")


def make(**overrides) -> TuningRecord:
    fields = dict(workload=KEY, bucket="n=33..64", target="llvm", host=HOST, config={"tile": 8},
                  config_index=3, costs=[0.002, 0.004], timestamp="2026-11-28T10:00:00.000001Z", tuner="xgb")
    return TuningRecord(**(fields | overrides))


def test_line_round_trip():
    record = make(flops=2.0e6)
    line = record.to_line()
    obj = json.loads(line)
    assert obj["format"] == "nimble-record" and obj["version"] == 1 and "\n" not in line
    assert obj["mean_cost"] == pytest.approx(0.003)
    assert TuningRecord.from_line(line) == record
    assert TuningRecord.from_line(line).digest == record.digest


def test_error_record_has_no_mean_cost():
    record = make(costs=[], error_kind="timeout", error_message="ran 10 s")
    assert not record.ok and record.mean_cost is None and record.gflops is None
    assert TuningRecord.from_line(record.to_line()) == record
    assert set(ERROR_KINDS) >= {"build", "runtime", "timeout", "crash", "wrong_result"}


def test_gflops_from_record_or_workload_attr():
    assert make(flops=6e6).gflops == pytest.approx(2.0)
    keyed = WorkloadKey("dense", [((64, 64), "float32")], "llvm", {"flops": 3e6})
    assert make(workload=keyed, bucket="static").gflops == pytest.approx(1.0)
    assert make().gflops is None


def test_timestamp_normalised_to_utc():
    assert make(timestamp="2026-11-28T12:00:00+02:00").timestamp == "2026-11-28T10:00:00.000000Z"


def test_bucket_normalised():
    assert make(bucket="n=64..64").bucket == "n=64"


def test_digest_changes_with_content():
    assert make().digest == make().digest
    assert make().digest != make(costs=[0.002, 0.005]).digest


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o.pop("costs"), r"missing field\(s\) \['costs'\]"),
        (lambda o: o.update(version=2), "'version': expected 1"),
        (lambda o: o.update(format="tvm-record"), "'format'"),
        (lambda o: o.update(error_kind="exploded"), "'error_kind'"),
        (lambda o: o.update(costs=[-1.0]), "'costs': expected positive finite"),
        (lambda o: o.update(costs="1"), "'costs'"),
        (lambda o: o.update(costs=[]), "'costs': expected a non-empty list"),
        (lambda o: o.update(config_index=-1), "'config_index'"),
        (lambda o: o.update(config=[1]), "'config'"),
        (lambda o: o.update(timestamp="2026-11-28T10:00:00"), "'timestamp'"),
        (lambda o: o.update(timestamp="yesterday"), "'timestamp'"),
        (lambda o: o.update(mean_cost=1.0), "'mean_cost'"),
        (lambda o: o.update(flops=-5), "'flops'"),
        (lambda o: o.update(bucket="n=64..33"), "bucket hi"),
        (lambda o: o.update(surprise=1), r"unknown field\(s\) \['surprise'\]"),
        (lambda o: o["workload"].pop("template"), "'workload'"),
        (lambda o: o["host"].update(threads=99), "'host'.*host id"),
        (lambda o: o.update(target=""), "'target'"),
    ],
)
def test_validation_names_the_field(edit, message):
    obj = make().to_json()
    edit(obj)
    with pytest.raises(FormatError, match=message):
        TuningRecord.from_json(obj)


def test_invalid_json_line():
    with pytest.raises(FormatError, match="invalid JSON"):
        TuningRecord.from_line('{"format": ')
    with pytest.raises(FormatError, match="JSON object"):
        TuningRecord.from_line("[1, 2]")


def test_read_jsonl_numbers_lines_and_skips_blank_ones(tmp_path):
    path = tmp_path / "r.jsonl"
    with path.open("w") as f:
        write_jsonl([make(), make(config_index=4)], f)
        f.write("\nnot json\n")
    with path.open() as f:
        items = list(read_jsonl(f))
    assert [n for n, _ in items] == [1, 2, 4]
    assert items[2][1].line_number == 4 and "invalid JSON" in str(items[2][1])


def test_records_are_immutable_and_hashable():
    record = make()
    assert len({record, make()}) == 1
    with pytest.raises(TypeError):
        record.config["tile"] = 4
