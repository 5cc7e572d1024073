"""A correct custom operator (``torch.library.custom_op`` with ``register_autograd`` and
``register_fake``), registered by its overload as a target like a Function."""

import jax.numpy as jnp
import torch

import fuzzgrad as fg

LIB = "fuzzgradcorpus"


def _sin_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _sin_backward(ctx, g):
    (x,) = ctx.saved_tensors
    return g * torch.cos(x)


@torch.library.custom_op(f"{LIB}::sin", mutates_args=())
def sin(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@sin.register_fake
def _(x):
    return torch.empty_like(x)


sin.register_autograd(_sin_backward, setup_context=_sin_setup)


fg.register(torch.ops.fuzzgradcorpus.sin.default, reference=torch.sin, jax_reference=jnp.sin)
