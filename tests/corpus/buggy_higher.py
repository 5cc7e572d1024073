"""Planted bugs, part 3: second-order, forward-mode and vmap bugs.

First-order gradients are right everywhere here; what is wrong is the double backward (a
backward built from tensors without history, or from ops autograd cannot see through, without
``once_differentiable``), a hand-written ``jvp``, or a hand-written ``vmap`` rule. See `buggy`
for the meaning of ``planted``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg

# --- second order -------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: F.gelu(x),
    jax_reference=lambda x: jax.nn.gelu(x, approximate=False),
    planted={"property": "second_order", "bug_class": "saved intermediate", "needs": "none"},
)
class GeluSavedCdf(Function):
    """Exact GELU x * Phi(x); forward saves Phi(x) for backward, but a tensor made inside forward
    has no history, so the double backward misses d Phi / dx."""

    @staticmethod
    def forward(ctx, x):
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, grad):
        x, cdf = ctx.saved_tensors
        pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad * (cdf + x * pdf)


@fg.register(
    reference=lambda x: F.mish(x),
    jax_reference=lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    planted={"property": "second_order", "bug_class": "detach in backward", "needs": "none"},
)
class MishDetachedBackward(Function):
    """Mish x * tanh(softplus(x)); backward detaches x for the tanh(softplus) factor "since it
    needs no graph", which the double backward does need."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.mish(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        t = torch.tanh(F.softplus(x.detach()))
        return grad * (t + x * torch.sigmoid(x) * (1 - t * t))


@fg.register(
    reference=lambda x: torch.asinh(x),
    jax_reference=lambda x: jnp.arcsinh(x),
    dtypes=[torch.float64, torch.float32, torch.float16],
    planted={
        "property": "second_order",
        "bug_class": "numpy backward without once_differentiable",
        "needs": "none",
    },
)
class AsinhNumpyBackward(Function):
    """asinh with a numpy backward, not marked ``once_differentiable``: the double backward is
    silently zero instead of an error."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.asinh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        x_np, g_np = x.detach().cpu().numpy(), grad.detach().cpu().numpy()
        return torch.as_tensor(np.asarray(g_np / np.hypot(1, x_np))).to(x.device)


# --- forward mode -------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: torch.tanh(x),
    jax_reference=lambda x: jnp.tanh(x),
    planted={"property": "forward_ad", "bug_class": "wrong jvp formula", "needs": "none"},
)
class TanhWrongJvp(Function):
    """tanh with a right backward and a jvp that squares (1 - y) instead of taking 1 - y**2."""

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)

    @staticmethod
    def jvp(ctx, x_t):
        (y,) = ctx.saved_tensors
        return x_t * (1 - y) ** 2


@fg.register(
    reference=lambda x, y: x * y,
    jax_reference=lambda x, y: x * y,
    planted={"property": "forward_ad", "bug_class": "jvp misses a tangent", "needs": "none"},
)
class MulJvpMissingTerm(Function):
    """x * y whose jvp forgets y's tangent (x_t * y, without + x * y_t)."""

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
        return x_t * y


# --- vmap ---------------------------------------------------------------------------------------


@fg.register(
    reference=lambda x, w: x * w,
    jax_reference=lambda x, w: x * w,
    inputs=[fg.tensor("*batch n"), fg.tensor("n")],
    planted={"property": "vmap", "bug_class": "batch dims not aligned", "needs": "none"},
)
class ScaleVmapMisaligned(Function):
    """x * w with a vmap rule that moves both batch dims to the front but never pads the
    lower-rank ``w`` to ``x``'s rank, so w's batch dim lines up with one of x's own dims."""

    @staticmethod
    def forward(x, w):
        return x * w

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        return grad * w, (grad * x).sum_to_size(w.shape)

    @staticmethod
    def vmap(info, in_dims, x, w):
        x_bdim, w_bdim = in_dims
        if x_bdim is not None:
            x = x.movedim(x_bdim, 0)
        if w_bdim is not None:
            w = w.movedim(w_bdim, 0)
        return ScaleVmapMisaligned.apply(x, w), 0


@fg.register(
    reference=torch.logaddexp,
    jax_reference=jnp.logaddexp,
    dtypes=[torch.float16, torch.bfloat16],
    precision="fused",
    planted={
        "property": "second_order",
        "bug_class": "an upcast per use under a fused-precision promise",
        "needs": "low_precision",
        # a double rounding shows only for some values, and a smaller shape draws other values
        # (and other second-order directions), so the shrunk case stays a row of about 15
        "max_elements": 32,
    },
)
class LogAddExpUpcastPerUse(Function):
    """log(e^x + e^y), fused: float32 math rounded once in forward and backward, so first order
    keeps the promise. But backward upcasts x and y at each use, and in a double backward every
    one of those casts rounds its own share of the gradient to half before they are summed."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return torch.logaddexp(x.float(), y.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        g = grad.float()
        dx = g * torch.sigmoid(x.float() - y.float())
        dy = g * torch.sigmoid(y.float() - x.float())
        return dx.to(x.dtype), dy.to(y.dtype)
