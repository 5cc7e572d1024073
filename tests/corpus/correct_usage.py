"""Correct Functions written the way their authors use them, which fuzzgrad once failed: an
in-place Function (``ctx.mark_dirty`` through numpy, with a vmap rule and a jvp, as torch's own
``NumpyExp_``); Functions whose backward returns a gradient of a shape autograd sums to the
input's (``(b, 1)`` for a 0-d parameter), which no caller can tell from the input's shape. See
`buggy_usage` for planted twins."""

import importlib

import jax
import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._usage import exp_backward, matmul_amp, numpy_exp_
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _usage = importlib.import_module("_usage")
    exp_backward, matmul_amp, numpy_exp_ = _usage.exp_backward, _usage.matmul_amp, _usage.numpy_exp_


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    inputs=[fg.tensor(low=-5, high=5)],
    dtypes=[torch.float32, torch.float64],  # numpy has no bfloat16
    devices=["cpu"],  # numpy writes into CPU memory only
)
class NumpyExpInPlace(numpy_exp_(exp_backward)):
    """exp in place by numpy: an expanded (stride-0) input is outside its contract (torch
    refuses such a write for its own in-place ops), and torch.func transforms it on a clone of
    the primal, as torch's tests do."""


# --- gradients of a shape autograd sums to the input's: noted, not failed ----------------------


def _scale_forward(ctx, x, s):
    ctx.save_for_backward(x, s)
    return x * s


def _row_grads_backward(ctx, g):
    x, s = ctx.saved_tensors
    return g * s, (g * x).sum(1, keepdim=True)


@fg.register(
    reference=lambda x, s: x * s,
    jax_reference=lambda x, s: x * s,
    inputs=[fg.tensor("b n"), fg.tensor("")],
)
class ScaleByScalarRowGrads(Function):
    """x * s for a 0-d s, whose backward returns s's gradient per row, shape (b, 1): autograd
    sums it to s's shape, and gradcheck, double backward and every caller see the right
    value."""

    forward = staticmethod(_scale_forward)
    backward = staticmethod(_row_grads_backward)


@fg.register(
    reference=lambda x, s: x * s,
    jax_reference=lambda x, s: x * s,
    inputs=[fg.tensor("b n"), fg.tensor("")],
)
class ScaleByScalarRowGradsVmap(Function):
    """`ScaleByScalarRowGrads` in the setup_context style with generate_vmap_rule: torch.func
    sums the (b, 1) gradient too (``reductify``), so jacrev and per-sample gradients agree."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, s):
        return x * s

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    backward = staticmethod(_row_grads_backward)


@fg.register(
    reference=lambda x, scale: x * scale,
    jax_reference=lambda x, scale: x * scale,
    inputs=[fg.tensor("*batch n"), fg.tensor("#n")],
)
class ScaleGradSummedToSize(Function):
    """x * scale; the scale gradient is reduced to (n,) whatever scale's shape: for a broadcast
    scale of shape (1,), autograd sums the rest (once a planted grad_meta bug)."""

    forward = staticmethod(_scale_forward)

    @staticmethod
    def backward(ctx, grad):
        x, scale = ctx.saved_tensors
        return grad * scale, (grad * x).sum_to_size(x.shape[-1:])


@fg.register(
    reference=lambda x: F.softplus(x),
    jax_reference=lambda x: jax.nn.softplus(x),
)
class SoftplusColumns(Function):
    """softplus whose backward loops over columns; a 0-d input's gradient comes back with shape
    (1,), which autograd sums to () (once a planted grad_meta bug)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.softplus(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        x, grad = torch.atleast_1d(x, grad)  # the column loop needs a last dim
        out = torch.empty_like(x)
        for j in range(x.shape[-1]):
            out[..., j] = grad[..., j] * torch.sigmoid(x[..., j])
        return out


# --- autocast as AMP code uses it: the backward after the region -------------------------------


@fg.register(
    reference=lambda x, w: x @ w,
    jax_reference=lambda x, w: x @ w,
    inputs=[fg.tensor("m k"), fg.tensor("k n")],
    dtypes=[torch.float32],
)
class MatmulAmpForwardAndBackward(matmul_amp(custom_bwd=True)):
    """x @ w in bfloat16 under autocast (custom_fwd without cast_inputs), whose backward has
    custom_bwd: it runs under the forward's autocast wherever backward() is called."""
