"""A Function whose contract cannot be inferred: its second argument is an index tensor."""

import torch


class Pick(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        out = grad.new_zeros(ctx.shape).index_add(0, index, grad)
        return out, None
