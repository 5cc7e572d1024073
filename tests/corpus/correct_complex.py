"""Correct complex Functions: PyTorch's convention (the gradient is the conjugate Wirtinger
derivative, so a holomorphic f's backward multiplies by conj(f'(z))), followed by the JAX
oracle too. See `buggy_complex` for the same Functions with the conj() forgotten."""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg

COMPLEX = [torch.complex128, torch.complex64]


@fg.register(reference=lambda z: z * z, jax_reference=lambda z: z * z, dtypes=COMPLEX)
class ComplexSquare(Function):
    """z^2, holomorphic: grad = g * conj(2 z)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return z * z

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * (2 * z).conj()


@fg.register(
    reference=torch.exp, jax_reference=jnp.exp, dtypes=COMPLEX, inputs=[fg.tensor(low=-4, high=4)]
)
class ComplexExp(Function):
    """exp(z), holomorphic: grad = g * conj(exp(z)) (the saved output, conjugated)."""

    @staticmethod
    def forward(ctx, z):
        out = z.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out.conj()


@fg.register(
    reference=lambda x, w: x * w,
    jax_reference=lambda x, w: x * w,
    inputs=[fg.tensor("n", dtypes=[torch.float64]), fg.tensor("n")],
    dtypes=COMPLEX,
)
class RealTimesComplex(Function):
    """A real x times a complex w: x's gradient is real, Re(g * conj(w)); w's is g * x, cast
    back to w's dtype (x * w promotes a complex64 w with a float64 x to complex128)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return (g * w.conj()).real.to(x.dtype), (g * x).to(w.dtype)
