"""The table of built-in templates: (operator family, target, Template class), one row each.

Template modules only define classes; this table is the one place that names them. ``registry``
loads it on the first ``get_template`` (the modules pull in the code generators: ~1 s to import).
"""
from __future__ import annotations

from .attention import Attention
from .conv2d import Conv2d
from .cuda_dense import CudaDense
from .cuda_injective import CudaInjective
from .cuda_reduce import CudaReduce
from .cuda_softmax import CudaSoftmax
from .dense import Dense
from .dense_integer import DenseInteger
from .dense_integer_amx import DenseIntegerAmx
from .injective import Injective
from .layer_norm import LayerNorm
from .gru_cell import GRUCell
from .lstm_cell import LSTMCell
from .matmul import BatchMatmul, Matmul
from .reduce import Reduce
from .softmax import Softmax
from .take import Take

BUILTIN_TEMPLATES = (
    ("dense", "llvm", Dense),
    ("dense_integer", "llvm", DenseInteger),
    ("dense_integer_amx", "llvm", DenseIntegerAmx),
    ("matmul", "llvm", Matmul),
    ("batch_matmul", "llvm", BatchMatmul),
    ("attention", "llvm", Attention),
    ("conv2d", "llvm", Conv2d),
    ("injective", "llvm", Injective),
    ("layer_norm", "llvm", LayerNorm),
    ("lstm_cell", "llvm", LSTMCell),
    ("gru_cell", "llvm", GRUCell),
    ("reduce", "llvm", Reduce),
    ("softmax", "llvm", Softmax),
    ("take", "llvm", Take),
    ("dense", "cuda", CudaDense),
    ("injective", "cuda", CudaInjective),
    ("reduce", "cuda", CudaReduce),
    ("softmax", "cuda", CudaSoftmax),
)
