"""Planted bugs that the verdict's excuses (issue #24) must not hide: each sits where a rule
forgives honest error (calibration at the dtype, a kink, finite differences), and is wrong by
more than that rule allows. Their correct twins are in ``correct_verdict.py``."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x, y: x * y,
    jax_reference=lambda x, y: x * y,
    dtypes=[torch.float16],
    planted={"property": "forward_ad", "bug_class": "jvp from float8 copies", "needs": "none"},
)
class MulJvpHalfFloat8Saved(Function):
    """x * y whose jvp reads copies of x and y kept in float8 (to save memory): off by up to
    6%, far beyond what the reference math errs by in float16."""

    @staticmethod
    def forward(x, y):
        return x * y

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y = inputs
        ctx.save_for_backward(x, y)
        ctx.save_for_forward(x.to(torch.float8_e4m3fn), y.to(torch.float8_e4m3fn))

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, grad * x

    @staticmethod
    def jvp(ctx, x_t, y_t):
        x8, y8 = ctx.saved_tensors
        return x_t * y8.to(x_t.dtype) + x8.to(x_t.dtype) * y_t


@fg.register(
    reference=lambda x, y: torch.sqrt(x * x + y * y),
    jax_reference=lambda x, y: jnp.sqrt(x * x + y * y),
    inputs=[fg.tensor(low=-1e-24, high=1e-24), fg.tensor(low=-1e-24, high=1e-24)],
    dtypes=[torch.float32],
    planted={"property": "vjp", "bug_class": "NaN from an underflowed square", "needs": "none"},
)
class HypotUnderflowingBackward(Function):
    """sqrt(x**2 + y**2) by ``torch.hypot``, whose backward divides by ``sqrt(x*x + y*y)``: at
    |x|, |y| below 1e-23 in float32 (drawn there: a Function for tiny inputs) the squares
    underflow to 0 and the gradient is inf or NaN, where the exact one is finite (the naive
    references' float32 runs do the same)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.hypot(x, y)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        r = torch.sqrt(x * x + y * y)
        return grad * x / r, grad * y / r


@fg.register(
    reference=lambda c: torch.amin(c, dim=-1),
    jax_reference=lambda c: jnp.min(c, axis=-1),
    inputs=[fg.tensor("m n")],
    planted={"property": "vjp", "bug_class": "whole gradient to every tie", "needs": "none"},
)
class RowMinEveryTie(Function):
    """Each row's smallest cost, its gradient given in full to every smallest entry: right
    without ties, but at a tie of k entries the gradient sums to k times the cotangent, no
    subgradient (moving the tied entries together moves the minimum by 1, not k)."""

    @staticmethod
    def forward(ctx, c):
        values = torch.amin(c, dim=-1)
        ctx.save_for_backward(c, values)
        return values

    @staticmethod
    def backward(ctx, grad):
        c, values = ctx.saved_tensors
        return (c == values.unsqueeze(-1)).to(grad.dtype) * grad.unsqueeze(-1)
