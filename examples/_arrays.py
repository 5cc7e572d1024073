"""The few operations the example references need that torch and JAX spell differently.

Each reference is written once, against the array it is given: a torch tensor when fuzzgrad
runs the torch reference (autograd differentiates it), a JAX array when it runs the JAX one
(``jax.vjp`` differentiates it). Everything else is spelled alike in both: ``xp(x).sum(x,
axis=-1, keepdims=True)``, ``where``, ``sqrt``, ``concatenate``, ``linalg.solve`` ...
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import torch


def xp(x):
    """The array namespace of ``x``: ``torch`` or ``jax.numpy``."""
    return torch if isinstance(x, torch.Tensor) else jnp


def stop(x):
    """``x`` as a constant: its value, with no derivative."""
    return x.detach() if isinstance(x, torch.Tensor) else jax.lax.stop_gradient(x)


def sort_descending(x):
    """``x`` sorted along its last axis, largest first."""
    if isinstance(x, torch.Tensor):
        return torch.sort(x, -1, descending=True).values
    return -jnp.sort(-x)


def take(x, index):
    """``x[..., index]`` along the last axis, ``index`` an integer array of the same rank."""
    if isinstance(x, torch.Tensor):
        return torch.gather(x, -1, index)
    return jnp.take_along_axis(x, index, axis=-1)


def bisect(f, lo, hi, steps):
    """Halve ``[lo, hi]`` ``steps`` times, keeping the half where ``f`` (decreasing) changes sign:
    ``lo`` where ``f(mid) >= 0``. On constants only; JAX runs it as one loop, not ``steps``
    unrolled copies (which would take seconds to compile per shape)."""

    def step(lo, hi):
        mid = (lo + hi) / 2
        above = f(mid) >= 0
        return xp(mid).where(above, mid, lo), xp(mid).where(above, hi, mid)

    if isinstance(lo, torch.Tensor):
        with torch.no_grad():
            for _ in range(steps):
                lo, hi = step(lo, hi)
        return lo, hi
    return jax.lax.fori_loop(0, steps, lambda _, b: step(*b), (lo, hi))


def cross(a, b):
    """The cross product along the last axis (of size 3)."""
    if isinstance(a, torch.Tensor):
        return torch.linalg.cross(*torch.broadcast_tensors(a, b), dim=-1)
    return jnp.cross(a, b)
