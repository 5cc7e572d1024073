"""Correct Functions at the verdict's edges (issue #24): results that honest arithmetic at the
case's dtype, a kink or a tie, or the limits of finite differences make look wrong. Each must
pass; its planted twin is in ``buggy_verdict.py``."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x, y: x * y,
    jax_reference=lambda x, y: x * y,
    dtypes=[torch.float16, torch.float32, torch.float64],
)
class MulJvpHalf(Function):
    """x * y with a right jvp, ``x_t * y + x * y_t``: in float16 it errs by what the reference
    math errs by at that dtype (a sum of two rounded products)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, y):
        return x * y

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, grad * x

    @staticmethod
    def jvp(ctx, x_t, y_t):
        x, y = ctx.saved_tensors
        return x_t * y + x * y_t
