"""The Functions `self_fuzz` draws registrations of: elementwise, broadcasting binary, a
reduction over a dim, an unsqueeze, a gather by indices, a slice by a size, Functions that save
sparse, complex, zero-size, non-contiguous, meta or nested tensors, that return a None gradient
or a non-tensor output; with their torch and JAX references. All are right to first order;
`SAVING` ones whose backward takes values from what they saved (sparse, complex) are wrong to
second order."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import torch
from torch.autograd import Function


class Square(Function):
    """x * x, elementwise."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 2 * x.conj()


class Mul(Function):
    """x * y, broadcasting: each gradient summed back to its input's shape."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        gx = _to_input(grad * y.conj(), x) if ctx.needs_input_grad[0] else None
        gy = _to_input(grad * x.conj(), y) if ctx.needs_input_grad[1] else None
        return gx, gy


def _to_input(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A broadcast product's gradient summed back to ``x``'s shape, in ``x``'s dtype."""
    grad = grad.sum_to_size(x.shape)
    return (grad if x.is_complex() or not grad.is_complex() else grad.real).to(x.dtype)


class SumDim(Function):
    """x.sum(dim, keepdim)."""

    @staticmethod
    def forward(ctx, x, dim, keepdim=False):
        ctx.shape, ctx.dim, ctx.keepdim = x.shape, dim, keepdim
        return x.sum(dim, keepdim=keepdim)

    @staticmethod
    def backward(ctx, grad):
        if len(ctx.shape) == 0:
            return grad.reshape(()), None, None
        if not ctx.keepdim:
            grad = grad.unsqueeze(ctx.dim)
        return grad.expand(ctx.shape), None, None


class Take(Function):
    """x[..., :k]."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.shape, ctx.k = x.shape, k
        return x[..., :k].clone()

    @staticmethod
    def backward(ctx, grad):
        pad = grad.new_zeros(ctx.shape[:-1] + (ctx.shape[-1] - ctx.k,))
        return torch.cat([grad, pad], -1), None


class Unsqueeze(Function):
    """x.unsqueeze(dim), for a ``fuzzgrad.dim(0, keepdim=True)``."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.dim = dim
        return x.unsqueeze(dim).clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.squeeze(ctx.dim), None


class Gather(Function):
    """x[..., idx] for indices into the last dim (``structure="index"``)."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.shape = x.shape
        return x[..., idx]

    @staticmethod
    def backward(ctx, grad):
        (idx,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.shape)
        flat = grad.reshape(*ctx.shape[:-1], idx.numel())
        return out.index_add_(-1, idx.reshape(-1), flat), None


def _odd(kind: str, x: torch.Tensor) -> torch.Tensor:
    """A tensor of an unusual kind made from ``x`` (without a graph, as forward makes it)."""
    x = x.detach()
    with warnings.catch_warnings():  # nested tensors warn that they are a prototype
        warnings.simplefilter("ignore")
        if kind == "sparse":
            return x.reshape(-1).to_sparse()
        if kind == "complex":
            return x if x.is_complex() else torch.complex(x, torch.zeros_like(x))
        if kind == "zero_size":
            return x.new_empty((0,) + tuple(x.shape))
        if kind == "non_contiguous":
            return x.reshape(-1, 1).expand(-1, 2).t()
        if kind == "meta":
            return torch.empty(x.shape, dtype=x.dtype, device="meta")
        return torch.nested.nested_tensor([x.reshape(-1), x.reshape(-1)[:1]])


def _saving(kind: str) -> type:
    """x * x whose forward also saves `_odd` (kind) of x; the backward reads it: first order
    right, double backward wrong where it takes the values from it (sparse, complex)."""

    def forward(ctx, x):
        ctx.save_for_backward(x, _odd(kind, x))
        return x * x

    def backward(ctx, grad):
        x, odd = ctx.saved_tensors
        if kind == "sparse":
            x = odd.to_dense().reshape(x.shape).to(x.dtype)
        elif kind == "complex" and not x.is_complex():
            x = odd.real.to(x.dtype)
        return grad * 2 * x.conj()

    return type(
        f"SquareSaves_{kind}",
        (Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


ODD_KINDS = ("sparse", "complex", "zero_size", "non_contiguous", "meta", "nested")
SAVING = {kind: _saving(kind) for kind in ODD_KINDS}


class Double(Function):
    """2 * x; the second argument is not differentiated (its gradient is None)."""

    @staticmethod
    def forward(ctx, x, y):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2, None


class TripleAndCount(Function):
    """(3 * x, x.numel()): a non-tensor second output."""

    @staticmethod
    def forward(ctx, x):
        return x * 3, x.numel()

    @staticmethod
    def backward(ctx, grad, _count):
        return grad * 3


# -- references ---------------------------------------------------------------------------------


def square(x):
    return x * x


def mul(x, y):
    return x * y


def sum_dim(x, dim, keepdim=False):
    return x.sum(dim, keepdim=keepdim)


def sum_dim_jax(x, dim, keepdim=False):
    return jnp.sum(x, axis=dim, keepdims=keepdim)


def take(x, k):
    return x[..., :k]


def take_jax(x, k):
    return x[..., :k]


def double(x, y):
    return x * 2


def count(x):
    return x * 3, x.numel()


def count_jax(x):
    return x * 3, x.size


def unsqueeze(x, dim):
    return x.unsqueeze(dim)


def unsqueeze_jax(x, dim):
    return jnp.expand_dims(x, dim)


def gather(x, idx):
    return x[..., idx]


def as_tensor(values):
    return torch.tensor(values, dtype=torch.float64)
