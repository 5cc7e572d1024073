"""Correct Functions, part 2: one for each autograd.Function feature the harness must support.

A numpy-backed Function, several outputs, an in-place Function (``mark_dirty``), an integer
output (``mark_non_differentiable``), the ``setup_context`` style, a ``once_differentiable``
backward, a hand-written ``jvp``, and ``generate_vmap_rule``. All are right; the harness must
report none of them. See `correct` for part 1.
"""

import math

import jax.numpy as jnp
import jax.scipy.special
import numpy as np
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _torch(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    # np.asarray: numpy ufuncs turn 0-d arrays into scalars
    return torch.as_tensor(np.asarray(a), device=like.device)


@fg.register(
    reference=lambda x: torch.tanh(x),
    jax_reference=lambda x: jnp.tanh(x),
    dtypes=[torch.float64, torch.float32, torch.float16],
)
class NumpyTanh(Function):
    """tanh computed by numpy, forward and backward (so the backward is once-differentiable)."""

    @staticmethod
    def forward(ctx, x):
        y = _torch(np.tanh(_numpy(x)), x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        y_np = _numpy(y)
        return _torch(_numpy(grad) * (1 - y_np * y_np), grad)


@fg.register(
    reference=lambda x: (torch.sin(x), torch.cos(x)),
    jax_reference=lambda x: (jnp.sin(x), jnp.cos(x)),
)
class SinCos(Function):
    """Two outputs, sin and cos, from one call."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x), torch.cos(x)

    @staticmethod
    def backward(ctx, grad_sin, grad_cos):
        (x,) = ctx.saved_tensors
        return grad_sin * torch.cos(x) - grad_cos * torch.sin(x)


@fg.register(reference=lambda x: torch.tanh(x), jax_reference=lambda x: jnp.tanh(x))
class InplaceTanh(Function):
    """tanh_ in place: modifies its input, marks it dirty and returns it."""

    @staticmethod
    def forward(ctx, x):
        x.tanh_()
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


@fg.register(
    reference=lambda x: tuple(torch.sort(x, dim=-1, stable=True)),
    jax_reference=lambda x: (jnp.sort(x, -1), jnp.argsort(x, -1)),
    inputs=[fg.tensor("*batch n")],
)
class SortStable(Function):
    """Stable sort over the last dim, returning the values and the (non-differentiable) indices."""

    @staticmethod
    def forward(ctx, x):
        values, index = torch.sort(x, dim=-1, stable=True)
        ctx.mark_non_differentiable(index)
        ctx.save_for_backward(index)
        return values, index

    @staticmethod
    def backward(ctx, grad_values, grad_index):
        (index,) = ctx.saved_tensors
        return torch.zeros_like(grad_values).scatter(-1, index, grad_values)


@fg.register(
    reference=lambda x, y: torch.logaddexp(x, y),
    jax_reference=lambda x, y: jnp.logaddexp(x, y),
)
class LogAddExp(Function):
    """log(exp(x) + exp(y)) in the ``setup_context`` style. The gradients are written as
    sigmoid(x - y), not exp(x - out): the rounding of ``out`` would cost accuracy in float16."""

    @staticmethod
    def forward(x, y):
        return torch.logaddexp(x, y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        grad_x = grad * torch.sigmoid(x - y) if ctx.needs_input_grad[0] else None
        grad_y = grad * torch.sigmoid(y - x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_y


@fg.register(
    reference=lambda x: torch.erf(x),
    jax_reference=lambda x: jax.scipy.special.erf(x),
)
class ErfOnceDifferentiable(Function):
    """erf with a backward marked ``once_differentiable``: no second order is claimed."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.erf(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * torch.exp(-x * x)


@fg.register(reference=lambda x: torch.sin(x), jax_reference=lambda x: jnp.sin(x))
class SinWithJvp(Function):
    """sin with both a backward and a forward-mode ``jvp``."""

    @staticmethod
    def forward(x):
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x_t * torch.cos(x)


@fg.register(reference=lambda x: x**3, jax_reference=lambda x: x**3)
class CubeGeneratedVmap(Function):
    """x ** 3 with ``generate_vmap_rule = True``, so ``torch.func.vmap`` works through it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (3 * x.pow(2))  # torch's order: near overflow, 3 * grad * x * x differs
