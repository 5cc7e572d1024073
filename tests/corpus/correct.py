"""Correct Functions, part 1: kinks, ties, estimators, broadcasting, reductions, float32 kernels.

Every Function here is right, and the harness must report none of them. Many sit where
references disagree or gradients are only subgradients (abs and relu at 0, clamp at its bounds,
max with ties, the norm of a zero vector): there the Function follows torch's convention, and
JAX's may differ. Part 2 (`correct_ctx`) covers the autograd.Function features: numpy, several
outputs, mark_dirty, mark_non_differentiable, setup_context, once_differentiable, jvp and vmap.
"""

import jax
import jax.numpy as jnp
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg

# --- kinks: subgradient conventions -------------------------------------------------------------


@fg.register(reference=lambda x: torch.abs(x), jax_reference=lambda x: jnp.abs(x))
class AbsSign(Function):
    """|x|, with gradient sign(x): 0 at the kink, as torch has it (JAX says 1)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.sign()


@fg.register(
    reference=lambda x: x.clamp(-1.0, 1.0),
    jax_reference=lambda x: jnp.clip(x, -1.0, 1.0),
)
class ClampUnit(Function):
    """clamp to [-1, 1]; at a bound the gradient passes, as torch has it (JAX says 1/2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(-1.0, 1.0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= -1) & (x <= 1))


@fg.register(reference=lambda x: torch.relu(x), jax_reference=lambda x: jax.nn.relu(x))
class Relu(Function):
    """relu, with gradient 0 at 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


# --- surrogate gradients ------------------------------------------------------------------------


@fg.register(
    reference=lambda x: x + (torch.round(x) - x).detach(),
    jax_reference=lambda x: x + jax.lax.stop_gradient(jnp.round(x) - x),
)
class RoundStraightThrough(Function):
    """Round to nearest (half to even), with the straight-through identity gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


@fg.register(
    reference=lambda x: 2 * x.detach() - x,
    jax_reference=lambda x: 2 * jax.lax.stop_gradient(x) - x,
)
class GradientReversal(Function):
    """The domain-adaptation gradient reversal layer: identity forward, negated gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


# --- broadcasting and masking -------------------------------------------------------------------


@fg.register(
    reference=lambda x, a: torch.where(x > 0, x, a * x),
    jax_reference=lambda x, a: jnp.where(x > 0, x, a * x),
    inputs=[fg.tensor("*batch n"), fg.tensor("#n")],
)
class PReLU(Function):
    """PReLU with a per-channel slope that may be shared (broadcast) across channels."""

    @staticmethod
    def forward(ctx, x, a):
        ctx.save_for_backward(x, a)
        return torch.where(x > 0, x, a * x)

    @staticmethod
    def backward(ctx, grad):
        x, a = ctx.saved_tensors
        grad_x = grad * torch.where(x > 0, 1.0, a)
        grad_a = None
        if ctx.needs_input_grad[1]:
            grad_a = torch.where(x > 0, 0.0, grad * x).sum_to_size(a.shape)
        return grad_x, grad_a


@fg.register(
    reference=lambda x, y: torch.where(x > y, x, y),
    jax_reference=lambda x, y: jnp.where(x > y, x, y),
)
class WhereGreater(Function):
    """Elementwise selection by a mask; ties go to ``y``, as ``where`` sends them."""

    @staticmethod
    def forward(ctx, x, y):
        mask = x > y
        ctx.save_for_backward(mask)
        return torch.where(mask, x, y)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        zero = grad.new_zeros(())
        return torch.where(mask, grad, zero), torch.where(mask, zero, grad)


# --- reductions ---------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: x.max(-1).values,
    jax_reference=lambda x: jnp.max(x, -1),
    inputs=[fg.tensor("*batch n")],
)
class MaxLastDim(Function):
    """Max over the last dim; among ties the gradient goes to the index torch.max picks (JAX
    splits it evenly)."""

    @staticmethod
    def forward(ctx, x):
        values, index = x.max(-1)
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return values

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        return grad.new_zeros(ctx.shape).scatter(-1, index.unsqueeze(-1), grad.unsqueeze(-1))


@fg.register(
    reference=lambda x: torch.linalg.vector_norm(x, dim=-1),
    jax_reference=lambda x: jnp.linalg.norm(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)
class VectorNorm(Function):
    """Euclidean norm of each row; at a zero row the gradient is 0, as torch has it (JAX: NaN)."""

    @staticmethod
    def forward(ctx, x):
        norm = torch.linalg.vector_norm(x, dim=-1)
        ctx.save_for_backward(x, norm)
        return norm

    @staticmethod
    def backward(ctx, grad):
        x, norm = ctx.saved_tensors
        zero = (norm == 0).unsqueeze(-1)
        # x / norm before the product with grad: grad / norm alone can overflow in float16.
        # The second where keeps the double backward at a zero row finite (0), not 0 * inf.
        unit = torch.where(zero, 0.0, x / torch.where(zero, 1.0, norm.unsqueeze(-1)))
        return grad.unsqueeze(-1) * unit


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)
class Softmax(Function):
    """Softmax over the last dim, backward from the saved output. Like torch's own kernel it
    works in float32 for half-precision input: g - sum(g * y) cancels, and in float16 the
    rounding of the sum alone is an ulp of |g|, far more than the result may be off."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x, -1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        acc = torch.promote_types(y.dtype, torch.float32)
        y_acc, g_acc = y.to(acc), grad.to(acc)
        return (y_acc * (g_acc - (g_acc * y_acc).sum(-1, keepdim=True))).to(y.dtype)


@fg.register(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)
class LogSumExp(Function):
    """logsumexp over the last dim; the gradient is the softmax, from the saved output."""

    @staticmethod
    def forward(ctx, x):
        out = torch.logsumexp(x, -1)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        return grad.unsqueeze(-1) * torch.exp(x - out.unsqueeze(-1))


# --- computed in float32 ------------------------------------------------------------------------


@fg.register(
    reference=lambda x: torch.sigmoid(x),
    jax_reference=lambda x: jax.nn.sigmoid(x),
    tolerances={torch.float64: (1e-5, 1e-6)},
)
class SigmoidFloat32Kernel(Function):
    """sigmoid through a float32 kernel whatever the input dtype, so only float32-accurate for
    float64 input (hence the float64 tolerance). Like most such kernels its backward is another
    kernel, hence ``once_differentiable``; it uses sigmoid(x) * sigmoid(-x), which stays accurate
    in float32 where y * (1 - y) cancels. Float32's range is no limit: a float64 input beyond it
    rounds to +-inf, where sigmoid is already 0 or 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x.float()).to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = x.float()
        return (grad.float() * torch.sigmoid(xf) * torch.sigmoid(-xf)).to(x.dtype)


@fg.register(
    reference=torch.nn.functional.silu,
    jax_reference=jax.nn.silu,
    dtypes=[torch.float16, torch.bfloat16, torch.float32],
    precision="fused",
)
class SiLUFused(Function):
    """SiLU that keeps its fused-precision promise: forward and backward upcast half inputs to
    float32, compute there, and round once."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.silu(x.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = x.float()
        s = torch.sigmoid(xf)
        return (grad.float() * s * (1 + xf * (1 - s))).to(x.dtype)


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    dtypes=[torch.float16, torch.bfloat16, torch.float32],
    inputs=[fg.tensor("*batch n")],
    precision="fused",
)
class SoftmaxFusedKeepsOutput(Function):
    """Softmax with fused precision that keeps its (half-precision, rounded once) output for
    the backward, as softmax kernels do: the backward's float32 math reads the rounded output,
    and ``y * (g - sum(y * g))`` amplifies that rounding where ``g`` is large and cancels. Not
    a forgotten upcast: the float32 run it is held to keeps its output rounded too."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x.float(), -1).to(x.dtype)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        yf, gf = y.float(), grad.float()
        return (yf * (gf - (yf * gf).sum(-1, keepdim=True))).to(y.dtype)


@fg.register(
    reference=lambda x: torch.exp(-1 / (x * x)),
    jax_reference=lambda x: jnp.exp(-1 / (x * x)),
    dtypes=[torch.float64, torch.float32],
)
class SmoothBump(Function):
    """exp(-1/x^2), with its derivative set to 0 where |x| < 0.05 (the function and all its
    derivatives underflow there): right where both references give NaN."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(-1 / (x * x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        small = x.abs() < 0.05
        safe = torch.where(small, torch.ones_like(x), x)
        return grad * torch.where(small, 0.0, torch.exp(-1 / (safe * safe)) * 2 / safe**3)
