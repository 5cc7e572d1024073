"""Element-wise activations written as custom Functions, the way fused-kernel code writes them.

Each saves only its input and recomputes what backward needs from it, so double backward
differentiates through the recomputation. Half-precision inputs are computed in float32 and
rounded once, as a fused kernel would.
"""

import math

import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import sigmoid, upcast

_GELU_C = math.sqrt(2 / math.pi)
_GELU_A = 0.044715
#: Past this |x|, sigmoid(2 * inner) in GELU is exactly 0 or 1 even in float64, so clamping x
#: changes nothing but keeps x**3 from overflowing (0 * inf would make the derivatives NaN).
_GELU_SATURATION = 25.0


def _jax_sigmoid(x):
    return 0.5 * (jnp.tanh(0.5 * x) + 1)


@fg.register(
    reference=lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    jax_reference=lambda x: jnp.logaddexp(x, 0.0),
    precision="fused",
)
class StableSoftplus(Function):
    """softplus(x) = log(1 + exp(x)) in the overflow-free form max(x, 0) + log1p(exp(-|x|))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xf = upcast(x)
        return (xf.clamp_min(0) + torch.log1p(torch.exp(-xf.abs()))).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (upcast(grad) * sigmoid(upcast(x))).to(x.dtype)


@fg.register(
    reference=F.silu,
    jax_reference=lambda x: x * _jax_sigmoid(x),
    precision="fused",
)
class SiLU(Function):
    """SiLU / swish, x * sigmoid(x), with the derivative s(x) * (1 + x * s(-x))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xf = upcast(x)
        return (xf * torch.sigmoid(xf)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = upcast(x)
        return (upcast(grad) * sigmoid(xf) * (1 + xf * sigmoid(-xf))).to(x.dtype)


def _gelu_tanh_jax(x):
    xc = jnp.clip(x, -_GELU_SATURATION, _GELU_SATURATION)
    return 0.5 * x * (1 + jnp.tanh(_GELU_C * (xc + _GELU_A * xc**3)))


def _gelu_tanh_parts(x):
    """sigmoid(2 * inner) and d(2 * inner)/dx, from x clamped where GELU saturates."""
    xc = x.clamp(-_GELU_SATURATION, _GELU_SATURATION)
    s = sigmoid(2 * _GELU_C * (xc + _GELU_A * xc**3))
    return s, 2 * _GELU_C * (1 + 3 * _GELU_A * xc * xc)


@fg.register(
    reference=lambda x: F.gelu(x, approximate="tanh"),
    jax_reference=_gelu_tanh_jax,
    precision="fused",
)
class GELUTanh(Function):
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Computed as the identical x * sigmoid(2 * inner): 1 + tanh(inner) cancels to 0 in float32 for
    x below about -5, taking the (small but nonzero) derivatives there with it.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xf = upcast(x)
        s, _ = _gelu_tanh_parts(xf)
        return (xf * s).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = upcast(x)
        s, dinner = _gelu_tanh_parts(xf)
        # d/dx [x s(v)] = s(v) + x v' s(v) s(-v), and s(-v) = 1 - s(v) without the cancellation
        s_neg, _ = _gelu_tanh_parts(-xf)
        return (upcast(grad) * (s + xf * dinner * s * s_neg)).to(x.dtype)
