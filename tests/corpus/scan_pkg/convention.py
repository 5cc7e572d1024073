"""A gradient in another parametrisation, by design (as Lie group libraries return a tangent
space's 3 numbers for a 4-number quaternion, padded with 0): its backward disagrees with
autograd of its forward on purpose, so a scan must not call it wrong; it lists it, not judged."""

import torch


class ConjugateTangent(torch.autograd.Function):
    """(v, w) -> (-v, w), whose backward answers for v only (the tangent of the unit sphere's
    chart), padding w's component with 0."""

    @staticmethod
    def forward(ctx, x):
        return torch.cat((-x[..., :-1], x[..., -1:]), -1)

    @staticmethod
    def backward(ctx, grad):
        zero = torch.zeros_like(grad[..., -1:])
        return torch.cat((-grad[..., :-1], zero), -1)
