"""A fixed layout: the cross product of 3-vectors. No family of the trial draws a last dim of 3
often enough; a trace of real calls (`_trace_calls.py`) shows it."""

import torch


class Cross(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.linalg.cross(a, b, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return torch.linalg.cross(b, grad, dim=-1), torch.linalg.cross(grad, a, dim=-1)


class CrossFlipped(torch.autograd.Function):
    """Planted: the gradient of ``a`` has its cross product the wrong way round."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return torch.linalg.cross(a, b, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        return torch.linalg.cross(grad, b, dim=-1), torch.linalg.cross(grad, a, dim=-1)
