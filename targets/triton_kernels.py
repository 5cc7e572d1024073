"""Functions whose forward and backward are Triton kernels (`fuzzgrad.targets._triton_kernels`):
a fused SwiGLU, an RMSNorm with a block-reduced weight gradient, a row softmax and a soft-label
cross-entropy with an online logsumexp.

They run compiled on a GPU and through Triton's interpreter on a CPU (see
`fuzzgrad.targets._triton`, which switches the interpreter on where there is no CUDA). Where
Triton is not installed, this module registers nothing. The interpreter runs each kernel program
in Python, about a thousand times slower than torch, so the targets are registered ``slow``:
`fuzzgrad fuzz` runs them with ``--slow`` or ``--budget``, pytest with ``--fuzzgrad-slow`` or the
nightly profile. Their backward passes are kernels, which autograd cannot differentiate again:
``once_differentiable``.
"""

from typing import Any

import jax
import jax.numpy as jnp
import torch
from torch.autograd import Function
from torch.autograd.function import once_differentiable

import fuzzgrad as fg
from fuzzgrad.targets import _triton
from fuzzgrad.targets._triton import acc_dtype, acc_type, launch, rows
from fuzzgrad.targets.norms import RMS_EPS, _rms_jax

K: Any
if _triton.USABLE:
    from fuzzgrad.targets import _triton_kernels as K
else:
    K = _triton.Unusable()

#: RMSNorm's eps as the integer 1 / eps: the kernel rounds 1 / EPS_INV once in its own precision.
_EPS_INV = round(1 / RMS_EPS)


def _tiles(n_rows: int) -> int:
    return -(-n_rows // K.BLOCK_M)


def _meta(*tensors: torch.Tensor) -> dict:
    return {"BLOCK_M": K.BLOCK_M, "BLOCK_N": K.BLOCK_N, "ACC": acc_type(*tensors)}


def _out(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A fresh dense tensor shaped and typed like ``t``, and its 2-d view."""
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
    return out, rows(out)


class TritonSwiGLU(Function):
    """silu(a) * b, the gate of a SwiGLU MLP, forward and backward fused in one kernel each."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        a2, b2 = rows(a), rows(b)
        y, y2 = _out(a)
        launch(K.swiglu_forward, _tiles(a2.shape[0]) * (a2.numel() > 0), a2, b2, y2,
               *a2.shape, *a2.stride(), *b2.stride(), *y2.stride(), **_meta(a, b))  # fmt: skip
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        a2, b2, g2 = rows(a), rows(b), rows(grad)
        (da, da2), (db, db2) = _out(a), _out(b)
        launch(K.swiglu_backward, _tiles(a2.shape[0]) * (a2.numel() > 0), a2, b2, g2, da2, db2,
               *a2.shape, *a2.stride(), *b2.stride(), *g2.stride(), *da2.stride(),
               **_meta(a, b))  # fmt: skip
        return da, db


def rms_norm_forward(kernel, x: torch.Tensor, w: torch.Tensor):
    """Launch an RMSNorm forward ``kernel`` (`K.rms_norm_forward` or a twin): y and rstd."""
    x2 = rows(x)
    y, y2 = _out(x)
    rstd = torch.empty(x2.shape[0], dtype=acc_dtype(x), device=x.device)
    launch(kernel, _tiles(x2.shape[0]) * (x2.numel() > 0), x2, w, y2, rstd, *x2.shape,
           *x2.stride(), w.stride(0), *y2.stride(), EPS_INV=_EPS_INV, **_meta(x))  # fmt: skip
    return y, rstd


def rms_norm_backward(x, w, grad, rstd, partial: torch.Tensor):
    """dx, and dw summed from the per-block shares the backward kernel writes into ``partial``
    (zeros, one row per block of rows, in the accumulation type)."""
    x2, g2 = rows(x), rows(grad)
    dx, dx2 = _out(x)
    blocks = partial.shape[0]
    launch(K.rms_norm_backward, blocks * (x2.numel() > 0), x2, w, g2, rstd, dx2, partial,
           *x2.shape, *x2.stride(), w.stride(0), *g2.stride(), *dx2.stride(),
           **_meta(x))  # fmt: skip
    dw = torch.zeros_like(w, memory_format=torch.contiguous_format)
    launch(K.column_sum, -(-w.numel() // K.BLOCK_N) * (blocks > 0), partial, dw,
           *partial.shape, **_meta(x))  # fmt: skip
    return dx, dw


class TritonRMSNorm(Function):
    """RMSNorm over the last dim with a weight (eps = 1e-6). The backward kernel writes each
    block of rows' share of the weight gradient; a second kernel sums the shares."""

    @staticmethod
    def forward(ctx, x, w):
        y, rstd = rms_norm_forward(K.rms_norm_forward, x, w)
        ctx.save_for_backward(x, w, rstd)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, w, rstd = ctx.saved_tensors
        shares = (_tiles(rows(x).shape[0]), w.shape[0])
        return rms_norm_backward(x, w, grad, rstd, rstd.new_zeros(shares))


def softmax_forward(kernel, x: torch.Tensor) -> torch.Tensor:
    """Launch a softmax forward ``kernel`` (`K.softmax_forward` or a twin)."""
    x2 = rows(x)
    y, y2 = _out(x)
    launch(kernel, _tiles(x2.shape[0]) * (x2.numel() > 0), x2, y2, *x2.shape, *x2.stride(),
           *y2.stride(), **_meta(x))  # fmt: skip
    return y


class TritonSoftmax(Function):
    """Softmax over the last dim: a running max and sum over blocks, then one pass to write."""

    @staticmethod
    def forward(ctx, x):
        y = softmax_forward(K.softmax_forward, x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        y2, g2 = rows(y), rows(grad)
        dx, dx2 = _out(y)
        launch(K.softmax_backward, _tiles(y2.shape[0]) * (y2.numel() > 0), y2, g2, dx2,
               *y2.shape, *y2.stride(), *g2.stride(), *dx2.stride(), **_meta(y))  # fmt: skip
        return dx


class TritonCrossEntropy(Function):
    """Cross-entropy against soft targets, one loss per row: sum_j t_j (logsumexp(x) - x_j).
    Both the logits and the targets are differentiable."""

    @staticmethod
    def forward(ctx, x, t):
        x2, t2 = rows(x), rows(t)
        n_rows = x2.shape[0]
        loss = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        m, log_s = (torch.empty(n_rows, dtype=acc_dtype(x, t), device=x.device) for _ in range(2))
        launch(K.cross_entropy_forward, _tiles(n_rows) * (x2.numel() > 0), x2, t2, loss, m,
               log_s, *x2.shape, *x2.stride(), *t2.stride(), **_meta(x, t))  # fmt: skip
        ctx.save_for_backward(x, t, m, log_s)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, t, m, log_s = ctx.saved_tensors
        x2, t2 = rows(x), rows(t)
        g1 = grad.reshape(-1)
        (dx, dx2), (dt, dt2) = _out(x), _out(t)
        launch(K.cross_entropy_backward, _tiles(x2.shape[0]) * (x2.numel() > 0), x2, t2, g1, m,
               log_s, dx2, dt2, *x2.shape, *x2.stride(), *t2.stride(), g1.stride(0),
               *dx2.stride(), **_meta(x, t))  # fmt: skip
        return dx, dt


def _cross_entropy(x, t):
    return (t * (torch.logsumexp(x, -1, keepdim=True) - x)).sum(-1)


def _cross_entropy_jax(x, t):
    return jnp.sum(t * (jax.nn.logsumexp(x, axis=-1, keepdims=True) - x), axis=-1)


def _silu_mul(a, b):
    return torch.nn.functional.silu(a) * b


#: What every Triton target is registered with: where its kernels run, and that it is slow.
_COMMON: dict[str, Any] = {
    "dtypes": _triton.DTYPES,
    "precision": "fused",
    "devices": _triton.DEVICES,
    "slow": True,
    "max_elements": 64,
}

if _triton.USABLE:
    fg.register(
        TritonSwiGLU,
        reference=_silu_mul,
        jax_reference=lambda a, b: jax.nn.silu(a) * b,
        **_COMMON,
    )
    fg.register(
        TritonRMSNorm,
        reference=lambda x, w: torch.nn.functional.rms_norm(x, x.shape[-1:], w, RMS_EPS),
        jax_reference=_rms_jax,
        inputs=[fg.tensor("*batch n"), fg.tensor("n")],
        **_COMMON,
    )
    fg.register(
        TritonSoftmax,
        reference=lambda x: torch.softmax(x, -1),
        jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
        inputs=[fg.tensor("*batch n")],
        **_COMMON,
    )
    fg.register(
        TritonCrossEntropy,
        reference=_cross_entropy,
        jax_reference=_cross_entropy_jax,
        inputs=[fg.tensor("*batch n"), fg.tensor("*batch n", low=0, high=1)],
        **_COMMON,
    )
