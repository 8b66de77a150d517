"""Small kernels and bytecode snippets shared by the VM tests (built once per process)."""
from functools import cache

import nimble
from nimble import te
from nimble.vm import AllocStorage, AllocTensor, LoadConsti
from nimble.vm.executable import KernelEntry


@cache
def add_f32() -> KernelEntry:
    """C[i] = A[i] + B[i], float32, n symbolic; a residue variant for n % 8 == 0."""
    n = te.var("n")
    A, B = te.placeholder((n,), name="A"), te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C)
    _, inner = s[C].split(s[C].axis[0], 8)
    s[C].vectorize(inner)
    return KernelEntry.from_kernel(nimble.build(s, [A, B, C], name="add_f32", residues=[{n: 8}]))


@cache
def add_rows_f32() -> KernelEntry:
    """C[i, j] = A[i, j] + b[j] (a broadcast add), float32."""
    n, m = te.var("n"), te.var("m")
    A, b = te.placeholder((n, m), name="A"), te.placeholder((m,), name="b")
    C = te.compute((n, m), lambda i, j: A[i, j] + b[j], name="C")
    return KernelEntry.from_kernel(nimble.build([C], [A, b, C], name="add_rows_f32"))


@cache
def add_i64() -> KernelEntry:
    """c = a + b on 0-d int64 tensors."""
    A, B = te.placeholder((), "int64", name="A"), te.placeholder((), "int64", name="B")
    C = te.compute((), lambda: A[()] + B[()], name="C")
    return KernelEntry.from_kernel(nimble.build([C], [A, B, C], name="add_i64"))


@cache
def dec_i64() -> KernelEntry:
    """b = a - 1 on a 0-d int64 tensor; OutOfRangeError when a <= 0."""
    A = te.placeholder((), "int64", name="A")
    B = te.compute((), lambda: A[()] - 1, name="B", checks=lambda: [(A[()] > 0, "countdown below zero")])
    return KernelEntry.from_kernel(nimble.build([B], [A, B], name="dec_i64"))


@cache
def nbytes_f32_2d() -> KernelEntry:
    """bytes = s[0] * s[1] * 4: the storage size of a float32 tensor of shape s (a 1-D int64 of 2)."""
    S = te.placeholder((2,), "int64", name="S")
    N = te.compute((), lambda: S[0] * S[1] * 4, name="N")
    return KernelEntry.from_kernel(nimble.build([N], [S, N], name="nbytes_f32_2d"))


def alloc(size_reg: int, storage_reg: int, dst: int, shape: tuple, dtype: str, nbytes: int) -> list:
    """Instructions that allocate a fresh tensor of a constant shape into ``dst``."""
    return [LoadConsti(nbytes, size_reg), AllocStorage(size_reg, 64, 0, storage_reg),
            AllocTensor(storage_reg, 0, shape, dtype, dst)]


def executable(functions, packed, constants=(), inputs=None, outputs=None):
    """An Executable of ``functions`` (the first is ``main``) with host metadata."""
    from nimble.vm import Executable, host_metadata

    meta = host_metadata(inputs=inputs or {}, outputs=outputs or {})
    return Executable(tuple(functions), tuple(constants), tuple(packed), {f.name: i for i, f in enumerate(functions)},
                      meta)
