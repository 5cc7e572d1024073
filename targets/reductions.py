"""Reductions and scans along the last dim: logsumexp, softmax, masked mean, cumsum, cumprod.

Zero-size reduced dims behave as in torch: logsumexp of nothing is -inf, a masked mean with no
kept element is 0 (the count is clamped to 1), and every gradient of an empty input is empty.
"""

import jax
import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import softmax_jvp_t, upcast


@fg.register(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    precision="fused",
)
class LogSumExp(Function):
    """log(sum(exp(x))) over the last dim, shifted by the (finite) row max for stability.

    The gradient is softmax(x); it is recomputed from x rather than as exp(x - out), whose
    rounded half-precision ``out`` would cost many ulps for rows with large values.
    """

    @staticmethod
    def forward(ctx, x):
        xf = upcast(x)
        if x.shape[-1] == 0:
            out = xf.new_full(x.shape[:-1], -torch.inf)
        else:
            m = xf.amax(-1, keepdim=True)
            m = torch.where(m.isfinite(), m, 0)
            out = torch.log(torch.exp(xf - m).sum(-1)) + m[..., 0]
        ctx.save_for_backward(x)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (upcast(grad)[..., None] * torch.softmax(upcast(x), -1)).to(x.dtype)


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)
class Softmax(Function):
    """Softmax over the last dim; backward from the saved output: y * (g - sum(g * y)), two-pass."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(upcast(x), -1).to(x.dtype)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        yf, g = upcast(y), upcast(grad)
        return softmax_jvp_t(yf, g).to(y.dtype)


def _masked_mean_jax(x, mask):
    total = jnp.where(mask, x, 0).sum(-1)
    return total / jnp.maximum(mask.sum(-1), 1)


@fg.register(
    reference=lambda x, mask: torch.where(mask, x, 0).sum(-1) / mask.sum(-1).clamp_min(1),
    jax_reference=_masked_mean_jax,
    inputs=[fg.tensor("*batch n"), fg.tensor("*batch n", dtypes=[torch.bool], requires_grad=False)],
    precision="fused",
)
class MaskedMean(Function):
    """Mean over the last dim of the entries where a bool mask is set (padding-aware pooling).

    Masked-out entries are selected away with ``where``, not multiplied by 0, so an inf or NaN
    in padding cannot leak into the result.
    """

    @staticmethod
    def forward(ctx, x, mask):
        count = mask.sum(-1).clamp_min(1)
        ctx.save_for_backward(mask, count)
        ctx.dtype = x.dtype
        return (torch.where(mask, upcast(x), 0).sum(-1) / count).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        mask, count = ctx.saved_tensors
        g = upcast(grad)
        dx = torch.where(mask, (g / count)[..., None], 0)
        return dx.to(ctx.dtype), None


@fg.register(
    reference=lambda x: torch.cumsum(x, -1),
    jax_reference=lambda x: jnp.cumsum(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    precision="fused",
)
class CumSum(Function):
    """Inclusive cumulative sum over the last dim; backward is the reversed cumulative sum."""

    @staticmethod
    def forward(ctx, x):
        return torch.cumsum(upcast(x), -1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return torch.cumsum(upcast(grad).flip(-1), -1).flip(-1).to(grad.dtype)


def _products(m: torch.Tensor) -> torch.Tensor:
    """Running products along the last dim by repeated multiplication. Autograd of this never
    divides; torch.cumprod's backward divides by the input where it holds no zero, which loses
    most digits at a subnormal input (fuzzgrad found a 7% second-order error at x = 1.6e-322).

    A zero factor after a prefix that overflowed makes 0, not inf * 0 = NaN (fuzzgrad found NaN
    in the double backward where the exact value is 0): there the product is the zero times the
    prefix clamped to the largest finite value, whose derivative with respect to the zero is
    then that clamped value instead of inf."""
    if m.shape[-1] == 0:
        return m.clone()
    big = torch.finfo(m.dtype).max
    out = [m[..., :1]]
    for k in range(1, m.shape[-1]):
        factor, prefix = m[..., k : k + 1], out[-1]
        zero = factor == 0
        # both branches are differentiated (with a zero gradient for the one not taken), so
        # neither may hold inf * 0: the plain product sees 1 for a zero factor
        plain = prefix * torch.where(zero, 1, factor)
        out.append(torch.where(zero, factor * prefix.clamp(-big, big), plain))
    return torch.cat(out, -1)


@fg.register(
    reference=lambda x: torch.cumprod(x, -1),
    jax_reference=lambda x: jnp.cumprod(x, axis=-1),
    # its backward loops over a row, on n x n leave-one-out products: rows past 64 but bounded
    inputs=[fg.tensor("*batch n<=128")],
    precision="fused",
)
class CumProd(Function):
    """Cumulative product over the last dim, with a backward that is exact when inputs hold 0.

    The textbook ``reverse_cumsum(g * y) / x`` divides by zero. Instead
    dx_i = sum_{j>=i} g_j prod_{k<=j, k!=i} x_k, where row i of the leave-one-out products is the
    cumprod of x with x_i set to 1: no division, and every product formed is a term of the exact
    sum (O(n^2) memory and a loop over the row, hence rows of at most 128).
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.cumprod(upcast(x), -1).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf, g = upcast(x), upcast(grad)
        # the leave-one-out products in float64: products of float32 values overflow float32
        # long before the exact gradient (or its derivative) does, and inf there is NaN in the
        # double backward (fuzzgrad found it: NaN where the exact second order is -1.5e33)
        wide = torch.float64 if xf.dtype == torch.float32 else xf.dtype
        xf, g = xf.to(wide), g.to(wide)
        n = x.shape[-1]
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        upper = torch.ones(n, n, dtype=torch.bool, device=x.device).triu()  # j >= i
        leave_one_out = _products(torch.where(eye, 1, xf[..., None, :]))
        dx = (torch.where(upper, leave_one_out, 0) @ g[..., None])[..., 0]
        return dx.to(x.dtype)
