"""Correct twins of `buggy_modes`: a Function with an integer output marked non-differentiable,
one that skips saving tensors when nothing needs grad, and an in-place Function with a forward-mode
``jvp`` (which must work on its own copies of inputs and tangents)."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x: torch.nn.functional.softplus(x),
    jax_reference=lambda x: jnp.logaddexp(x, 0.0),
)
class SoftplusSkipsSavingWithoutGrad(Function):
    """softplus whose forward saves nothing when no input needs grad: same outputs either way."""

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    inputs=[fg.tensor(low=-5, high=5)],
)
class InplaceExpWithJvp(Function):
    """exp_ in place (mark_dirty), in the setup_context style, with backward and jvp: the jvp
    updates the input's tangent in place, as in-place forward-mode AD requires."""

    @staticmethod
    def forward(x):
        return x.exp_()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_dirty(inputs[0])
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y

    @staticmethod
    def jvp(ctx, x_t):
        (y,) = ctx.saved_tensors
        return x_t.mul_(y)
