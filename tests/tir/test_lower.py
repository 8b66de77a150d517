from nimble import te
from nimble.tir import For, IfThenElse, lower
from nimble.tir.nodes import Seq


def guards(s):
    if isinstance(s, IfThenElse):
        yield s
        yield from guards(s.then_case)
    elif isinstance(s, For):
        yield from guards(s.body)
    elif isinstance(s, Seq):
        for x in s.stmts:
            yield from guards(x)
    elif hasattr(s, "body"):
        yield from guards(s.body)


def split_kernel(factor):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B)
    (i,) = s[B].axis
    s[B].split(i, factor)
    return lower(s, [A, B], "k")


def test_naive_loop_nest_prints_readably():
    n = te.var("n")
    A = te.placeholder((n, 4), name="A")
    B = te.compute((n, 4), lambda i, j: A[i, j] * 2.0, name="B")
    text = str(lower(B, [A, B], "double"))
    assert text == (
        "def double(A: float32[n, 4], B: float32[n, 4]):\n"
        "  for i in range(n):\n"
        "    for j in range(4):\n"
        "      B[((i * 4) + j)] = (A[((i * 4) + j)] * 2.0f)"
    )


def test_symbolic_split_partitions_into_guard_free_main_and_guarded_tail():
    f = split_kernel(8)
    main, tail = f.body.stmts
    assert str(main.extent) == "(n // 8)" and not list(guards(main))
    assert str(tail.min) == "(n // 8)"
    assert len(list(guards(tail))) == 1


def test_static_divisible_split_has_no_guard_at_all():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B)
    s[B].split(s[B].axis[0], 8)
    f = lower(s, [A, B], "k")
    assert not list(guards(f.body))
    assert isinstance(f.body, For) and str(f.body.extent) == "8"


def test_static_non_divisible_split_keeps_one_guarded_tail():
    A = te.placeholder((70,), name="A")
    B = te.compute((70,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B)
    s[B].split(s[B].axis[0], 8)
    f = lower(s, [A, B], "k")
    main, tail = f.body.stmts
    assert str(main.extent) == "8" and not list(guards(main))
    assert str(tail.extent) == "1"


def test_shape_vars_in_call_order():
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((m, n), name="A")
    B = te.compute((m, n), lambda i, j: A[i, j], name="B")
    assert lower(B, [A, B], "k").shape_vars == (m, n)


def test_cache_write_tile_is_local_and_constant_sized():
    n = te.var("n")
    A = te.placeholder((n, 16), name="A")
    W = te.placeholder((16, 32), name="W")
    k = te.reduce_axis(16, "k")
    C = te.compute((n, 32), lambda i, j: te.sum(A[i, k] * W[k, j], axis=k), name="C")
    s = te.create_schedule(C)
    CL = s.cache_write(C)
    i, j = s[C].axis
    io, jo, ii, ji = s[C].tile(i, j, 4, 16)
    s[CL].compute_at(s[C], jo)
    text = str(lower(s, [A, W, C], "mm"))
    assert "C.local = alloc float32[64]  # local" in text


def _loops(s, out):
    if isinstance(s, For):
        out.append(s)
        _loops(s.body, out)
    elif isinstance(s, Seq):
        for x in s.stmts:
            _loops(x, out)
    elif isinstance(s, IfThenElse):
        _loops(s.then_case, out)
    elif hasattr(s, "body"):
        _loops(s.body, out)
    return out


def _panel_split(block: int):
    """B = A + 1 over (n,): tiles of 4 split into blocks of ``block`` tiles (the gemm's column panels)."""
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B)
    io, ii = s[B].split(s[B].axis[0], 4)
    s[B].split(io, block)
    return n, s, A, B


def test_a_loop_whose_whole_body_is_guarded_ends_where_the_guard_stops_holding():
    from nimble.te.simplify import simplify
    from nimble.te.visit import substitute

    n, s, A, B = _panel_split(1024)
    f = lower(s, [A, B], "k")
    loops = {lp.var.name: lp for lp in _loops(f.body, [])}
    block, tile = loops["i.o.o"].var, loops["i.o.i"]
    for value, last in ((1, 0), (5, 0), (4096 + 9, 1), (3 * 4096, 2)):
        end = substitute(simplify(tile.min + tile.extent), {n: te.const(value, "int64"), block: te.const(last, "int64")})
        # the last block runs its tiles only, not the block's 1024 with the guard failing
        assert simplify(end).value == -(-value // 4) - 1024 * last, (value, str(f))


def test_a_clipped_tail_computes_every_element_once():
    import numpy as np

    from nimble.codegen.build import build

    n, s, A, B = _panel_split(16)
    k = build(s, [A, B], name="panels")
    for value in (0, 1, 3, 4, 63, 64, 65, 67, 257):
        a = np.arange(value, dtype="float32")
        np.testing.assert_array_equal(k(a), a + 1.0)
