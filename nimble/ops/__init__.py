"""Operators: the registry and one builder per operator (`nb.dense(x, w)` makes a call of `dense`).

    from nimble import ops as nb
    y = nb.gelu(nb.add(nb.dense(x, w), b))
"""
from .broadcast import (
    add,
    divide,
    equal,
    fmod,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_or,
    maximum,
    minimum,
    mod,
    multiply,
    not_equal,
    power,
    subtract,
    where,
)
from .conv import avg_pool2d, conv2d, image_patches, max_pool2d
from .creation import arange, full, nonzero, ones, shape_of, zeros
from .elementwise import abs, cast, erf, exp, gelu, log, negative, relu, sigmoid, sqrt, tanh  # noqa: A004
from .pool import avg_pool, max_pool, max_pool_indices
from .topk import topk_indices, topk_values
from .quantize import dense_integer, quantize_linear
from .nn import batch_matmul, batch_norm, dense, layer_norm, log_softmax, matmul, softmax
from .reduce import argmax, max, mean, min, prod, sum  # noqa: A004
from .registry import OpDef, OpPattern, ShapeFuncKind, get_op, list_ops, register
from .transform import concatenate, expand_dims, reshape, split, squeeze, strided_slice, take, transpose
from .attention import attention  # noqa: E402 - after the operators the compute modules register for
from .gelu_tanh import gelu_tanh  # noqa: E402
from .lstm_cell import lstm_cell  # noqa: E402
from .gru_cell import gru_cell  # noqa: E402
from .broadcast import bitwise_and, bitwise_or, bitwise_xor, left_shift, right_shift  # noqa: E402
from .cumulative import cumprod, cumsum  # noqa: E402
from .elementwise import (  # noqa: E402
    acos, acosh, asin, asinh, atan, atanh, bitwise_not, ceil, cos, cosh, floor, round, sin, sinh, tan,  # noqa: A004
)

__all__ = [name for name in dir() if not name.startswith("_")]

# the te computes, registered by these modules into ``compute``'s table (listed here, not imported by compute.py,
# so that compute.py and the modules that use its helpers do not import each other)
from . import (  # noqa: E402,F401,I001
    compute_conv, compute_creation, compute_elementwise, compute_nn, compute_reduce, compute_transform,
)
from . import compute_pool, compute_quantize  # noqa: E402,F401
