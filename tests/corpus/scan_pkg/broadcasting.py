"""Broadcasting: two tensors of broadcastable shapes; each gradient summed back to its input."""

import torch


class Mul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, scale=1.0):
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        return x * y * scale

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        g = grad * ctx.scale
        return (g * y).sum_to_size(x.shape), (g * x).sum_to_size(y.shape), None


class MulMeanReduced(torch.autograd.Function):
    """Planted: the broadcast dims of each gradient are averaged instead of summed (right
    whenever the shapes are equal)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return _mean_to(grad * y, x.shape), _mean_to(grad * x, y.shape)


def _mean_to(g, shape):
    n = max(1, g.numel()) // max(1, torch.Size(shape).numel()) if g.numel() else 1
    return g.sum_to_size(shape) / n
