"""Shared parts of the planted bugs of `buggy_kinds` and their twins in `correct_kinds`: the
argument kinds of issue 27 (the case's dtype in the reference, conjugate views, size
expressions, value scales)."""

import jax.numpy as jnp
import torch

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
