"""Correct Functions written the way their authors use them, which fuzzgrad once failed: an
in-place Function (``ctx.mark_dirty`` through numpy, with a vmap rule and a jvp, as torch's own
``NumpyExp_``). See `buggy_usage` for planted twins."""

import importlib

import jax.numpy as jnp
import torch

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._usage import exp_backward, numpy_exp_
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _usage = importlib.import_module("_usage")
    exp_backward, numpy_exp_ = _usage.exp_backward, _usage.numpy_exp_


@fg.register(
    reference=torch.exp,
    jax_reference=jnp.exp,
    inputs=[fg.tensor(low=-5, high=5)],
    dtypes=[torch.float32, torch.float64],  # numpy has no bfloat16
)
class NumpyExpInPlace(numpy_exp_(exp_backward)):
    """exp in place by numpy: an expanded (stride-0) input is outside its contract (torch
    refuses such a write for its own in-place ops), and torch.func transforms it on a clone of
    the primal, as torch's tests do."""
