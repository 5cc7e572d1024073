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
