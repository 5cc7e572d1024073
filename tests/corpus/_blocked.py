"""A blocked (online) logsumexp, as fused kernels compute it: one block of 64 elements per step,
the running maximum and sum rescaled as each block arrives. Shared by the planted bug
(`buggy_sizes`) and its correct twin (`correct_sizes`), which register subclasses of
`BlockedLogSumExpBase` with `REFERENCES`."""

import jax
import torch
from torch.autograd import Function

import fuzzgrad as fg

#: The block size: a row of up to 64 elements is one block, and no rescaling happens at all.
BLOCK = 64

#: The references and the input spec (which names no size: reaching rows past 64 is the shape
#: strategy's job).
REFERENCES = dict(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)


def blocked_logsumexp(x: torch.Tensor, *, rescale_block: bool = True) -> torch.Tensor:
    """logsumexp over the last dim, a block at a time (in float32 or wider). Without
    ``rescale_block`` each block's own sum is added at its own maximum, not at the running one:
    right whenever the row is a single block."""
    xf = x if x.dtype == torch.float64 else x.float()
    m = torch.full(xf.shape[:-1] + (1,), -torch.inf, dtype=xf.dtype)
    s = torch.zeros_like(m)
    for start in range(0, xf.shape[-1], BLOCK):
        block = xf[..., start : start + BLOCK]
        mb = block.amax(-1, keepdim=True)
        sb = torch.exp(block - mb).sum(-1, keepdim=True)
        m_new = torch.maximum(m, mb)
        carried = s * torch.exp(m - m_new)
        s = carried + (sb * torch.exp(mb - m_new) if rescale_block else sb)
        m = m_new
    return (m + torch.log(s)).squeeze(-1).to(x.dtype)


class BlockedLogSumExpBase(Function):
    """logsumexp over the last dim by `blocked_logsumexp`; the backward is softmax, computed
    differentiably (for double backward)."""

    rescale_block = True

    @classmethod
    def forward(cls, ctx, x):
        ctx.save_for_backward(x)
        return blocked_logsumexp(x, rescale_block=cls.rescale_block)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        xf = x if x.dtype == torch.float64 else x.float()
        return (grad.unsqueeze(-1) * torch.softmax(xf, -1)).to(x.dtype)
