"""Functions that exercise the structural corners of the autograd.Function API.

A numpy-backed Function, two outputs, in-place mutation (``mark_dirty``), an integer output
(``mark_non_differentiable``), the ``setup_context`` style with broadcasting, and a backward
marked ``once_differentiable``.
"""

import math

import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg
from fuzzgrad.targets._common import sigmoid, upcast


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """numpy has no bfloat16: go through float32 for it."""
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def _from_numpy(a, like: torch.Tensor) -> torch.Tensor:
    """np.asarray because a 0-d numpy op returns a scalar, which torch.from_numpy rejects."""
    return torch.from_numpy(np.asarray(a)).to(device=like.device, dtype=like.dtype)


@fg.register(reference=torch.tanh, jax_reference=jnp.tanh)
class NumpyTanh(Function):
    """tanh computed by numpy in both directions (the "extension with numpy" pattern).

    Its backward leaves torch, so it cannot be differentiated again: ``once_differentiable``.
    """

    @staticmethod
    def forward(ctx, x):
        y = _from_numpy(np.tanh(_to_numpy(x)), x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        yn = _to_numpy(y)
        return _from_numpy(_to_numpy(grad) * (1 - yn * yn), grad)


@fg.register(
    reference=lambda r, theta: (r * torch.cos(theta), r * torch.sin(theta)),
    jax_reference=lambda r, theta: (r * jnp.cos(theta), r * jnp.sin(theta)),
)
class PolarToCartesian(Function):
    """(r, theta) -> (r cos theta, r sin theta): two outputs, either of which may go unused.

    With ``set_materialize_grads(False)`` an unused output's gradient arrives as None.
    """

    @staticmethod
    def forward(ctx, r, theta):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(r, theta)
        return r * torch.cos(theta), r * torch.sin(theta)

    @staticmethod
    def backward(ctx, gx, gy):
        r, theta = ctx.saved_tensors
        cos, sin = torch.cos(theta), torch.sin(theta)
        dr = torch.zeros_like(r)
        dtheta = torch.zeros_like(theta)
        if gx is not None:
            dr, dtheta = dr + gx * cos, dtheta - gx * r * sin
        if gy is not None:
            dr, dtheta = dr + gy * sin, dtheta + gy * r * cos
        return dr, dtheta


@fg.register(
    reference=torch.relu,
    jax_reference=lambda x: jnp.where(x > 0, x, 0),
)
class InplaceReLU(Function):
    """ReLU applied in place to its input, which it returns (``ctx.mark_dirty``).

    The output is saved (not the overwritten input): the gradient mask is ``out > 0``.
    """

    @staticmethod
    def forward(ctx, x):
        x.relu_()
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return torch.where(out > 0, grad, 0)


@fg.register(
    reference=lambda x: tuple(torch.max(x, -1)),
    jax_reference=lambda x: (jnp.max(x, -1), jnp.argmax(x, -1)),
    inputs=[fg.tensor("*batch 5")],  # max over an empty dim is an error, so n is fixed
)
class MaxWithIndex(Function):
    """Max over the last dim returning (values, int64 indices); indices are non-differentiable.

    The gradient goes to the returned index only (torch's choice among ties; JAX splits it).
    """

    @staticmethod
    def forward(ctx, x):
        values, index = x.max(-1)
        ctx.mark_non_differentiable(index)
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return values, index

    @staticmethod
    def backward(ctx, grad_values, grad_index):
        (index,) = ctx.saved_tensors
        dx = grad_values.new_zeros(ctx.shape)
        return dx.scatter(-1, index[..., None], grad_values[..., None])


def _logaddexp_jax(x, y):
    return jnp.logaddexp(x, y)


@fg.register(
    reference=torch.logaddexp,
    jax_reference=_logaddexp_jax,
    inputs=[fg.tensor("*#batch #n"), fg.tensor("*#batch #n")],
    precision="fused",
)
class LogAddExp(Function):
    """log(exp(x) + exp(y)) with broadcasting, in the ``setup_context`` style (forward has no
    ctx). Stable form max(x, y) + log1p(exp(-|x - y|)); equal infinities give that infinity."""

    @staticmethod
    def forward(x, y):
        xf, yf = upcast(x), upcast(y)
        out = torch.maximum(xf, yf) + torch.log1p(torch.exp(-(xf - yf).abs()))
        return torch.where(xf == yf, xf + math.log(2), out).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        xf, yf, g = upcast(x), upcast(y), upcast(grad)
        dx = (g * sigmoid(xf - yf)).sum_to_size(x.shape) if ctx.needs_input_grad[0] else None
        dy = (g * sigmoid(yf - xf)).sum_to_size(y.shape) if ctx.needs_input_grad[1] else None
        return (
            None if dx is None else dx.to(x.dtype),
            None if dy is None else dy.to(y.dtype),
        )


_LOG2 = math.log(2)


@fg.register(
    reference=lambda x: x.abs() + F.softplus(-2 * x.abs()) - _LOG2,
    jax_reference=lambda x: jnp.abs(x) + jnp.logaddexp(0.0, -2 * jnp.abs(x)) - _LOG2,
    precision="fused",
)
class LogCosh(Function):
    """log(cosh(x)) without overflow, |x| + log1p(exp(-2|x|)) - log 2; gradient tanh(x).

    Its backward is wrapped in ``once_differentiable`` (as C++-extension wrappers often are).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        a = upcast(x).abs()
        return (a + torch.log1p(torch.exp(-2 * a)) - _LOG2).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (upcast(grad) * torch.tanh(upcast(x))).to(x.dtype)
