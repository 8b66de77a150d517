"""``exe.explain``: a readable sentence and table that is still a dict; a missing records file is an error."""
import numpy as np
import pytest

import nimble
from nimble import ir
from nimble import ops as nb
from nimble.errors import NimbleError
from nimble.ir import Any
from nimble.tuner import Database

pytestmark = pytest.mark.usefixtures("avx2_gemm")  # their tables name AVX2's tile heights


def model():
    x = ir.var("x", shape=(Any, 16))
    w = ir.const(np.ones((8, 16), "float32"), name="w")
    mod = ir.IRModule()
    mod.define("main", ir.Function([x], nb.dense(x, w)))
    return mod


def test_explain_prints_bucket_source_config_and_residue_and_keeps_a_dict_form(tmp_path):
    exe = nimble.compile(model(), records=Database(tmp_path / "empty.db"))
    name = next(p.name for p in exe.packed if "dense" in p.name)
    info = exe.explain(name, (3, 16))
    text = str(info)
    assert text.startswith(f"{name}: n=3 is inside bucket n=2..32: kernel ")
    assert "the template's fallback config (no record)" in text
    assert '"tile_rows"' in text and "n>=33" in text  # the config, and a row per bucket of the table
    assert "[(" not in text and "residue_variants" not in text  # no raw dict dump
    assert info["source"] == "fallback" and info.as_dict()["bucket"] == "n=2..32"
    assert dict(info) == info.as_dict() and isinstance(info.as_dict(), dict)


def test_compile_with_a_records_path_that_does_not_exist_names_it_and_creates_nothing(tmp_path):
    missing = tmp_path / "elsewhere" / "llvm.db"
    with pytest.raises(NimbleError, match="llvm.db.*does not exist"):
        nimble.compile(model(), records=str(missing))
    assert not missing.exists() and not missing.parent.exists()
