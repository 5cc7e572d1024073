"""Custom operators (``torch.library.custom_op`` with ``register_autograd``): a scan finds those
with a hand-written backward and fuzzes them against autograd of their own Python function, as
it does a Function's forward. An operator without an autograd formula has no backward to check."""

import torch

import fuzzgrad as fg

LIB = "fuzzgrad_scan_pkg"


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


@torch.library.custom_op(f"{LIB}::softplus", mutates_args=())
def softplus(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(x)


def _softplus_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return grad * torch.sigmoid(x)


softplus.register_fake(lambda x: torch.empty_like(x))
softplus.register_autograd(_softplus_backward, setup_context=_save_inputs)


@torch.library.custom_op(f"{LIB}::mul_add", mutates_args=())
def mul_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x * y + x


def _mul_add_backward(ctx, grad):
    """Planted: d(xy + x)/dx is y + 1; the backward forgets the 1."""
    x, y = ctx.saved_tensors
    gx, gy = grad * y, grad * x
    return gx.sum_to_size(x.shape), gy.sum_to_size(y.shape)


mul_add.register_fake(
    lambda x, y: torch.empty(torch.broadcast_shapes(x.shape, y.shape), dtype=x.dtype)
)
mul_add.register_autograd(_mul_add_backward, setup_context=_save_inputs)


@torch.library.custom_op(f"{LIB}::cube", mutates_args=())
def cube(x: torch.Tensor) -> torch.Tensor:
    return x * x * x


def _cube_backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return 3 * x * x * grad


cube.register_fake(lambda x: torch.empty_like(x))
cube.register_autograd(_cube_backward, setup_context=_save_inputs)
# registered with no reference: its own Python function is the reference, as a Function's forward
fg.register(cube)


@torch.library.custom_op(f"{LIB}::no_backward", mutates_args=())
def no_backward(x: torch.Tensor) -> torch.Tensor:
    """No autograd formula: nothing hand-written to check, so not a custom Function."""
    return x.clone()
