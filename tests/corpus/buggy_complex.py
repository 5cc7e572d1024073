"""Planted complex bugs: backward passes that forget PyTorch's conjugate (they compute JAX's
convention instead). With the JAX oracle following PyTorch's convention, neither reference
agrees with them. See `correct_complex` for the right versions."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg

COMPLEX = [torch.complex128, torch.complex64]


@fg.register(
    reference=lambda z: z * z,
    jax_reference=lambda z: z * z,
    dtypes=COMPLEX,
    planted={
        "property": "vjp",
        "bug_class": "missing conj() in a complex backward",
        "needs": "none",
    },
)
class ComplexSquareNoConj(Function):
    """z^2 with grad = g * 2z: JAX's convention, not PyTorch's (the conj() is missing)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z * z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * 2 * z


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    dtypes=COMPLEX,
    inputs=[fg.tensor(low=-4, high=4)],
    planted={"property": "vjp", "bug_class": "missing conj() on a saved output", "needs": "none"},
)
class ComplexExpNoConj(Function):
    """exp(z) whose backward multiplies by the saved output, not by its conjugate."""

    @staticmethod
    def forward(ctx, z):
        out = z.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out
