import dataclasses

import pytest

from nimble.errors import FormatError, NimbleError
from nimble.tuner.fingerprint import (
    HostFingerprint,
    codegen_features,
    host_fingerprint,
    num_threads,
    parse_cpuinfo,
    parse_lscpu_caches,
    parse_sys_cache,
)

BASE = HostFingerprint("AMD EPYC 9654", "AuthenticAMD", ("avx2", "avx512f", "fma"), 96, 8, "llvm")

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512_bf16 amx_tile
processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
"""
ARM_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm aes sve sve2 i8mm bf16 asimddp
CPU implementer\t: 0x41
"""


def test_same_model_features_threads_is_the_same_host():
    other = dataclasses.replace(BASE, vendor="AMD", cores=2, target="llvm -mcpu=znver4", feature_source="cpuinfo")
    assert other == BASE and hash(other) == hash(BASE) and other.id == BASE.id


@pytest.mark.parametrize("change", [{"threads": 4}, {"features": ("avx2", "fma")}, {"cpu_model": "AMD EPYC 7763"}])
def test_different_threads_features_or_model_is_another_host(change):
    other = dataclasses.replace(BASE, **change)
    assert other != BASE and other.id != BASE.id


def test_feature_order_and_duplicates_do_not_matter():
    assert dataclasses.replace(BASE, features=("fma", "avx2", "avx512f", "fma")) == BASE


def test_id_is_short_stable_hex():
    assert len(BASE.id) == 16 and int(BASE.id, 16) >= 0
    assert BASE.id == HostFingerprint("AMD EPYC 9654", "x", ("fma", "avx512f", "avx2"), 1, 8, "cuda").id


def test_json_round_trip_and_tampered_id():
    assert HostFingerprint.from_json(BASE.to_json()) == BASE
    obj = BASE.to_json() | {"threads": 16}
    with pytest.raises(FormatError, match="host id"):
        HostFingerprint.from_json(obj)
    with pytest.raises(FormatError, match=r"missing field\(s\) \['cores'\]"):
        HostFingerprint.from_json({k: v for k, v in BASE.to_json().items() if k != "cores"})
    with pytest.raises(FormatError, match="threads"):
        dataclasses.replace(BASE, threads=0)


def test_codegen_features_normalise_names_and_drop_irrelevant_flags():
    assert codegen_features(["sse4_1", "sse4.1", "AVX512_BF16", "fpu", "vme", "amx-tile", "neon"]) == (
        "amx" + "tile", "avx512bf16", "neon", "sse41")


def test_parse_cpuinfo_x86_and_arm():
    model, vendor, flags = parse_cpuinfo(X86_CPUINFO)
    assert (model, vendor) == ("Intel(R) Xeon(R) Platinum 8480+", "GenuineIntel")
    assert codegen_features(flags) == ("amxtile", "avx", "avx2", "avx512bf16", "avx512f", "fma",
                                       "sse", "sse2", "sse41", "sse42", "ssse3")
    model, vendor, flags = parse_cpuinfo(ARM_CPUINFO)
    assert vendor == "0x41" and {"asimd", "sve", "sve2", "i8mm", "bf16"} <= set(codegen_features(flags))


def test_threads_from_env(nimble_env):
    nimble_env(NIMBLE_NUM_THREADS="3")
    assert num_threads() == 3 and host_fingerprint().threads == 3
    nimble_env(NIMBLE_NUM_THREADS=None)
    assert host_fingerprint().threads == num_threads() >= 1
    with pytest.raises(NimbleError, match="NIMBLE_NUM_THREADS: expected an integer >= 1, got 'zero'"):
        nimble_env(NIMBLE_NUM_THREADS="zero")


def test_set_num_threads_changes_what_the_fingerprint_reports(nimble_env):
    from nimble.codegen import set_num_threads
    from nimble.codegen.threads import num_threads as kernel_threads

    nimble_env(NIMBLE_NUM_THREADS="2")
    set_num_threads(5)
    assert kernel_threads() == num_threads() == host_fingerprint().threads == 5
    set_num_threads(1)
    assert host_fingerprint().threads == kernel_threads() == 1


def test_host_fingerprint_is_stable_and_target_is_informational(nimble_env):
    nimble_env(NIMBLE_NUM_THREADS="2")
    a, b = host_fingerprint("llvm"), host_fingerprint("llvm -mcpu=native")
    assert a == b and a.id == b.id and b.target == "llvm -mcpu=native"
    assert a.cpu_model and a.vendor and a.cores >= 1
    assert host_fingerprint(threads=1) != a


SYS_CACHE = [("1", "Data\n", "32K\n"), ("1", "Instruction\n", "32K\n"), ("2", "Unified\n", "512K\n"),
             ("3", "Unified\n", "32768K\n")]
LSCPU_CACHE = "NAME ONE-SIZE\nL1d       48K\nL1i       32K\nL2       2M\nL3        105M\n"


def test_cache_sizes_parse_from_sysfs_and_lscpu():
    assert parse_sys_cache(SYS_CACHE) == (("l1d", 32), ("l2", 512), ("l3", 32768))
    assert parse_lscpu_caches(LSCPU_CACHE) == (("l1d", 48), ("l2", 2048), ("l3", 107520))
    assert parse_sys_cache([("2", "Unified", "garbage")]) == ()


def test_cache_sizes_travel_in_json_but_leave_the_identity_alone():
    with_caches = dataclasses.replace(BASE, caches=(("l2", 1024), ("l1d", 32)))
    assert with_caches.caches == (("l1d", 32), ("l2", 1024))  # level order, whatever the input order
    assert with_caches == BASE and with_caches.id == BASE.id  # records of the same host stay its own
    obj = with_caches.to_json()
    assert obj["caches"] == {"l1d": 32, "l2": 1024}
    assert HostFingerprint.from_json(obj).caches == with_caches.caches
    old = {k: v for k, v in obj.items() if k != "caches"}  # a record written before caches were recorded
    assert HostFingerprint.from_json(old).caches == () and HostFingerprint.from_json(old) == with_caches
    for bad in ({"l9": 32}, {"l2": 0}, {"l2": "1M"}):
        with pytest.raises(FormatError, match="host caches"):
            HostFingerprint.from_json(obj | {"caches": bad})


def test_this_hosts_fingerprint_reports_its_caches_when_sysfs_has_them():
    import glob

    if not glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        pytest.skip("no cache sizes in sysfs on this machine")
    caches = host_fingerprint("llvm").cache_kib
    assert set(caches) <= {"l1d", "l2", "l3"} and caches.get("l1d", 0) >= 8 and caches.get("l2", 0) >= caches["l1d"]
