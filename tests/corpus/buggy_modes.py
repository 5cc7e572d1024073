"""Planted bugs in modes of use a plain check never exercises: an output wrongly marked
non-differentiable, a forward that takes a wrong branch when nothing needs grad, a backward that
mishandles the None it gets for an unused output. See `correct_modes` for correct twins."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x: (x.sin(), x.cos()),
    jax_reference=lambda x: (jnp.sin(x), jnp.cos(x)),
    planted={
        "property": "forward",
        "bug_class": "a differentiable output marked non-differentiable",
        "needs": "none",
    },
)
class SinCosMarksCosNonDifferentiable(Function):
    """sin and cos, with cos marked non-differentiable by mistake: every gradient through it is
    silently dropped (its cotangent never reaches backward, so the vjp still matches)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        s, c = x.sin(), x.cos()
        ctx.mark_non_differentiable(c)
        return s, c

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        return gs * x.cos()


@fg.register(
    reference=lambda x: torch.nn.functional.softplus(x),
    jax_reference=lambda x: jnp.logaddexp(x, 0.0),
    planted={
        "property": "no_grad",
        "bug_class": "an inference branch with another formula",
        "needs": "none",
    },
)
class SoftplusInferenceBranch(Function):
    """softplus whose forward takes a 'fast' branch when no input needs grad: log1p(x) + 1
    instead of log1p(exp(x)). Every check with grad enabled passes."""

    @staticmethod
    def forward(ctx, x):
        if not ctx.needs_input_grad[0]:
            return torch.log1p(x.abs()) + 1
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)
