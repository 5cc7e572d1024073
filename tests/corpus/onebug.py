"""One bug that shows in several shrinks, each of which must fold into one finding
(tests/test_findings.py): what a user wrote once must be reported once."""

from __future__ import annotations

import jax
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg


@fg.register(
    reference=lambda x: torch.logsumexp(x, -1),
    jax_reference=lambda x: jax.nn.logsumexp(x, -1),
    inputs=[fg.tensor("*batch n>=1")],
    planted={"property": "vjp", "bug_class": "overflow in every dtype", "needs": "values"},
)
class LogSumExpNaiveSoftmax(Function):
    """A stable forward, and a backward that takes softmax as exp(x) / sum(exp(x)): NaN once
    exp overflows, at x > 709 in float64, 88 in float32, 11 in float16. A float32 shrink needs
    float32 only because its range is the smaller: one finding, not one per dtype."""

    @staticmethod
    def forward(ctx, x):
        m = x.amax(-1, keepdim=True)
        ctx.save_for_backward(x)
        return (x - m).exp().sum(-1).log() + m.squeeze(-1)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        e = x.exp()
        return g.unsqueeze(-1) * e / e.sum(-1, keepdim=True)


@fg.register(
    reference=lambda x: x * x,
    jax_reference=lambda x: x * x,
    planted={"property": "vjp", "bug_class": "wrong backward, differentiable", "needs": "none"},
)
class SquareWrongFactor(Function):
    """x**2 whose backward says 3x: its double backward (autograd of ``3 * g * x``) is right
    about that wrong backward, so second_order fails too, and that is the same bug: one finding
    listing vjp and second_order."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * g * x


@fg.register(
    reference=lambda x, y: x * y,
    jax_reference=lambda x, y: x * y,
    planted={"property": "vjp", "bug_class": "wrong backward, differentiable", "needs": "none"},
)
class MulWrongFirstGrad(Function):
    """x*y whose backward doubles x's gradient whether or not y requires grad: the subset run
    with only x requiring grad gets the same wrong gradient, so requires_grad_subsets fails too,
    and that is vjp's bug, not a subset's: one finding listing both."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return 2 * g * y, g * x
