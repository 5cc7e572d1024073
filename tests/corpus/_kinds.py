"""Shared parts of the planted bugs of `buggy_kinds` and their twins in `correct_kinds`: the
argument kinds of issue 27 (the case's dtype in the reference, conjugate views, size
expressions, value scales)."""

import math

import jax.numpy as jnp
import torch

import fuzzgrad as fg

ALL_FLOATS = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
COMPLEX = [torch.complex128, torch.complex64]


def tiny(dtype: torch.dtype) -> float:
    """The floor a dtype-aware clamp uses: 64 machine epsilons of ``dtype``."""
    return 64 * torch.finfo(dtype).eps


#: log(max(x, tiny(dtype))): the floor depends on the Function's dtype, so the references ask
#: for it (a keyword-only ``dtype``) while they compute in float64.
CLAMPED_LOG = {
    "reference": lambda x, *, dtype: torch.clamp(x, min=tiny(dtype)).log(),
    "jax_reference": lambda x, *, dtype: jnp.log(jnp.clip(x, tiny(dtype))),
}


def raw_storage(z: torch.Tensor) -> torch.Tensor:
    """``z``'s memory as a kernel sees it through its data pointer: same storage, sizes and
    strides, but no conjugate bit."""
    return z.new_empty(0).set_(z.untyped_storage(), z.storage_offset(), z.size(), z.stride())


def square_from_parts(z: torch.Tensor) -> torch.Tensor:
    """z*z computed as a kernel does, from the (re, im) pairs of ``z``'s storage."""
    re, im = torch.view_as_real(z).unbind(-1)
    return torch.complex(re * re - im * im, 2 * re * im)


def kron_solve(a: torch.Tensor, b: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(A kron B)^-1 rhs without forming the Kronecker product: rhs's p*q rows read as p blocks
    of q rows; A is solved across the blocks, B within each."""
    p, q, k = a.shape[-1], b.shape[-1], rhs.shape[-1]
    z = torch.linalg.solve(a, rhs.reshape(p, q * k)).reshape(p, q, k)
    x = torch.linalg.solve(b, z.transpose(0, 1).reshape(q, p * k)).reshape(q, p, k)
    return x.transpose(0, 1).reshape(p * q, k)


def kron_solve_grads(a, b, x, g, *, a_in_b_share=None):
    """The gradients of x = (A kron B)^-1 rhs: r = (A kron B)^-T g is rhs's, and A's and B's are
    the two factors' shares of -r x^T (``a_in_b_share``: the A that B's share is weighted by)."""
    p, q, k = a.shape[-1], b.shape[-1], x.shape[-1]
    r = kron_solve(a.mT, b.mT, g)
    r3, x3 = r.reshape(p, q, k), x.reshape(p, q, k)
    grad_a = -torch.einsum("ijk,abk,jb->ia", r3, x3, b)
    weights = a if a_in_b_share is None else a_in_b_share
    grad_b = -torch.einsum("ijk,abk,ia->jb", r3, x3, weights)
    return grad_a, grad_b, r


KRON_INPUTS = [
    fg.tensor("p p", structure="well_conditioned"),
    fg.tensor("q q", structure="well_conditioned"),
    fg.tensor("p*q k"),
]
#: Torch reference only: JAX would compile a program for every (p, q, k) drawn.
KRON = {
    "reference": lambda a, b, rhs: torch.linalg.solve(torch.kron(a, b), rhs),
    "inputs": KRON_INPUTS,
    "dtypes": [torch.float64, torch.float32],
}


def versine_ratio_series(x):
    """(1 - cos x) / x^2 by its Taylor series, exact to float64 rounding for |x| < 1."""
    x2 = x * x
    return 0.5 - x2 / 24 + x2 * x2 / 720 - x2**3 / 40320 + x2**4 / 3628800 - x2**5 / 479001600


def versine_ratio(x, where, cos, abs_):
    """(1 - cos x) / x^2, the series near 0 (stable under autograd at any precision), the closed
    form elsewhere (with a safe x, so its gradient stays finite where it is not used)."""
    small = abs_(x) < 1
    safe = where(small, 1.0 + 0 * x, x)
    return where(small, versine_ratio_series(x), (1 - cos(safe)) / (safe * safe))


def versine_ratio_grad(x: torch.Tensor) -> torch.Tensor:
    """d/dx (1 - cos x) / x^2: the series' derivative for |x| < 1, the closed form elsewhere."""
    x2 = x * x
    series = x * (-1 / 12 + x2 / 180 - x2 * x2 / 6720 + x2**3 / 453600 - x2**4 / 47900160)
    safe = torch.where(x.abs() < 1, torch.ones_like(x), x)
    closed = (safe * safe.sin() - 2 * (1 - safe.cos())) / safe**3
    return torch.where(x.abs() < 1, series, closed)


VERSINE = {
    "reference": lambda x: versine_ratio(x, torch.where, torch.cos, torch.abs),
    "jax_reference": lambda x: versine_ratio(x, jnp.where, jnp.cos, jnp.abs),
    "inputs": [fg.tensor(low=-math.pi, high=math.pi)],
    "dtypes": [torch.float32],
}
