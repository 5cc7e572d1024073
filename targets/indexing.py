"""Indexing with int64 index tensors: gather, scatter-add and index_select along a dim.

Each backward is the adjoint indexing op (gather <-> scatter-add, index_select -> index_add),
which accumulates over repeated indices. Argument tuples come from Hypothesis strategies, since
the valid index values depend on the drawn sizes.
"""

import jax.numpy as jnp
import torch
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._draw import float_dtypes, float_tensors, index_tensors, sizes


def _table_and_index(draw, dtype):
    """x: (n, m) and index: (n, k) in [0, m); k is 0 whenever m is."""
    n, m = draw(sizes), draw(sizes)
    k = draw(sizes) if m else 0
    return draw(float_tensors((n, m), dtype)), draw(index_tensors((n, k), m))


@st.composite
def _gather_args(draw):
    return _table_and_index(draw, draw(float_dtypes))


@st.composite
def _scatter_args(draw):
    """(base: (n, m), index: (n, k) in [0, m), src: (n, k))."""
    dtype = draw(float_dtypes)
    base, index = _table_and_index(draw, dtype)
    return base, index, draw(float_tensors(tuple(index.shape), dtype))


@st.composite
def _index_select_args(draw):
    """(x: (n, *rest), index: (k,) in [0, n))."""
    n = draw(sizes)
    rest = tuple(draw(st.lists(sizes, max_size=2)))
    k = draw(sizes) if n else 0
    return draw(float_tensors((n, *rest), draw(float_dtypes))), draw(index_tensors((k,), n))


def _rows(index):
    return jnp.arange(index.shape[0])[:, None]


@fg.register(
    reference=lambda x, index: torch.gather(x, 1, index),
    jax_reference=lambda x, index: jnp.take_along_axis(x, index, axis=1),
    inputs=_gather_args(),
)
class Gather(Function):
    """out[i, j] = x[i, index[i, j]]; backward scatter-adds the gradient into zeros like x."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return x.gather(1, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return grad.new_zeros(ctx.shape).scatter_add(1, index, grad), None


@fg.register(
    reference=lambda base, index, src: base.scatter_add(1, index, src),
    jax_reference=lambda base, index, src: base.at[_rows(index), index].add(src),
    inputs=_scatter_args(),
)
class ScatterAdd(Function):
    """out = base with src[i, j] added at column index[i, j] of row i (repeats accumulate)."""

    @staticmethod
    def forward(ctx, base, index, src):
        ctx.save_for_backward(index)
        return base.scatter_add(1, index, src)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        dsrc = grad.gather(1, index) if ctx.needs_input_grad[2] else None
        return grad, None, dsrc


@fg.register(
    reference=lambda x, index: torch.index_select(x, 0, index),
    jax_reference=lambda x, index: jnp.take(x, index, axis=0),
    inputs=_index_select_args(),
)
class IndexSelect(Function):
    """Rows of x picked by an index vector (an embedding lookup); backward is index_add."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return grad.new_zeros(ctx.shape).index_add(0, index, grad), None
