"""A forward autograd cannot differentiate (it computes in NumPy): judged by finite differences."""

import numpy as np
import torch


class NumpySin(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _numpy_sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.cos(x)


class NumpySinWrongDerivative(torch.autograd.Function):
    """Planted: d sin = sin, not cos."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _numpy_sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sin(x)


def _numpy_sin(x):
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, as torch.sin's
        return torch.from_numpy(np.asarray(np.sin(x.detach().cpu().numpy()))).to(x.dtype)
