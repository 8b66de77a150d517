"""Bad-input cases for ``from_onnx`` that the ONNX fuzzer (``onnx_fuzz.py``) found, each fixed, plus
the fuzzer's seeds (small valid models) checked against ONNX Runtime. Registered into ``cases.CASES``."""
from __future__ import annotations

import numpy as np
from cases import case, onnx_model


def _run(model, *inputs):
    import nimble
    from nimble.frontend import from_onnx

    return nimble.VirtualMachine(nimble.compile(from_onnx(model))).run(*inputs)


def _x(shape=(2, 3)):
    return np.random.default_rng(0).standard_normal(shape).astype("float32")


# was a silent wrong answer: keepdims=-3 kept the dims (ONNX Runtime drops them: only 1 is true)
@case("error", "onnx_fuzz.reduce_keepdims_not_0_or_1")
def _():
    _run(onnx_model("ReduceMean", {"axes": [0], "keepdims": -3}, opset=13), _x())


@case("error", "onnx_fuzz.argmax_keepdims_2")
def _():
    _run(onnx_model("ArgMax", {"axis": 1, "keepdims": 2}), _x())


# was a raw KeyError: an initializer of a data type onnx does not know
for _code in (77, 65):
    def _unknown_dtype(code=_code):
        m = onnx_model("Add", {}, (3,), inputs=["x", "w"])
        from onnx import numpy_helper

        init = numpy_helper.from_array(np.zeros(3, "float32"), "w")
        init.data_type = code
        m.graph.initializer.append(init)
        _run(m, _x((3,)))

    case("error", f"onnx_fuzz.initializer_data_type_{_code}")(_unknown_dtype)


# was a raw ValueError from the te layer at compile time
@case("error", "onnx_fuzz.argmax_of_bool")
def _():
    from onnx import TensorProto as TP

    m = onnx_model("ArgMax", {"axis": 1})
    m.graph.input[0].type.tensor_type.elem_type = TP.BOOL
    _run(m, np.ones((2, 3), bool))


# was a raw ZeroDivisionError inside the Split converter
@case("error", "onnx_fuzz.split_num_outputs_0")
def _():
    _run(onnx_model("Split", {"axis": 1, "num_outputs": 0}, (2, 4), n_out=2, opset=18), _x((2, 4)))


# was a silent wrong answer: an argmax over an empty axis returned an index
@case("error", "onnx_fuzz.argmax_over_empty_axis")
def _():
    _run(onnx_model("ArgMax", {"axis": 1, "keepdims": 0}, (3, 0)), np.ones((3, 0), "float32"))


# were silent wrong answers: out-of-range Gather indices were clipped (constant) or wrapped (run time)
@case("error", "onnx_fuzz.gather_constant_index_out_of_range")
def _():
    _run(onnx_model("Gather", {"axis": 0}, extra=[("i", [2, 0])]), _x())


def _gather_runtime():
    from onnx import TensorProto as TP
    from onnx import helper

    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=0)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TP.FLOAT, ["n", 3]),
                                        helper.make_tensor_value_info("i", TP.INT64, ["k"])],
                          [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@case("error", "onnx_fuzz.gather_runtime_index_out_of_range")
def _():
    _run(_gather_runtime(), _x(), np.array([2, 0]))


@case("error", "onnx_fuzz.gather_runtime_index_below_minus_n")
def _():
    _run(_gather_runtime(), _x(), np.array([-3]))


@case("correct", "onnx_fuzz.gather_runtime_negative_index")
def _():
    x = _x()
    np.testing.assert_array_equal(_run(_gather_runtime(), x, np.array([-1, 0, -2])), x[[-1, 0, -2]])


# were silently ignored: nodes that do not fit their ONNX schema
@case("error", "onnx_fuzz.softmax_with_extra_inputs")
def _():
    _run(onnx_model("Softmax", {"axis": 1}, inputs=["x", "x"]), _x())


@case("error", "onnx_fuzz.relu_with_unknown_attribute")
def _():
    _run(onnx_model("Relu", {"axis": 1}), _x())


@case("error", "onnx_fuzz.attribute_given_twice")
def _():
    from onnx import helper

    m = onnx_model("Transpose", {"perm": [1, 0]})
    m.graph.node[0].attribute.append(helper.make_attribute("perm", [0, 1]))
    _run(m, _x())


@case("error", "onnx_fuzz.axis_attribute_of_type_float")
def _():
    _run(onnx_model("Softmax", {"axis": 1.5}), _x())


@case("error", "onnx_fuzz.cast_without_required_to")
def _():
    _run(onnx_model("Cast", {}), _x())


@case("error", "onnx_fuzz.squeeze_axes_attribute_at_opset_13")
def _():
    _run(onnx_model("Squeeze", {"axes": [1]}, (2, 1)), _x((2, 1)))


@case("error", "onnx_fuzz.opset_newer_than_onnx_knows")
def _():
    _run(onnx_model("Relu", {}, opset=99), _x())


# was accepted: an initializer giving a float input an int64 default
@case("error", "onnx_fuzz.initializer_type_unlike_its_input")
def _():
    from onnx import numpy_helper

    m = onnx_model("Relu", {})
    m.graph.initializer.append(numpy_helper.from_array(np.zeros((2, 3), "int64"), "x"))
    _run(m)


def _seed_case(index):
    def check():
        import onnx
        from onnx_fuzz import check as check_against_ort
        from onnx_fuzz import seeds

        outcome = check_against_ort(onnx.ModelProto.FromString(seeds()[index]), f"seed {index}")
        assert outcome == "correct", outcome
    return check


for _i in range(18):
    case("correct", f"onnx_fuzz.seed_{_i}_matches_onnx_runtime")(_seed_case(_i))
