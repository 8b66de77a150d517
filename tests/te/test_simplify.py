from nimble import te
from nimble.te.expr import IntImm, Var
from nimble.te.simplify import bound, prove_nonneg, simplify
from nimble.te.visit import walk

n, m = te.var("n"), te.var("m")


def test_shape_arithmetic_identities():
    assert simplify((n * 8) // 8) is n
    assert simplify((n * 8 + 3) % 8) == IntImm(3)
    assert simplify((n * 8 + 3) // 8) is n
    assert simplify(n + m - n + 3 * m - 1) == simplify(m * 4 - 1)
    assert simplify(n // 4 // 2) == simplify(n // 8)
    assert simplify(te.min_(n, n + 1)) is n
    assert simplify(te.max_(n, n + 1)) == simplify(n + 1)


def test_round_up_is_at_least_n():
    assert prove_nonneg((n + 7) // 8 * 8 - n)
    assert simplify((n + 7) // 8 * 8 >= n) == IntImm(1, "bool")
    assert not prove_nonneg(n // 8 * 8 - n)


def test_known_bounds_drop_a_split_guard():
    io, ii = te.var("io"), te.var("ii")
    ranges = {io: (0, n // 8 - 1), ii: (0, 7)}
    assert simplify(io * 8 + ii < n, ranges) == IntImm(1, "bool")
    # without the bound on io the guard stays
    assert not isinstance(simplify(io * 8 + ii < n, {ii: (0, 7)}), IntImm)


def test_bounds_of_mod_and_div():
    assert bound(n % 8) == (0, 7)
    i = te.var("i")
    assert bound(i // 4, {i: (0, 15)}) == (0, 3)
    assert bound(i * 2 + 1, {i: (0, 9)}) == (1, 19)


def test_simplified_comparison_of_disjoint_vars_stays_symbolic():
    e = simplify(n < m)
    assert {x for x in walk(e) if isinstance(x, Var)} == {n, m}
