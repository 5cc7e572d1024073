"""Planted bugs in custom operators (``torch.library.custom_op``): a fake kernel whose strides
differ from the real one's, an undeclared mutation, a wrong registered backward."""

import jax.numpy as jnp
import torch

import fuzzgrad as fg

LIB = "fuzzgradcorpus"


def _sin_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _sin_backward(ctx, g):
    (x,) = ctx.saved_tensors
    return g * torch.cos(x)


@torch.library.custom_op(f"{LIB}::sin_fake_strides", mutates_args=())
def sin_fake_strides(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x).contiguous()  # the real kernel returns a contiguous tensor ...


@sin_fake_strides.register_fake
def _(x):
    return torch.empty_like(x)  # ... its fake one keeps x's strides


sin_fake_strides.register_autograd(_sin_backward, setup_context=_sin_setup)


@torch.library.custom_op(f"{LIB}::sin_mutates", mutates_args=())
def sin_mutates(x: torch.Tensor) -> torch.Tensor:
    out = torch.sin(x)
    x.mul_(2)  # writes into its input without declaring it in mutates_args
    return out


@sin_mutates.register_fake
def _(x):
    return torch.empty_like(x)


sin_mutates.register_autograd(_sin_backward, setup_context=_sin_setup)


@torch.library.custom_op(f"{LIB}::sin_wrong_grad", mutates_args=())
def sin_wrong_grad(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x)


@sin_wrong_grad.register_fake
def _(x):
    return torch.empty_like(x)


def _wrong_backward(ctx, g):
    (x,) = ctx.saved_tensors
    return g * torch.sin(x)  # should be cos


sin_wrong_grad.register_autograd(_wrong_backward, setup_context=_sin_setup)


OPS = torch.ops.fuzzgradcorpus
fg.register(
    OPS.sin_fake_strides.default,
    name="CustomOpFakeStrides",
    reference=torch.sin,
    jax_reference=jnp.sin,
    planted={"property": "custom_op", "bug_class": "fake kernel strides", "needs": "layout"},
)
fg.register(
    OPS.sin_mutates.default,
    name="CustomOpUndeclaredMutation",
    reference=torch.sin,
    jax_reference=jnp.sin,
    planted={"property": "custom_op", "bug_class": "undeclared mutation", "needs": "none"},
)
fg.register(
    OPS.sin_wrong_grad,  # the packet: its .default overload is what runs
    name="CustomOpWrongBackward",
    reference=torch.sin,
    jax_reference=jnp.sin,
    planted={"property": "vjp", "bug_class": "wrong registered backward", "needs": "none"},
)
