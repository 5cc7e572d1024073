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


def _hypot_backward(ctx, grad):
    x, y, r = ctx.saved_tensors
    return grad * x / r, grad * y / r


@fg.register(
    reference=lambda x, y: torch.sqrt(x * x + y * y),
    jax_reference=lambda x, y: jnp.sqrt(x * x + y * y),
    inputs=[fg.tensor(low=-1e-24, high=1e-24), fg.tensor(low=-1e-24, high=1e-24)],
    dtypes=[torch.float32],
)
class HypotScaled(Function):
    """sqrt(x**2 + y**2) by ``torch.hypot`` (no square underflows): finite wherever the exact
    gradient is, though the naive references' own float32 runs are NaN or inf at tiny inputs."""

    @staticmethod
    def forward(ctx, x, y):
        r = torch.hypot(x, y)
        ctx.save_for_backward(x, y, r)
        return r

    backward = staticmethod(_hypot_backward)


@fg.register(
    reference=lambda c: torch.amin(c, dim=-1),
    jax_reference=lambda c: jnp.min(c, axis=-1),
    inputs=[fg.tensor("m n")],
    # its double backward along a tie (the first tied entry of a direction, where the
    # references average them) is a kink of second order, which the tie rule does not judge
    max_order=1,
)
class RowMinFirstIndex(Function):
    """Each row's smallest cost, its gradient all on the first smallest entry (as ``torch.min``
    with ``dim`` picks it): at a tie the references split it evenly, both valid subgradients."""

    @staticmethod
    def forward(ctx, c):
        values, index = torch.min(c, dim=-1)
        ctx.save_for_backward(index)
        ctx.shape = c.shape
        return values

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        out = torch.zeros(ctx.shape, dtype=grad.dtype, device=grad.device)
        return out.scatter(-1, index.unsqueeze(-1), grad.unsqueeze(-1))
