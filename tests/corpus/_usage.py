"""exp written in place by numpy, as torch's own ``NumpyExp_``
(``torch/testing/_internal/autograd_function_db.py``): ``mark_dirty`` in ``setup_context``, a
vmap rule and a jvp, with the backward given. Shared by `correct_usage` and `buggy_usage`."""

from collections.abc import Callable

import numpy as np
from torch.autograd import Function


def numpy_exp_(backward: Callable) -> type[Function]:
    """The Function, with ``backward(ctx, g)`` (its saved tensor: the output, which is the
    overwritten input)."""

    class NumpyExp_(Function):
        @staticmethod
        def forward(x):
            x_np = x.detach().numpy()
            np.exp(x_np, out=x_np)
            return x

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.mark_dirty(inputs[0])
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def vmap(info, in_dims, x):
            NumpyExp_.apply(x)
            return x, in_dims[0]

        @staticmethod
        def jvp(ctx, x_t):
            (y,) = ctx.saved_tensors
            return x_t.mul_(y)

    NumpyExp_.backward = staticmethod(backward)  # type: ignore[method-assign]
    return NumpyExp_


def exp_backward(ctx, g):
    (y,) = ctx.saved_tensors
    return g * y
