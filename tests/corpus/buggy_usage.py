"""Planted bugs in Functions written the way their authors use them: an in-place Function
(``ctx.mark_dirty`` through numpy) with a wrong backward, or one torch.func cannot transform; a
gradient of a shape autograd cannot sum, or of a shape it sums but the wrong value. See
`correct_usage` for the correct twins."""

import importlib

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._usage import matmul_amp, numpy_exp_
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _usage = importlib.import_module("_usage")
    matmul_amp, numpy_exp_ = _usage.matmul_amp, _usage.numpy_exp_


def _stale_input_backward(ctx, g):
    (y,) = ctx.saved_tensors  # the output: forward overwrote the input with it
    return g * torch.exp(y)


def _data_dependent_backward(ctx, g):
    (y,) = ctx.saved_tensors
    if bool((g == 0).all()):
        return torch.zeros_like(y)
    return g * y


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    inputs=[fg.tensor(low=-5, high=5)],
    dtypes=[torch.float32, torch.float64],
    devices=["cpu"],
    planted={
        "property": "vjp",
        "bug_class": "an in-place Function's backward reads an input forward overwrote",
        "needs": "none",
    },
)
class NumpyExpInPlaceStaleInput(numpy_exp_(_stale_input_backward)):
    """exp in place by numpy whose backward recomputes exp of its saved tensor, as if it were
    still the input: it is the output (mark_dirty overwrote the input), so exp(exp(x))."""


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    inputs=[fg.tensor(low=-5, high=5)],
    dtypes=[torch.float32, torch.float64],
    devices=["cpu"],
    planted={
        "property": "func_transforms",
        "bug_class": "an in-place Function's backward with data-dependent control flow",
        "needs": "none",
    },
)
class NumpyExpInPlaceNotVmappable(numpy_exp_(_data_dependent_backward)):
    """exp in place by numpy whose backward short-cuts an all-zero grad_output with Python
    control flow on tensor data: per-sample gradients and jacrev of it raise under vmap."""


# --- gradient shapes: one autograd cannot sum, a wrong value after the sum ----------------------


def _scale_forward(ctx, x, w):
    ctx.save_for_backward(x, w)
    return x * w


@fg.register(
    reference=lambda x, w: x * w,
    jax_reference=lambda x, w: x * w,
    inputs=[fg.tensor("b n"), fg.tensor("n")],
    planted={
        "property": "grad_meta",
        "bug_class": "a gradient of a shape autograd cannot sum (summed over the wrong axis)",
        "needs": "none",
    },
)
class ScaleWeightGradWrongAxis(Function):
    """x * w for a per-feature w, whose backward sums w's gradient over the features instead
    of the batch: shape (b,) for w of shape (n,), which autograd cannot sum to (n,)."""

    forward = staticmethod(_scale_forward)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, (g * x).sum(1)


@fg.register(
    reference=lambda x, s: x * s,
    jax_reference=lambda x, s: x * s,
    inputs=[fg.tensor("b n"), fg.tensor("")],
    planted={
        "property": "vjp",
        "bug_class": "a gradient autograd sums to its input's shape, of the wrong value",
        "needs": "none",
    },
)
class ScaleByScalarRowMeans(Function):
    """x * s for a 0-d s, whose backward returns s's gradient per row as a mean over the row
    (shape (b, 1), which autograd sums): the sum of row means, not of the elements."""

    forward = staticmethod(_scale_forward)

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved_tensors
        return g * s, (g * x).mean(1, keepdim=True)


# --- autocast as AMP code uses it: the backward after the region -------------------------------


@fg.register(
    reference=lambda x, w: x @ w,
    jax_reference=lambda x, w: x @ w,
    inputs=[fg.tensor("m k"), fg.tensor("k n")],
    dtypes=[torch.float32],
    planted={
        "property": "autocast",
        "bug_class": "custom_fwd without custom_bwd: a backward after the region mixes dtypes",
        "needs": "none",
    },
)
class MatmulAmpForwardOnly(matmul_amp(custom_bwd=False)):
    """x @ w in bfloat16 under autocast (custom_fwd without cast_inputs), whose backward lacks
    custom_bwd: called after the region, as AMP recipes call ``loss.backward()``, it multiplies
    the bfloat16 grad_output by float32 inputs and raises (inside the region it passes)."""
