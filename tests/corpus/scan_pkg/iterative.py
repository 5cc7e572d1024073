"""An iterative forward: y solving y + y**3 = x, by bisection. Autograd of the forward
differentiates the bisection's bounds, not the root, so it is not the derivative; the scan must
see that and judge by finite differences, or it would flag the correct backward."""

import torch

STEPS = 60


def _solve(x):
    lo, hi = -x.abs() - 1, x.abs() + 1  # the root lies between them; both depend on x
    for _ in range(STEPS):
        mid = (lo + hi) / 2
        below = mid + mid**3 < x
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


class CubicRoot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = _solve(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (1 + 3 * y**2)  # implicit function theorem


class CubicRootWrongSlope(torch.autograd.Function):
    """Planted: dy/dx = 1 / (1 + 3y^2), not 1 / (1 + y^2)."""

    @staticmethod
    def forward(ctx, x):
        y = _solve(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad / (1 + y**2)
