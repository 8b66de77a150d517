"""nimble.settings: every NIMBLE_* variable parsed once, numbers as numbers, errors naming the variable."""
import pytest

from nimble import settings
from nimble.errors import NimbleError


def test_numbers_are_compared_as_numbers():
    assert settings.read({"NIMBLE_DEBUG": "10"}).debug == 10 > settings.read({"NIMBLE_DEBUG": "2"}).debug


def test_empty_environment_gives_the_defaults():
    s = settings.read({})
    assert (s.debug, s.print_after, s.parallel_min_work, s.no_cache, s.vm) == (0, (), 32768, False, "native")
    assert s.num_threads >= 1 and s.cache_dir.endswith(".cache/nimble")


@pytest.mark.parametrize("name,text,message", [
    ("NIMBLE_DEBUG", "lots", "NIMBLE_DEBUG: expected an integer >= 0, got 'lots'"),
    ("NIMBLE_NUM_THREADS", "0", "NIMBLE_NUM_THREADS: expected an integer >= 1, got 0"),
    ("NIMBLE_PARALLEL_MIN_WORK", "1e4", "NIMBLE_PARALLEL_MIN_WORK: expected an integer >= 0, got '1e4'"),
    ("NIMBLE_NO_CACHE", "maybe", "NIMBLE_NO_CACHE: expected one of 1/0"),
    ("NIMBLE_VM", "jit", "NIMBLE_VM: expected one of"),
])
def test_a_bad_value_names_the_variable(name, text, message):
    with pytest.raises(NimbleError, match=message):
        settings.read({name: text})


def test_print_after_is_a_list_of_pass_names():
    assert settings.read({"NIMBLE_PRINT_AFTER": "fuse, lower_kernels"}).print_after == ("fuse", "lower_kernels")


def test_parallel_min_work_is_read_when_a_kernel_is_generated_not_at_import(nimble_env):
    from nimble import te
    from nimble.codegen.build import build

    n = te.var("n")
    a = te.placeholder((n, 8), name="a")
    b = te.compute((n, 8), lambda i, j: a[i, j] * 2.0, name="b")
    s = te.create_schedule(b)
    s[b].parallel(s[b].axis[0])
    nimble_env(NIMBLE_PARALLEL_MIN_WORK="12345")
    assert "12345" in build(s, [a, b]).llvm_ir()


def test_update_rejects_unknown_names_and_reload_restores_the_environment(nimble_env):
    nimble_env(NIMBLE_DEBUG="3")
    assert settings.update(debug=0).debug == 0
    with pytest.raises(NimbleError, match=r"unknown setting\(s\) \['debugging'\]"):
        settings.update(debugging=1)
    assert settings.reload().debug == 3
