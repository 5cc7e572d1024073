"""Correct Functions, part 3: kernels that work in blocks, right at every size (the twins of
`buggy_sizes`)."""

import importlib

import jax
import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._blocked import blocked_logsumexp, softmax_grad
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _blocked = importlib.import_module("_blocked")
    blocked_logsumexp, softmax_grad = _blocked.blocked_logsumexp, _blocked.softmax_grad


@fg.register(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
)
class BlockedLogSumExp(Function):
    """Online logsumexp in blocks of 64, each block's sum rescaled to the running maximum."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return blocked_logsumexp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return softmax_grad(x, grad)
