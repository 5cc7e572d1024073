"""x @ w that promises float32 under one device type's autocast (``custom_fwd`` with
``cast_inputs``), with or without ``custom_bwd`` on its backward. Shared by the planted
autocast bug (`buggy_modes`), its correct twin (`correct_modes`) and the autocast tests, which
subclass what `matmul_cast` makes."""

import torch
from torch.autograd import Function


def matmul_cast(device_type: str, *, custom_bwd: bool) -> type[Function]:
    """The Function: without ``custom_bwd``, its backward, called inside the autocast region,
    runs its matmuls in the autocast dtype."""

    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w.mT, x.mT @ g

    cast = torch.amp.custom_fwd(device_type=device_type, cast_inputs=torch.float32)
    if custom_bwd:
        backward = torch.amp.custom_bwd(device_type=device_type)(backward)
    body = {"forward": staticmethod(cast(forward)), "backward": staticmethod(backward)}
    return type(f"MatmulCast_{device_type}", (Function,), body)
