import numpy as np

import nimble
from nimble import ir
from nimble.ir.expr import Call, Let, Match, Tuple, TupleGetItem
from nimble.ir.visitor import ExprVisitor
from nimble.models import bert, lstm, tree_lstm
from nimble.passes.anf import to_anf

_ATOMS = (ir.Var, ir.Constant, ir.GlobalVar, ir.Op, ir.Constructor)


class _CheckAtoms(ExprVisitor):
    def visit_call(self, e: Call):
        assert all(isinstance(a, _ATOMS) for a in e.args), e
        return super().visit_call(e)

    def visit_tuple(self, e: Tuple):
        assert all(isinstance(f, _ATOMS) for f in e.fields)
        return super().visit_tuple(e)

    def visit_tuple_getitem(self, e: TupleGetItem):
        assert isinstance(e.tuple_value, _ATOMS)
        return super().visit_tuple_getitem(e)


def test_anf_names_every_intermediate_and_keeps_results():
    cfg = lstm.LSTMConfig()
    mod = lstm.build_module(lstm.random_weights(cfg, 0), cfg)
    anf = to_anf(mod)
    for f in anf.functions.values():
        _CheckAtoms().visit(f.body)
        # a body is a let chain, or a match on a parameter (the LSTM's list functions)
        assert isinstance(f.body, Let) or (isinstance(f.body, Match) and isinstance(f.body.data, ir.Var))
    x = lstm.to_inputs(np.random.default_rng(0).standard_normal((6, 300)).astype("float32"))
    for a, b in zip(ir.evaluate(anf, *x), ir.evaluate(mod, *x)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_anf_modules_compile_and_match():
    cfg = bert.BertConfig(num_layers=1, hidden_size=64, num_heads=4, intermediate_size=128)
    mod = bert.build_module(bert.random_weights(cfg, 0), cfg)
    x = np.random.default_rng(1).standard_normal((9, 64)).astype("float32")
    np.testing.assert_allclose(nimble.VirtualMachine(nimble.compile(to_anf(mod))).run(x), ir.evaluate(mod, x),
                               rtol=1e-4, atol=1e-4)
    tc = tree_lstm.TreeLSTMConfig()
    tmod = tree_lstm.build_module(tree_lstm.random_weights(tc, 0), tc)
    tree = tree_lstm.to_inputs(tree_lstm.random_tree(np.random.default_rng(2), 7, tc.input_size), tc)
    got = nimble.VirtualMachine(nimble.compile(to_anf(tmod))).run(*tree)
    want = ir.evaluate(tmod, *tree)
    np.testing.assert_allclose(np.asarray(got[0] if isinstance(got, tuple) else got.fields[0]),
                               np.asarray(want[0] if isinstance(want, tuple) else want.fields[0]), rtol=1e-4, atol=1e-4)
