"""Surrogate gradients: Functions whose backward is deliberately *not* the derivative of forward.

Straight-through estimators and gradient reversal. Their references use the detach trick,
value.detach() + (f(x) - f(x).detach()), whose forward is exactly ``value`` (the second term is
an exact 0) and whose gradient is that of f.
"""

import jax.numpy as jnp
import torch
from jax.lax import stop_gradient
from torch.autograd import Function

import fuzzgrad as fg


def _surrogate(value, grad_path):
    """Forward ``value``, gradient of ``grad_path`` (torch)."""
    return value.detach() + (grad_path - grad_path.detach())


def _surrogate_jax(value, grad_path):
    return stop_gradient(value) + (grad_path - stop_gradient(grad_path))


@fg.register(
    reference=lambda x: x + (torch.round(x) - x).detach(),
    jax_reference=lambda x: x + stop_gradient(jnp.round(x) - x),
)
class StraightThroughRound(Function):
    """round(x) forward, identity backward (quantisation-aware training's STE).

    Both round half to even. (round(x) - x is exact, so x + (round(x) - x) is exactly round(x).)
    """

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


@fg.register(
    # 2 * x.detach() - x would overflow at the largest finite x; this form cannot.
    reference=lambda x: _surrogate(x, -x),
    jax_reference=lambda x: _surrogate_jax(x, -x),
)
class GradientReversal(Function):
    """Identity forward, negated gradient backward (domain-adversarial training's GRL)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


@fg.register(
    reference=lambda x: _surrogate(x.clamp(-1, 1), x),
    jax_reference=lambda x: _surrogate_jax(jnp.clip(x, -1, 1), x),
)
class ClampPassThrough(Function):
    """clamp(x, -1, 1) forward, identity backward: the gradient passes through the clip.

    (x + (clamp(x) - x).detach() is not used as reference: for |x| > 2**53 it rounds to 0.)
    """

    @staticmethod
    def forward(ctx, x):
        return x.clamp(-1, 1)

    @staticmethod
    def backward(ctx, grad):
        return grad


@fg.register(
    reference=lambda x: _surrogate(torch.sign(x), x.clamp(-1, 1)),
    jax_reference=lambda x: _surrogate_jax(jnp.sign(x), jnp.clip(x, -1, 1)),
)
class StraightThroughSign(Function):
    """sign(x) forward, hardtanh' backward: the gradient passes where |x| <= 1 (binarised nets).

    At |x| == 1 this follows torch's clamp (gradient 1); JAX's clip gives 1/2 there.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, grad, 0)
