"""ONNX sequence operators (SequenceEmpty / Construct / Insert / Erase / At / Length, ConcatFromSequence,
SplitToSequence, SequenceMap, Identity, sequences through If and Loop) through from_onnx -> compile -> both VMs,
sequence inputs and outputs as Python lists (`nimble.frontend.onnx_io`); compared with ONNX Runtime and numpy."""
import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import nimble  # noqa: E402
from nimble.frontend import from_onnx  # noqa: E402
from nimble.frontend.onnx_graph import ConversionError  # noqa: E402
from nimble.frontend.onnx_io import python_outputs, vm_inputs  # noqa: E402
from nimble.ir.infer import infer_types  # noqa: E402
from nimble.ir.types import TensorType  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64
EXAMPLES = settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
LENGTHS = st.sampled_from([0, 1, 2, 3, 5, 7, 13])
ROWS = st.sampled_from([0, 1, 2, 3, 5, 7, 11])


@pytest.fixture(params=["native", "python"])
def backend(request):
    return request.param


def _seq(name, elem=F, shape=("n", 3)):
    return helper.make_tensor_sequence_value_info(name, elem, shape)


def _t(name, elem=F, shape=()):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, opset=18):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


_MODELS = {}


def _register(key, model):
    _MODELS[key] = model
    return key


@functools.cache
def _compiled(key):
    mod = from_onnx(_MODELS[key])
    return mod, nimble.compile(mod)


def _nimble(key, backend, *inputs):
    mod, exe = _compiled(key)
    got = python_outputs(nimble.VirtualMachine(exe, backend=backend).run(*vm_inputs(mod, list(inputs))))
    return list(got) if isinstance(got, tuple) else [got]


def _ort(key, *inputs):
    model = _MODELS[key]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: v for i, v in zip(model.graph.input, inputs)})


def _same(got, want):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            _same(g, w)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def _check(key, backend, inputs, numpy_outputs):
    got = _nimble(key, backend, *inputs)
    for g, o, n in zip(got, _ort(key, *inputs), numpy_outputs):
        _same(g, o)
        _same(g, n)


def _rows(rng, counts, cols=3):
    return [rng.standard_normal((r, cols)).astype(np.float32) for r in counts]


# ---- construct / at / length ------------------------------------------------------------------------------
AT = _register("construct_at", _model(
    [helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s"]),
     helper.make_node("SequenceAt", ["s", "i"], ["y"]),
     helper.make_node("SequenceLength", ["s"], ["n"])],
    [_t("a", F, ("p", 3)), _t("b", F, ("q", 3)), _t("c", F, (2, 3)), _t("i", I64)],
    [_t("y", F, (None, 3)), _t("n", I64)]))


@pytest.mark.parametrize("index", [0, 1, 2, -1, -3])
def test_sequence_at_runtime_index_over_dynamic_dims(backend, index):
    a, b, c = _rows(np.random.default_rng(index + 5), (4, 0, 2))
    _check(AT, backend, [a, b, c, np.array(index)], [[a, b, c][index], np.array(3)])


@pytest.mark.parametrize("index", [3, -4, 100])
def test_sequence_at_out_of_range_raises_at_run_time(backend, index):
    a, b, c = _rows(np.random.default_rng(0), (1, 2, 2))
    with pytest.raises(nimble.OutOfRangeError, match="out of range"):
        _nimble(AT, backend, a, b, c, np.array(index))


def test_constant_index_into_a_known_sequence_needs_no_helper():
    model = _model([helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
                    helper.make_node("Constant", [], ["i"], value=helper.make_tensor("i", I64, (), [-1])),
                    helper.make_node("SequenceAt", ["s", "i"], ["y"])],
                   [_t("a", F, (2, 3)), _t("b", F, (4, 3))], [_t("y", F, (4, 3))])
    mod = from_onnx(model)
    assert not [n for n in mod.functions if n.startswith("onnx_seq")]
    assert infer_types(mod).function("main").ret_type == TensorType((4, 3), "float32")  # b's static shape kept
    a, b = _rows(np.random.default_rng(1), (2, 4))
    got = nimble.VirtualMachine(nimble.compile(mod)).run(a, b)
    np.testing.assert_array_equal(got, b)


def test_a_sequence_input_bound_to_constants():
    model = _model([helper.make_node("SequenceAt", ["s", "i"], ["y"])], [_seq("s"), _t("i", I64)],
                   [_t("y", F, ("n", 3))])
    items = _rows(np.random.default_rng(13), (2, 5))
    mod = from_onnx(model, constants={"s": items})
    assert [p.name for p in mod["main"].params] == ["i"]
    vm = nimble.VirtualMachine(nimble.compile(mod))
    _same(vm.run(np.array(-1)), items[-1])
    with pytest.raises(ConversionError, match="expected a list of arrays"):
        from_onnx(model, constants={"s": items[0]})


# ---- insert / erase ---------------------------------------------------------------------------------------
INSERT_AT = _register("insert_at", _model(
    [helper.make_node("SequenceInsert", ["s", "x", "p"], ["t"]), helper.make_node("SequenceLength", ["t"], ["n"])],
    [_seq("s"), _t("x", F, ("m", 3)), _t("p", I64)], [_seq("t", F, (None, 3)), _t("n", I64)]))
INSERT_END = _register("insert_end", _model(
    [helper.make_node("SequenceInsert", ["s", "x"], ["t"])], [_seq("s"), _t("x", F, ("m", 3))], [_seq("t")]))
ERASE_AT = _register("erase_at", _model(
    [helper.make_node("SequenceErase", ["s", "p"], ["t"])], [_seq("s"), _t("p", I64, (1,))], [_seq("t")]))
ERASE_LAST = _register("erase_last", _model(
    [helper.make_node("SequenceErase", ["s"], ["t"])], [_seq("s")], [_seq("t")]))


@pytest.mark.parametrize("pos", [0, 1, 3, -1, -3])
def test_sequence_insert_at_runtime_positions(backend, pos):
    rng = np.random.default_rng(pos + 10)
    items, x = _rows(rng, (1, 5, 0)), _rows(rng, (2,))[0]
    at = pos + 3 if pos < 0 else pos
    _check(INSERT_AT, backend, [items, x, np.array(pos)], [items[:at] + [x] + items[at:], np.array(4)])


def test_sequence_insert_without_position_appends(backend):
    items, x = _rows(np.random.default_rng(2), (3, 1)), _rows(np.random.default_rng(3), (7,))[0]
    _check(INSERT_END, backend, [items, x], [items + [x]])
    _check(INSERT_END, backend, [[], x], [[x]])


@pytest.mark.parametrize("pos", [0, 2, -1, -3])
def test_sequence_erase_at_runtime_positions(backend, pos):
    items = _rows(np.random.default_rng(pos + 20), (1, 2, 3))
    want = list(items)
    del want[pos]
    _check(ERASE_AT, backend, [items, np.array([pos])], [want])
    _check(ERASE_LAST, backend, [items], [items[:-1]])


@pytest.mark.parametrize("key, args", [(INSERT_AT, (4,)), (INSERT_AT, (-4,)), (ERASE_AT, (3,)), (ERASE_AT, (-4,))])
def test_positions_out_of_range_raise_at_run_time(backend, key, args):
    items = _rows(np.random.default_rng(4), (1, 2, 3))
    extra = [_rows(np.random.default_rng(5), (2,))[0]] if key == INSERT_AT else []
    pos = np.array(args[0]) if key == INSERT_AT else np.array(args)
    with pytest.raises(nimble.OutOfRangeError):
        _nimble(key, backend, items, *extra, pos)


# ---- ConcatFromSequence / SplitToSequence -----------------------------------------------------------------
def _concat_key(axis, new_axis, cols=None):
    shape = ("n", cols or 3)
    out_rank = 2 + new_axis
    return _register(f"concat_{axis}_{new_axis}_{cols}", _model(
        [helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=axis, new_axis=new_axis)],
        [_seq("s", F, shape)], [_t("y", F, (None,) * out_rank)]))


@pytest.mark.parametrize("axis, new_axis", [(0, 0), (-2, 0), (0, 1), (1, 1), (2, 1), (-1, 1)])
def test_concat_from_sequence(backend, axis, new_axis):
    key = _concat_key(axis, new_axis)
    counts = (2, 0, 5) if not new_axis else (3, 3, 3)
    items = _rows(np.random.default_rng(axis + 7), counts)
    want = np.stack(items, axis=axis) if new_axis else np.concatenate(items, axis=axis)
    _check(key, backend, [items], [want])


def test_concat_from_sequence_along_a_dynamic_inner_axis(backend):
    key = _register("concat_inner", _model(
        [helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=1)], [_seq("s", F, (2, None))],
        [_t("y", F, (2, None))]))
    items = [np.random.default_rng(k).standard_normal((2, k)).astype(np.float32) for k in (3, 1, 4)]
    _check(key, backend, [items], [np.concatenate(items, axis=1)])


def test_a_long_sequence_in_and_out(backend):
    """1200 elements: deeper than Python's recursion limit for the list's nested constructor values."""
    key = _register("long", _model(
        [helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=0), helper.make_node("SequenceLength", ["s"], ["n"]),
         helper.make_node("SplitToSequence", ["y"], ["t"], axis=0, keepdims=0)],
        [_seq("s")], [_t("y", F, (None, 3)), _t("n", I64), _seq("t", F, (3,))]))
    items = _rows(np.random.default_rng(12), [k % 3 for k in range(1200)])
    joined = np.concatenate(items, axis=0)
    y, n, t = _nimble(key, backend, items)
    _same(y, joined)
    assert int(n) == 1200 and len(t) == joined.shape[0]
    _same(t, list(joined))


def test_concat_of_an_empty_sequence_raises(backend):
    with pytest.raises(nimble.OutOfRangeError):
        _nimble(_concat_key(0, 0), backend, [])


SPLIT_SCALAR = _register("split_scalar", _model(
    [helper.make_node("SplitToSequence", ["x", "k"], ["s"], axis=1)], [_t("x", F, ("r", "c")), _t("k", I64)],
    [_seq("s", F, (None, None))]))
SPLIT_SIZES = _register("split_sizes", _model(
    [helper.make_node("SplitToSequence", ["x", "k"], ["s"], axis=0)], [_t("x", F, ("r", 2)), _t("k", I64, ("m",))],
    [_seq("s", F, (None, 2))]))
SPLIT_ONES = _register("split_ones", _model(
    [helper.make_node("SplitToSequence", ["x"], ["s"], axis=-1, keepdims=0)], [_t("x", F, (2, "c"))],
    [_seq("s", F, (2,))]))
SPLIT_ONES_KEEP = _register("split_ones_keep", _model(
    [helper.make_node("SplitToSequence", ["x"], ["s"], axis=0)], [_t("x", F, ("r", 3))], [_seq("s", F, (1, 3))]))


@pytest.mark.parametrize("cols, k", [(6, 2), (7, 3), (1, 4), (5, 5), (0, 2)])
def test_split_to_sequence_by_a_runtime_scalar(backend, cols, k):
    x = np.random.default_rng(cols).standard_normal((3, cols)).astype(np.float32)
    want = [x[:, s:s + k] for s in range(0, cols, k)]
    if cols:  # ONNX Runtime refuses to split an empty axis
        _check(SPLIT_SCALAR, backend, [x, np.array(k)], [want])
    else:
        _same(_nimble(SPLIT_SCALAR, backend, x, np.array(k))[0], want)


def test_split_to_sequence_by_runtime_sizes(backend):
    x = np.random.default_rng(8).standard_normal((7, 2)).astype(np.float32)
    sizes = np.array([2, 0, 4, 1])
    want = np.split(x, np.cumsum(sizes)[:-1], axis=0)
    _check(SPLIT_SIZES, backend, [x, sizes], [want])
    with pytest.raises(nimble.OutOfRangeError):  # sizes that do not add up to the dim
        _nimble(SPLIT_SIZES, backend, x, np.array([2, 2]))


def test_split_to_sequence_without_split(backend):
    x = np.random.default_rng(9).standard_normal((2, 5)).astype(np.float32)
    _check(SPLIT_ONES, backend, [x], [[x[:, j] for j in range(5)]])
    y = np.random.default_rng(10).standard_normal((5, 3)).astype(np.float32)
    _check(SPLIT_ONES_KEEP, backend, [y], [[y[j:j + 1] for j in range(5)]])


# ---- Identity, If, Loop -----------------------------------------------------------------------------------
def test_identity_and_empty_sequence_outputs(backend):
    key = _register("identity", _model(
        [helper.make_node("Identity", ["s"], ["t"]), helper.make_node("SequenceEmpty", [], ["e"], dtype=I64)],
        [_seq("s", F, (None,))], [_seq("t", F, (None,)), _seq("e", I64, ())]))
    items = [np.arange(k, dtype=np.float32) for k in (3, 0, 1)]
    _check(key, backend, [items], [items, []])


def test_sequences_through_if_and_loop(backend):
    """A Loop collects x[:i+1] for i < n in a sequence started by SequenceEmpty; an If picks it or its reverse."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", I64, (), [1])),
         helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", I64, (1,), [0])),
         helper.make_node("Constant", [], ["ax"], value=helper.make_tensor("ax", I64, (1,), [0])),
         helper.make_node("Add", ["i", "one"], ["end0"]),
         helper.make_node("Unsqueeze", ["end0", "ax"], ["end"]),
         helper.make_node("Slice", ["x", "zero", "end"], ["piece"]),
         helper.make_node("SequenceInsert", ["s_in", "piece"], ["s_out"])],
        "body", [_t("i", I64), _t("c_in", TensorProto.BOOL), helper.make_tensor_sequence_value_info("s_in", F, None)],
        [_t("c_out", TensorProto.BOOL), helper.make_tensor_sequence_value_info("s_out", F, None)])
    rev = helper.make_graph([helper.make_node("SequenceInsert", ["acc", "last", "zero_pos"], ["r"])], "then",
                            [], [helper.make_tensor_sequence_value_info("r", F, None)])
    fwd = helper.make_graph([helper.make_node("Identity", ["acc"], ["f"])], "else", [],
                            [helper.make_tensor_sequence_value_info("f", F, None)])
    key = _register("if_loop", _model(
        [helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
         helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", TensorProto.BOOL, (), [True])),
         helper.make_node("Loop", ["n", "t", "empty"], ["acc"], body=body),
         helper.make_node("Constant", [], ["zero_pos"], value=helper.make_tensor("zero_pos", I64, (), [0])),
         helper.make_node("Constant", [], ["m1"], value=helper.make_tensor("m1", I64, (), [-1])),
         helper.make_node("SequenceAt", ["acc", "m1"], ["last"]),
         helper.make_node("If", ["flag"], ["out"], then_branch=rev, else_branch=fwd)],
        [_t("x", F, ("k",)), _t("n", I64), _t("flag", TensorProto.BOOL)], [_seq("out", F, (None,))]))
    x = np.arange(6, dtype=np.float32)
    pieces = [x[:i + 1] for i in range(4)]
    _check(key, backend, [x, np.array(4), np.array(False)], [pieces])
    _check(key, backend, [x, np.array(4), np.array(True)], [[pieces[-1]] + pieces])


def _map_model(known: bool):
    """SequenceMap over two sequences and a tensor: (a_i + b_i * w, shape of a_i); the sequences come as graph
    inputs (a run-time walk) or from SequenceConstruct (unrolled)."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["b", "w"], ["bw"]), helper.make_node("Add", ["a", "bw"], ["y"]),
         helper.make_node("Shape", ["a"], ["shape"])], "body",
        [_t("a", F, (None, 3)), _t("b", F, (None, 3)), _t("w", F, (3,))],
        [_t("y", F, (None, 3)), _t("shape", I64, (2,))])
    node = helper.make_node("SequenceMap", ["sa", "sb", "w"], ["ys", "shapes"], body=body)
    if not known:
        return _model([node], [_seq("sa"), _seq("sb"), _t("w", F, (3,))], [_seq("ys"), _seq("shapes", I64, (2,))])
    return _model([helper.make_node("SequenceConstruct", ["a0", "a1"], ["sa"]),
                   helper.make_node("SequenceConstruct", ["b0", "b1"], ["sb"]), node],
                  [_t(n, F, ("r" + n[1], 3)) for n in ("a0", "a1", "b0", "b1")] + [_t("w", F, (3,))],
                  [_seq("ys"), _seq("shapes", I64, (2,))])


@pytest.mark.parametrize("known", [False, True])
def test_sequence_map_over_two_sequences_and_a_tensor(backend, known):
    key = _register(f"map_{known}", _map_model(known))
    rng = np.random.default_rng(11)
    a, b, w = _rows(rng, (2, 0)), _rows(rng, (2, 0)), rng.standard_normal(3).astype(np.float32)
    want = [[x + y * w for x, y in zip(a, b)], [np.array(x.shape, np.int64) for x in a]]
    _check(key, backend, [a[0], a[1], b[0], b[1], w] if known else [a, b, w], want)
    walks = any(n.startswith("sequence_map") for n in _compiled(key)[0].functions)
    assert walks is not known  # known elements: the body unrolled, no recursive function
    if not known:
        _check(key, backend, [[], [], w], [[], []])


# ---- hypothesis over sequence lengths and element shapes ---------------------------------------------------
PIPELINE = _register("pipeline", _model(
    [helper.make_node("SequenceLength", ["s"], ["n"]),
     helper.make_node("SequenceInsert", ["s", "x", "p"], ["t"]),
     helper.make_node("ConcatFromSequence", ["t"], ["y"], axis=0),
     helper.make_node("SplitToSequence", ["y", "sizes"], ["u"], axis=0),
     helper.make_node("SequenceErase", ["u", "p"], ["v"])],
    [_seq("s"), _t("x", F, ("m", 3)), _t("p", I64), _t("sizes", I64, ("q",))],
    [_t("n", I64), _t("y", F, (None, 3)), _seq("v", F, (None, 3))]))


@EXAMPLES
@given(length=LENGTHS, rows=st.lists(ROWS, min_size=14, max_size=14), pos=st.integers(-14, 14), seed=st.integers(0, 9))
def test_sequence_pipeline_over_lengths_and_shapes(length, rows, pos, seed):
    """Insert, concat, split back and erase over sequences of 0, 1, primes elements of 0 .. 11 rows: numpy."""
    pos = max(-length, min(pos, length))  # insert: [-n, n] (-k: before the k-th last); erase: [-(n + 1), n]
    rng = np.random.default_rng(seed)
    items, x = _rows(rng, rows[:length]), _rows(rng, rows[length:length + 1])[0]
    at = pos + length if pos < 0 else pos
    joined = items[:at] + [x] + items[at:]
    gone = pos + length + 1 if pos < 0 else pos
    sizes = np.array([a.shape[0] for a in joined], np.int64)
    want = [np.array(length), np.concatenate(joined, axis=0), joined[:gone] + joined[gone + 1:]]
    for backend in ("native", "python"):
        got = _nimble(PIPELINE, backend, items, x, np.array(pos), sizes)
        for g, w in zip(got, want):
            _same(g, w)


@EXAMPLES
@given(cols=ROWS, k=st.integers(1, 8), seed=st.integers(0, 9))
def test_split_by_a_scalar_over_dims_and_steps(cols, k, seed):
    """Whole pieces and a shorter last one (or none) over dims 0, 1, primes: numpy."""
    x = np.random.default_rng(seed).standard_normal((2, cols)).astype(np.float32)
    want = [x[:, s:s + k] for s in range(0, cols, k)]
    for backend in ("native", "python"):
        _same(_nimble(SPLIT_SCALAR, backend, x, np.array(k))[0], want)


# ---- bad input -------------------------------------------------------------------------------------------
def test_a_non_list_for_a_sequence_input_is_refused(backend):
    x = np.zeros((1, 3), np.float32)
    with pytest.raises(nimble.TypeError, match="input 's'.*expected a sequence"):
        _nimble(INSERT_END, backend, x, x)
    with pytest.raises(nimble.TypeError, match=r"input 's'\[1\]: expected dtype float32"):
        _nimble(INSERT_END, backend, [x, x.astype(np.float64)], x)
    with pytest.raises(nimble.ShapeError, match=r"input 's'\[0\]: expected rank 2"):
        _nimble(INSERT_END, backend, [np.zeros(3, np.float32)], x)


def test_sequence_input_without_element_rank_needs_shapes():
    model = _model([helper.make_node("Identity", ["s"], ["t"])],
                   [helper.make_tensor_sequence_value_info("s", F, None)], [_seq("t")])
    with pytest.raises(ConversionError, match="pass shapes="):
        from_onnx(model)
    mod = from_onnx(model, shapes={"s": (None, None)})
    items = _rows(np.random.default_rng(0), (2, 1))
    _same(python_outputs(nimble.VirtualMachine(nimble.compile(mod)).run(*vm_inputs(mod, [items]))), items)


def test_mismatched_elements_are_refused_at_conversion():
    model = _model([helper.make_node("SequenceConstruct", ["a", "b"], ["s"])],
                   [_t("a", F, (2,)), _t("b", F, (2, 2))], [_seq("s", F, None)])
    with pytest.raises(ConversionError, match="cannot join a sequence"):
        from_onnx(model)
