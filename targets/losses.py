"""Losses written as fused custom Functions: forward returns the mean loss, backward the
closed-form gradient (softmax minus one-hot, sigmoid minus target, clipped residual).

Every loss is a mean, so an empty batch gives NaN, exactly as torch's own losses do.
"""

import jax
import jax.numpy as jnp
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import sigmoid, upcast
from fuzzgrad.targets._draw import float_dtypes, float_tensors, index_tensors, sizes


@st.composite
def _logits_and_targets(draw):
    batch, classes = draw(sizes), draw(st.integers(1, 5))
    logits = draw(float_tensors((batch, classes), draw(float_dtypes)))
    return logits, draw(index_tensors((batch,), classes))


def _nll_jax(logits, target):
    picked = jnp.take_along_axis(logits, target[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


@fg.register(
    reference=F.cross_entropy,
    jax_reference=_nll_jax,
    inputs=_logits_and_targets(),
    precision="fused",
)
class LogSoftmaxNLL(Function):
    """Cross-entropy = log-softmax + NLL over int64 class indices, mean over the batch."""

    @staticmethod
    def forward(ctx, logits, target):
        ctx.save_for_backward(logits, target)
        x = upcast(logits)
        picked = x.gather(1, target[:, None])[:, 0]
        return (torch.logsumexp(x, 1) - picked).mean().to(logits.dtype)

    @staticmethod
    def backward(ctx, grad):
        logits, target = ctx.saved_tensors
        x = upcast(logits)
        onehot = F.one_hot(target, x.shape[1]).to(x.dtype)
        # an empty batch divides by 0 here, as F.cross_entropy's backward does: both then give
        # NaN in double backward (smooth L1 and BCE below follow their torch versions: no NaN)
        dx = (torch.softmax(x, 1) - onehot) * (upcast(grad) / x.shape[0])
        return dx.to(logits.dtype), None


@fg.register(
    reference=F.binary_cross_entropy_with_logits,
    jax_reference=lambda x, y: jnp.mean(jnp.logaddexp(0.0, x) - x * y),
    inputs=[fg.tensor(), fg.tensor(low=0, high=1)],
    precision="fused",
)
class BCEWithLogits(Function):
    """Binary cross-entropy on logits, stable form max(x, 0) - x y + log1p(exp(-|x|)), mean.

    Soft targets ``y`` in [0, 1] are differentiable too (d/dy = -x), as in torch.
    """

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        xf, yf = upcast(x), upcast(y)
        loss = xf.clamp_min(0) - xf * yf + torch.log1p(torch.exp(-xf.abs()))
        return loss.mean().to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        xf, yf = upcast(x), upcast(y)
        g, inv_n = upcast(grad), 1 / max(x.numel(), 1)
        # scale by 1/n before the cotangent, so that a huge logit times g cannot overflow
        dx = (sigmoid(xf) - yf) * inv_n * g if ctx.needs_input_grad[0] else None
        dy = -xf * inv_n * g if ctx.needs_input_grad[1] else None
        return (
            None if dx is None else dx.to(x.dtype),
            None if dy is None else dy.to(y.dtype),
        )


def _smooth_l1_jax(x, y):
    d = x - y
    ad = jnp.abs(d)
    return jnp.mean(jnp.where(ad < 1, 0.5 * d * d, ad - 0.5))


@fg.register(reference=F.smooth_l1_loss, jax_reference=_smooth_l1_jax, precision="fused")
class SmoothL1(Function):
    """Smooth L1 (Huber, beta = 1) between prediction and target, mean; gradient clip(d, -1, 1)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        d = upcast(x) - upcast(y)
        ad = d.abs()
        return torch.where(ad < 1, 0.5 * d * d, ad - 0.5).mean().to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        d = upcast(x) - upcast(y)
        # where, not clamp: at |d| == 1 the second derivative is 0, as for torch and JAX
        dd = torch.where(d.abs() < 1, d, d.sign()) * (upcast(grad) / max(x.numel(), 1))
        return dd.to(x.dtype), (-dd).to(y.dtype)
