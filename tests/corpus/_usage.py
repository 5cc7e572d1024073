"""Functions shared by `correct_usage` and `buggy_usage` (and tests/test_usage.py), each made
with or without its mistake: exp written in place by numpy, as torch's own ``NumpyExp_``
(``torch/testing/_internal/autograd_function_db.py``), and x @ w under autocast as AMP code
writes it."""

from collections.abc import Callable

import numpy as np
import torch
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


def matmul_amp(*, custom_bwd: bool) -> type[Function]:
    """x @ w under the CPU's autocast as AMP code writes it: ``custom_fwd`` without
    ``cast_inputs`` (the forward's matmul runs in bfloat16), saving the float32 inputs. Its
    backward mixes the bfloat16 grad_output with them: with ``custom_bwd`` it runs under the
    forward's autocast wherever it is called; without, a backward called after the region (as
    AMP recipes call it) raises."""

    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w.mT, x.mT @ g

    if custom_bwd:
        backward = torch.amp.custom_bwd(device_type="cpu")(backward)
    body = {
        "forward": staticmethod(torch.amp.custom_fwd(device_type="cpu")(forward)),
        "backward": staticmethod(backward),
    }
    return type("MatmulAmp", (Function,), body)
