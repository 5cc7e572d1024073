"""Numeric helpers shared by the built-in target modules (discovery skips `_` modules)."""

from __future__ import annotations

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


def upcast(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is half precision, else unchanged: accumulate as fused kernels do."""
    return t.float() if t.dtype in LOW_PRECISION else t


def dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a contiguous copy if it is bfloat16, else unchanged: a matmul operand.

    torch 2.13's CPU bfloat16 matmul (oneDNN, AMX) reads one element past each row of a strided
    operand whose row length is odd, so a NaN next to the view turns whole output rows into NaN;
    fuzzgrad found it (bench/notes/bf16_matmul_nan.md). Contiguous operands avoid it.
    """
    return t.contiguous() if t.dtype == torch.bfloat16 else t


def sum_leading(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dim but the last: a per-feature parameter's gradient from a batch of rows.

    ``t.sum(())`` would reduce *every* dim, so a 1-d ``t`` is returned as is.
    """
    return t.flatten(0, -2).sum(0) if t.dim() > 1 else t


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """The logistic function, built so that autograd's derivative of it is accurate too.

    ``torch.sigmoid``'s derivative is s * (1 - s), which in float32 loses most digits for large x
    (1 - s cancels); here autograd differentiates exp(-|x|) instead and gets z / (1 + z)^2.
    """
    z = torch.exp(torch.where(x >= 0, -x, x))  # exp(-|x|), with a derivative at 0 too
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


def softmax_jvp_t(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """p * (g - sum(p * g)): the softmax Jacobian (symmetric) applied to g, along the last dim.

    A second pass removes what the rounded first mean left, so a g that is constant along the
    row (whose exact result is 0) gives ~0 rather than |g| times the rounding of sum(p).
    """
    d = g - (p * g).sum(-1, keepdim=True)
    return p * (d - (p * d).sum(-1, keepdim=True))
