import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nimble.errors import FormatError
from nimble.schedules.dense import dense_signature
from nimble.schedules.registry import Signature
from nimble.tuner.buckets import (
    Bucket, BucketKey, BucketSpace, BucketSpec, buckets_from_histogram, buckets_from_traffic, traffic_points,
    with_traffic_points,
)
from nimble.tuner.task import Task

PRIMES = [2, 3, 5, 7, 11, 13, 31, 61, 127, 257, 509, 521, 8191, 65537, 2147483647]
VALUES = st.one_of(st.just(0), st.just(1), st.sampled_from(PRIMES), st.integers(0, 5000), st.integers(0, 10**15))


def test_powers_of_two_up_to_a_power():
    spec = BucketSpec.powers_of_two("n", 64)
    assert [str(b) for b in spec.buckets] == ["n=1", "n=2", "n=3..4", "n=5..8", "n=9..16", "n=17..32", "n=33..64"]


def test_powers_of_two_last_bucket_ends_at_max():
    assert str(BucketSpec.powers_of_two("n", 100).buckets[-1]) == "n=65..100"
    assert [str(b) for b in BucketSpec.powers_of_two("n", 1).buckets] == ["n=1"]


def test_representative_is_upper_edge_by_default():
    assert [b.representative for b in BucketSpec.powers_of_two("n", 16).buckets] == [1, 2, 4, 8, 16]


def test_parse_explicit_edges():
    spec = BucketSpec.parse("n=1:8,9:32,33:128,129:512")
    assert [str(b) for b in spec.buckets] == ["n=1..8", "n=9..32", "n=33..128", "n=129..512"]
    assert str(spec) == "n=1:8,9:32,33:128,129:512"
    assert BucketSpec.parse("seq=pow2:8") == BucketSpec.powers_of_two("seq", 8)
    assert [str(b) for b in BucketSpec.parse("n=1,2:4").buckets] == ["n=1", "n=2..4"]


@pytest.mark.parametrize(
    "text, message",
    [("n=1:8,8:16", "non-overlapping"), ("n=1:x", "integer edge"), ("1:8", "expected text"),
     ("n=8:1", "bucket hi"), ("n=", "integer edge"), ("n=pow2:0", "max_value")],
)
def test_parse_errors_name_the_problem(text, message):
    with pytest.raises(FormatError, match=message):
        BucketSpec.parse(text)


def test_bucket_string_forms_round_trip():
    for text in ["n=33..64", "n=7", "n=33..64@48", "seq_len=0..3"]:
        assert str(Bucket.parse(text)) == text
    assert Bucket.parse("n=33..64") == Bucket("n", 33, 64)
    assert Bucket.parse("n=33..64@48").representative == 48
    with pytest.raises(FormatError, match="representative"):
        Bucket("n", 33, 64, 65)
    with pytest.raises(FormatError, match="expected text like"):
        Bucket.parse("n=33-64")


def test_bucket_json_round_trip():
    b = Bucket("n", 9, 16, 12)
    assert Bucket.from_json(b.to_json()) == b
    spec = BucketSpec.parse("n=1:8,9:32")
    assert BucketSpec.from_json(spec.to_json()) == spec


def test_outside_value_maps_to_nearest_bucket_flagged():
    spec = BucketSpec.parse("n=1:8,33:64")
    assert (str(spec.bucket_of(10).bucket), spec.bucket_of(10).outside) == ("n=1..8", True)
    assert str(spec.bucket_of(30).bucket) == "n=33..64"
    assert str(spec.bucket_of(20).bucket) == "n=1..8"  # tie (12 from each) -> lower bucket
    assert str(spec.bucket_of(0).bucket) == "n=1..8" and spec.bucket_of(0).outside
    assert str(spec.bucket_of(10**9).bucket) == "n=33..64" and spec.bucket_of(10**9).outside
    assert not spec.bucket_of(40).outside
    with pytest.raises(FormatError, match="expected an int"):
        spec.bucket_of(3.0)


def _check_maps_to_exactly_one(spec: BucketSpec, n: int) -> None:
    holders = [b for b in spec.buckets if n in b]
    assert len(holders) <= 1
    match = spec.bucket_of(n)
    if holders:
        assert match.bucket == holders[0] and not match.outside
    else:
        assert match.outside
        assert match.bucket.distance(n) == min(b.distance(n) for b in spec.buckets)


@settings(max_examples=300, deadline=None)
@given(n=VALUES, max_value=st.integers(1, 1 << 20))
def test_every_n_maps_to_exactly_one_power_of_two_bucket(n, max_value):
    spec = BucketSpec.powers_of_two("n", max_value)
    _check_maps_to_exactly_one(spec, n)
    assert spec.bucket_of(n).outside == (n < 1 or n > max_value)


@st.composite
def explicit_specs(draw):
    edges = sorted(draw(st.sets(st.integers(0, 3000), min_size=2, max_size=16)))
    pairs = list(zip(edges[::2], edges[1::2]))
    return BucketSpec.from_edges("n", pairs)


@settings(max_examples=300, deadline=None)
@given(spec=explicit_specs(), n=VALUES)
def test_every_n_maps_to_exactly_one_explicit_bucket(spec, n):
    _check_maps_to_exactly_one(spec, n)


@settings(max_examples=200, deadline=None)
@given(spec=explicit_specs(), data=st.data())
def test_representatives_lie_inside_their_bucket(spec, data):
    for b in spec.buckets:
        rep = data.draw(st.integers(b.lo, b.hi))
        custom = Bucket(b.dim, b.lo, b.hi, rep)
        assert b.representative in b and custom.representative in custom
        assert spec.bucket_of(b.representative).bucket == b
        assert Bucket.parse(str(custom)) == custom


def test_histogram_rule_example():
    hist = {1: 5, 7: 100, 8: 3, 64: 50, 100: 1, 128: 2}
    spec = buckets_from_histogram("n", hist, 3)
    assert [str(b) for b in spec.buckets] == ["n=1..7", "n=8..64", "n=65..128"]
    spec = buckets_from_histogram("n", hist, 10)
    assert [b.hi for b in spec.buckets] == [1, 7, 8, 64, 100, 128]
    assert str(buckets_from_histogram("n", {0: 1, 5: 1}, 4).buckets[0]) == "n=0"


def test_histogram_errors():
    with pytest.raises(FormatError, match="max_buckets"):
        buckets_from_histogram("n", {4: 1}, 0)
    with pytest.raises(FormatError, match="non-empty"):
        buckets_from_histogram("n", {}, 2)
    with pytest.raises(FormatError, match="count of 4"):
        buckets_from_histogram("n", {4: -1}, 2)


@settings(max_examples=300, deadline=None)
@given(hist=st.dictionaries(st.integers(0, 5000), st.integers(0, 1000), min_size=1, max_size=40),
       max_buckets=st.integers(1, 12))
def test_histogram_rule_gives_hot_values_their_own_bucket(hist, max_buckets):
    spec = buckets_from_histogram("n", hist, max_buckets)
    buckets = spec.buckets
    assert len(buckets) <= max_buckets
    # contiguous cover of 1 (or 0) .. max observed
    assert buckets[0].lo == (0 if 0 in hist else 1) and buckets[-1].hi == max(hist)
    assert all(b.lo == a.hi + 1 for a, b in zip(buckets, buckets[1:]))
    # every observed value lies inside a bucket; every bucket is tuned at an observed value
    assert all(not spec.bucket_of(v).outside for v in hist)
    assert all(b.representative == b.hi and b.hi in hist for b in buckets)
    # the hottest values (besides the maximum) are representatives of their own bucket
    hottest = sorted((v for v in hist if v != max(hist)), key=lambda v: (-hist[v], v))[: max_buckets - 1]
    assert all(spec.bucket_of(v).bucket.representative == v for v in hottest)
    if len(hist) <= max_buckets:
        assert sorted(b.hi for b in buckets) == sorted(hist)


def test_bucket_key_string_is_sorted_by_dim_and_round_trips():
    key = BucketKey.of({"n": Bucket("n", 33, 64), "m": Bucket("m", 1, 8)})
    assert str(key) == "m=1..8,n=33..64"
    assert BucketKey.parse("n=33..64,m=1..8") == key
    assert BucketKey.from_json(key.to_json()) == key
    assert key.representatives() == {"m": 8, "n": 64}
    assert key["n"] == Bucket("n", 33, 64) and key.dims == ("m", "n")
    assert {"m": 3, "n": 40} in key and {"m": 9, "n": 40} not in key
    assert str(BucketKey(())) == "static" and BucketKey.parse("static") == BucketKey(())
    with pytest.raises(FormatError, match="one bucket per dim"):
        BucketKey.parse("n=1..2,n=3..4")


def test_bucket_space_maps_bindings_and_reports_outside_dims():
    space = BucketSpace.of([BucketSpec.powers_of_two("n", 64), BucketSpec.parse("m=1:8,9:16")])
    key, outside = space.key_of({"n": 40, "m": 3})
    assert str(key) == "m=1..8,n=33..64" and outside == ()
    key, outside = space.key_of({"n": 100, "m": 3})
    assert str(key) == "m=1..8,n=33..64" and outside == ("n",)
    assert len(space.keys()) == 7 * 2
    with pytest.raises(FormatError, match=r"value for dims \['m'\]"):
        space.key_of({"n": 3})


def test_traffic_point_buckets_round_trip_and_reject_bad_points():
    b = Bucket.parse("n=1..64@8*3+40")
    assert b.points == ((8, 3), (40, 1)) and str(b) == "n=1..64@8*3+40"
    assert b.representative == 40  # 8*3 = 24 of the 64 value-calls lie below 40
    assert Bucket.parse("n=1..64@8*30+40").representative == 8  # 240 of 280
    assert str(Bucket.parse("n=1..29@23+9*2+12*2")) == "n=1..29@9*2+12*2+23"
    assert str(Bucket.parse("n=1..29@9*2+12*2")) == "n=1..29@9+12"  # weights reduced by their gcd
    assert Bucket.parse("n=1..29@9*2+12*2") == Bucket.parse("n=1..29@9+12")
    assert Bucket.parse("n=1..64@48*5") == Bucket("n", 1, 64, 48)  # one point: the representative
    assert Bucket.from_json(b.to_json()) == b and Bucket.from_json(Bucket("n", 1, 8).to_json()) == Bucket("n", 1, 8)
    assert BucketKey.parse(str(BucketKey.of([b, Bucket("m", 1, 4)]))) == BucketKey.of([b, Bucket("m", 1, 4)])
    for text, message in [("n=1..64@8+80", "in 1..64"), ("n=1..64@8+8", "distinct"), ("n=1..64@8*0+9", "weight"),
                          ("n=1..64@8+", "expected text")]:
        with pytest.raises(FormatError, match=message):
            Bucket.parse(text)
    with pytest.raises(FormatError, match="points"):
        Bucket.from_json({"dim": "n", "lo": 1, "hi": 8, "points": [3, 4]})


def test_traffic_points_split_the_calls_in_equal_shares():
    hist = {8: 24, 9: 24, 10: 12, 11: 12, 12: 24, 17: 24, 18: 12, 23: 12, 29: 24, 40: 12, 125: 3}
    spec = BucketSpec.parse("n=1:29,30:125")
    assert [str(b) for b in with_traffic_points(spec, hist, 3).buckets] == ["n=1..29@9+12+23", "n=30..125@40*2+125"]
    assert str(traffic_points(Bucket("n", 1, 29), hist, 1)) == "n=1..29@12"  # the median call
    assert traffic_points(Bucket("n", 1, 29), {}, 3) == Bucket("n", 1, 29)  # no traffic: the top edge
    assert traffic_points(Bucket("n", 1, 29), {5: 7, 40: 2}, 3) == Bucket("n", 1, 29, 5)  # one value: itself
    assert str(traffic_points(Bucket("n", 1, 29), {5: 1, 6: 1}, 3)) == "n=1..29@5*2+6"
    with pytest.raises(FormatError, match="max_points"):
        traffic_points(Bucket("n", 1, 29), hist, 0)


@settings(max_examples=200, deadline=None)
@given(hist=st.dictionaries(st.one_of(st.sampled_from(PRIMES[:10]), st.integers(0, 3000)), st.integers(0, 1000),
                            min_size=1, max_size=40),
       max_buckets=st.integers(1, 8), max_points=st.integers(1, 5))
def test_traffic_points_lie_in_the_bucket_on_observed_values(hist, max_buckets, max_points):
    spec = buckets_from_traffic("n", hist, max_buckets)
    for plain, b in zip(spec.buckets, with_traffic_points(spec, hist, max_points).buckets):
        assert (b.lo, b.hi) == (plain.lo, plain.hi)
        seen = [v for v, c in hist.items() if c > 0 and v in plain]
        assert b == Bucket.parse(str(b))
        if not seen:
            assert b == plain
            continue
        values = [v for v, _ in b.weighted_points()]
        assert 1 <= len(values) <= max_points and set(values) <= set(seen)
        assert b.representative in values and min(seen) <= b.representative <= max(seen)


def test_a_task_at_traffic_points_moves_dims_with_the_same_points_together():
    sig = Signature.make([(("n", "k"), "float32")])
    diagonal = Task("softmax", sig, "llvm", "k=1..29@9+23,n=1..29@9+23")
    assert diagonal.points() == [({"k": 9, "n": 9}, 1), ({"k": 23, "n": 23}, 1)]
    product = Task("softmax", sig, "llvm", "k=1..4@2*3+4,n=1..29@9+23")
    assert product.points() == [({"k": 2, "n": 9}, 3), ({"k": 2, "n": 23}, 3), ({"k": 4, "n": 9}, 1),
                                ({"k": 4, "n": 23}, 1)]
    assert Task("softmax", sig, "llvm", "k=1..4,n=1..29@9").points() == [({"k": 4, "n": 9}, 1)]
    dense = Task("dense", dense_signature("n", 64, 32), "llvm", "n=1..40@8*3+40")
    assert dense.flops() == pytest.approx((3 * 2 * 8 * 64 * 32 + 2 * 40 * 64 * 32) / 4)
    assert dense.dims == {"n": 40}
