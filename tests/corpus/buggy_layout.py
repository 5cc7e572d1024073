"""Planted bugs, part 2: bugs that hide until one factor of the input is just so.

Each Function is right on the simplest input (float64, contiguous, small, ordinary values) and
wrong, or crashing, only when one factor is set: a non-contiguous or expanded input, a
non-contiguous or expanded grad_output, a broadcast argument, an edge value, a zero-size or 0-d
shape, or a low-precision dtype. ``planted["needs"]`` names that factor; the input specs never
force it, so finding it is the harness's job. See `buggy` for the meaning of ``planted``.
"""

import math

import jax
import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg


def _memory_as_dense(t: torch.Tensor) -> torch.Tensor:
    """What a C++/CUDA kernel reads when it walks ``t.data_ptr()`` as a dense row-major buffer."""
    dense_strides = torch.empty(t.shape, device="meta").stride()
    return t.as_strided(t.shape, dense_strides, t.storage_offset())


# --- input layout -------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: F.softplus(x),
    jax_reference=lambda x: jax.nn.softplus(x),
    planted={"property": "vjp", "bug_class": "kernel assumes contiguous input", "needs": "layout"},
)
class SoftplusKernelStridedInput(Function):
    """softplus through a dense-only kernel: forward passes ``x.contiguous()``, but saves the
    caller's ``x``, and backward hands that to the kernel as is."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.softplus(x.contiguous())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(_memory_as_dense(x))


@fg.register(
    reference=lambda x: torch.cumsum(x.reshape(-1), 0).reshape(x.shape),
    jax_reference=lambda x: jnp.cumsum(x.reshape(-1)).reshape(x.shape),
    planted={"property": "vjp", "bug_class": "writes into a reshape copy", "needs": "layout"},
)
class FlatCumsumLostWrite(Function):
    """Running sum over all elements; backward fills a ``zeros_like(x)`` through ``reshape(-1)``,
    which is a copy, not a view, when ``x`` is permuted, so the gradient stays zero."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.cumsum(x.reshape(-1), 0).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        flat = grad.reshape(-1).flip(0).cumsum(0).flip(0)
        grad_x = torch.zeros_like(x)  # same layout as the input
        grad_x.reshape(-1).copy_(flat)
        return grad_x


@fg.register(
    reference=lambda x: x * x,
    jax_reference=lambda x: x * x,
    planted={"property": "vjp", "bug_class": "grad buffer aliases like input", "needs": "stride0"},
)
class SquareStridedGradBuffer(Function):
    """x * x; backward allocates the gradient with the input's strides, which for an expanded
    input makes several elements share one memory location."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        grad_x = torch.empty_strided(x.size(), x.stride(), dtype=x.dtype, device=x.device)
        return grad_x.copy_(2 * grad * x)


# --- grad_output layout -------------------------------------------------------------------------


@fg.register(
    reference=lambda x: torch.exp(x),
    jax_reference=lambda x: jnp.exp(x),
    planted={
        "property": "vjp",
        "bug_class": "kernel assumes contiguous grad_output",
        "needs": "cotangent_layout",
    },
)
class ExpKernelStridedGrad(Function):
    """exp whose backward kernel reads grad_output's memory as dense (no ``.contiguous()``)."""

    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return _memory_as_dense(grad) * y


@fg.register(
    reference=lambda x: x.sum(-1),
    jax_reference=lambda x: jnp.sum(x, -1),
    inputs=[fg.tensor("*batch n")],
    planted={
        "property": "vjp",
        "bug_class": "view on grad_output",
        "needs": "cotangent_layout",
    },
)
class RowSumViewGrad(Function):
    """Sum over the last dim; backward calls ``grad.view(-1, 1)``, which fails on a strided grad."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.sum(-1)

    @staticmethod
    def backward(ctx, grad):
        return grad.view(-1, 1).expand(-1, ctx.shape[-1]).reshape(ctx.shape)


# --- broadcast ----------------------------------------------------------------------------------

_EPS = 1e-6


@fg.register(
    reference=lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _EPS) * w,
    jax_reference=lambda x, w: x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + _EPS) * w,
    inputs=[fg.tensor("*batch n"), fg.tensor("#n")],
    planted={"property": "vjp", "bug_class": "hidden size read from weight", "needs": "broadcast"},
)
class RMSNormWeightWidth(Function):
    """RMSNorm whose backward takes the hidden size from the weight, which may be broadcast."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _EPS) * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        n = w.shape[-1]
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + _EPS)
        gw = grad * w
        grad_x = r * gw - x * r**3 * (gw * x).sum(-1, keepdim=True) / n
        return grad_x, (grad * x * r).sum_to_size(w.shape)


# --- edge values --------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: F.elu(x),
    jax_reference=lambda x: jax.nn.elu(x),
    planted={"property": "vjp", "bug_class": "wrong branch for x < 0", "needs": "values"},
)
class EluNegativeBranch(Function):
    """ELU; for x < 0 backward uses the output expm1(x) where the derivative is output + 1 (at
    x == 0 it takes the x >= 0 branch, so the simplest value, 0, does not show the bug)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.where(x > 0, x, torch.expm1(x))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * torch.where(x >= 0, 1.0, y)


@fg.register(
    reference=lambda x: torch.sinc(x),
    jax_reference=lambda x: jnp.sinc(x),
    planted={"property": "vjp", "bug_class": "0/0 at x == 0", "needs": "values"},
)
class SincUnmaskedZero(Function):
    """Normalised sinc with torch's own derivative formula, minus its mask at x == 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sinc(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        px = math.pi * x
        return grad * (px * torch.cos(px) - torch.sin(px)) / (math.pi * x * x)


@fg.register(
    reference=lambda x: F.logsigmoid(x),
    jax_reference=lambda x: jax.nn.log_sigmoid(x),
    planted={"property": "vjp", "bug_class": "exp overflow for large |x|", "needs": "values"},
)
class LogSigmoidNaiveGrad(Function):
    """Stable log-sigmoid forward; backward writes sigmoid(-x) as exp(-x) / (1 + exp(-x)),
    which is inf / inf once exp(-x) overflows."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.logsigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        e = torch.exp(-x)
        return grad * e / (1 + e)


# --- zero-size and 0-d shapes -------------------------------------------------------------------


@fg.register(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    planted={"property": "vjp", "bug_class": "amax of an empty row", "needs": "zero_size"},
)
class LogSumExpEmptyRow(Function):
    """logsumexp whose backward recomputes softmax with ``amax``, which raises on empty rows."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.logsumexp(x, -1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        e = torch.exp(x - x.amax(-1, keepdim=True))
        return grad.unsqueeze(-1) * e / e.sum(-1, keepdim=True)


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    planted={"property": "vjp", "bug_class": "stack of no rows", "needs": "zero_size"},
)
class SoftmaxRowJacobians(Function):
    """Softmax whose backward builds each row's Jacobian and stacks them; no rows, no stack."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x, -1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        n = y.shape[-1]
        jac = torch.stack([torch.diag(s) - torch.outer(s, s) for s in y.reshape(-1, n)])
        return torch.bmm(jac, grad.reshape(-1, n, 1)).reshape(y.shape)


@fg.register(
    reference=lambda x: F.gelu(x, approximate="tanh"),
    jax_reference=lambda x: jax.nn.gelu(x, approximate=True),
    planted={"property": "vjp", "bug_class": "kernel wrapper needs a last dim", "needs": "0d"},
)
class GeluTanhRowKernel(Function):
    """tanh-GELU through a (rows, cols) kernel that computes in at least float32; the wrapper reads
    ``x.shape[-1]``, which a 0-d input does not have."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.gelu(x, approximate="tanh")

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        rows, cols = math.prod(x.shape[:-1]), x.shape[-1]
        acc = torch.promote_types(x.dtype, torch.float32)
        x2, g2 = x.reshape(rows, cols).to(acc), grad.reshape(rows, cols).to(acc)
        c = math.sqrt(2 / math.pi)
        t = torch.tanh(c * (x2 + 0.044715 * x2**3))
        d = 0.5 * (1 + t) + 0.5 * x2 * (1 - t * t) * c * (1 + 3 * 0.044715 * x2 * x2)
        return (g2 * d).reshape(x.shape).to(x.dtype)


# --- low precision ------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: x.abs() + torch.log1p(torch.exp(-2 * x.abs())) - math.log(2),
    jax_reference=lambda x: jnp.abs(x) + jnp.log1p(jnp.exp(-2 * jnp.abs(x))) - math.log(2),
    planted={
        "property": "vjp",
        "bug_class": "overflow guard tuned for float32",
        "needs": "dtype:float16",
    },
)
class LogCoshNaiveTanh(Function):
    """Stable log(cosh(x)); backward spells tanh as (e^2x - 1) / (e^2x + 1), guarding exp against
    overflow by clamping x to [-40, 40]: enough for float32 and float64, but exp(2x) is already
    inf in float16 for x > 5.55."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs() + torch.log1p(torch.exp(-2 * x.abs())) - math.log(2)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        e = torch.exp(2 * x.clamp(-40, 40))
        return grad * (e - 1) / (e + 1)


@fg.register(
    reference=lambda x: torch.atan(x),
    jax_reference=lambda x: jnp.arctan(x),
    planted={
        "property": "vjp",
        "bug_class": "finite-difference backward",
        "needs": "low_precision",
    },
)
class AtanFiniteDifference(Function):
    """atan treated as a black box, differentiated by central differences with h = 1e-6: fine in
    float64, meaningless once x + h rounds back to x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.atan(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        h = 1e-6
        return grad * (torch.atan(x + h) - torch.atan(x - h)) / (2 * h)


def _silu_grad(x):
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


@fg.register(
    reference=torch.nn.functional.silu,
    jax_reference=jax.nn.silu,
    dtypes=[torch.float16, torch.bfloat16],
    precision="fused",
    planted={
        "property": "vjp",
        "bug_class": "upcast forgotten under a fused-precision promise",
        "needs": "low_precision",
    },
)
class SiLUFusedForgetsUpcast(Function):
    """SiLU that promises fused precision (float32 math, one rounding) and keeps it in forward,
    but its backward computes sigmoid and the product in the input's half precision: within the
    error the reference itself makes in half, but several ulps off the rounded float32 result."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.silu(x.float()).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _silu_grad(x)


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    dtypes=[torch.float16, torch.bfloat16],
    inputs=[fg.tensor("*batch n")],
    precision="fused",
    planted={
        "property": "vjp",
        "bug_class": "upcast forgotten under a fused-precision promise",
        "needs": "low_precision",
    },
)
class SoftmaxFusedBackwardInHalf(Function):
    """Softmax with fused precision that keeps its half output for the backward (allowed: it
    is rounded once) but computes the backward's products and sum in half precision."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x.float(), -1).to(x.dtype)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (y * grad).sum(-1, keepdim=True))


def _bump(x):
    """exp(-1/x^2): smooth everywhere, every derivative 0 at 0, where autograd of this very
    formula gives 0 * inf = NaN (in torch and in JAX)."""
    return torch.exp(-1 / (x * x))


@fg.register(
    reference=_bump,
    jax_reference=lambda x: jnp.exp(-1 / (x * x)),
    dtypes=[torch.float64, torch.float32],
    planted={
        "property": "vjp",
        "bug_class": "NaN gradient where the references are NaN too",
        "needs": "values",
    },
)
class SmoothBumpNaNGrad(Function):
    """The bump, with the textbook derivative exp(-1/x^2) * 2/x^3: NaN at 0 (and where x*x
    underflows) although the function is flat there. Both references are NaN too, so only
    central finite differences of the forward see the true 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _bump(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _bump(x) * 2 / x**3
