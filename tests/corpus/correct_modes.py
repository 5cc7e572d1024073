"""Correct twins of `buggy_modes`: a Function with an integer output marked non-differentiable,
one that skips saving tensors when nothing needs grad, and an in-place Function with a forward-mode
``jvp`` (which must work on its own copies of inputs and tangents)."""

import importlib

import jax
import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._amp import matmul_cast
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    matmul_cast = importlib.import_module("_amp").matmul_cast


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


@fg.register(reference=torch.sin, jax_reference=jnp.sin)
class SinVmapAndJvp(Function):
    """sin with generate_vmap_rule and a jvp: every torch.func transform works through it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.cos(x)

    @staticmethod
    def jvp(ctx, x_t):
        (x,) = ctx.saved_tensors
        return x_t * torch.cos(x)


@fg.register(reference=torch.tanh, jax_reference=jnp.tanh)
class TanhVmapRule(Function):
    """tanh with a hand-written vmap rule that keeps the input's batch dim."""

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)

    @staticmethod
    def vmap(info, in_dims, x):
        return TanhVmapRule.apply(x), in_dims[0]


@fg.register(
    reference=lambda x, w: x @ w,
    jax_reference=lambda x, w: x @ w,
    inputs=[fg.tensor("m k"), fg.tensor("k n")],
    dtypes=[torch.float32],
)
class MatmulCastForwardAndBackward(matmul_cast("cpu", custom_bwd=True)):
    """x @ w computed in float32 under autocast, forward (custom_fwd with cast_inputs) and
    backward (custom_bwd) alike."""


@fg.register(
    reference=lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    jax_reference=lambda x: 0.5 * x * (1 + jax.scipy.special.erf(x / 2**0.5)),
    properties=["forward", "vjp", "compile"],
    compile_backend="eager",
)
class GeluCompileSafe(Function):
    """GELU with a compile-only fallback that computes the same erf formula."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        if torch.compiler.is_compiling():
            return torch.nn.functional.gelu(x)
        return 0.5 * x * (1 + torch.erf(x / 2**0.5))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        cdf = 0.5 * (1 + torch.erf(x / 2**0.5))
        return g * (cdf + x * torch.exp(-0.5 * x * x) / (2 * torch.pi) ** 0.5)


@fg.register(
    reference=lambda x: (x.sin(), x.cos()),
    jax_reference=lambda x: (jnp.sin(x), jnp.cos(x)),
)
class SinCosUnusedOutputs(Function):
    """sin and cos with set_materialize_grads(False): an unused output's gradient arrives as None
    and adds nothing."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        grad = torch.zeros_like(x)
        if gs is not None:
            grad = grad + gs * x.cos()
        if gc is not None:
            grad = grad - gc * x.sin()
        return grad
