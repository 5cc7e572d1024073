"""Planted bugs, part 4: bugs that live only past 64 elements along a dim (tiles and blocks).

The specs name no size: reaching a row of more than 64 elements is the shape strategy's job. See
`buggy` for the meaning of ``planted``.
"""

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
    planted={
        "property": "forward",
        "bug_class": "blocked rescaling",
        "needs": "size>64",
        "max_elements": 65,
    },
)
class BlockedLogSumExpStaleScale(Function):
    """Online logsumexp in blocks of 64 that adds each block's sum at the block's own maximum
    instead of rescaling it to the running one: wrong once a row spans two blocks."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return blocked_logsumexp(x, rescale_block=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return softmax_grad(x, grad)
