"""Twins of the built-in Triton targets (`fuzzgrad.targets.triton_kernels`), each with one of the
mistakes Triton kernels are known for, or its fix. `buggy_triton` and `correct_triton` register
them (where Triton is usable); this module, imported by them, is not itself a corpus file.

Each twin differs from its built-in in one place, marked ``# the planted bug``, and is right on
every row that fits in one block: the bugs show only once a row spans more than ``BLOCK_N``
columns, or a tensor more than ``BLOCK_M`` rows (the twins whose bug is across rows take a 2-d
input, so that its rows are one dim, which shrinks to BLOCK_M + 1; a product of batch dims
shrinks dim by dim, and may stop at 10 = 5 x 2).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fuzzgrad.targets._triton import launch, rows, tl, triton
from fuzzgrad.targets.triton_kernels import (
    _EPS_INV,
    K,
    TritonRMSNorm,
    TritonSoftmax,
    _meta,
    _tiles,
    rms_norm_backward,
    rms_norm_forward,
    softmax_forward,
)


@triton.jit
def _softmax_forward_seeded(
    X, Y, n_rows, n, sxr, sxc, syr, syc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """Softmax whose first block seeds the running max and sum; the later blocks' mask is off by
    one (``cols < n - 1``), so the last element of a row longer than one block is left out."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    x_row, y_row = X + rows[:, None] * sxr, Y + rows[:, None] * syr
    cols = tl.arange(0, BLOCK_N)
    mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
    x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
    x = tl.where((cols < n)[None, :], x, float("-inf"))
    m = tl.max(x, axis=1)
    s = tl.sum(tl.exp(x - m[:, None]), axis=1)
    for start in range(BLOCK_N, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n - 1)[None, :]  # the planted bug
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=float("-inf")).to(ACC)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(x_row + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        y = tl.exp(x - m[:, None]) / s[:, None]
        tl.store(y_row + cols[None, :] * syc, y.to(Y.dtype.element_ty), mask=mask)


class TritonSoftmaxLastBlockMask(TritonSoftmax):
    """`TritonSoftmax` with a forward kernel whose mask on the blocks after the first is off by
    one (its backward is the built-in one)."""

    @staticmethod
    def forward(ctx, x):
        y = softmax_forward(_softmax_forward_seeded, x)
        ctx.save_for_backward(y)
        return y


@triton.jit
def _rms_norm_forward_bumped(
    X, W, Y, RSTD, n_rows, n, sxr, sxc, sw, syr, syc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr, EPS_INV: tl.constexpr,
):  # fmt: skip
    """RMSNorm forward that walks a row by bumping its pointers a block at a time; the bump of
    x's pointer forgets x's column stride (right only where the row is contiguous)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs = tl.arange(0, BLOCK_N)
    x_ptr = X + rows[:, None] * sxr + offs[None, :] * sxc
    sumsq = tl.zeros([BLOCK_M], dtype=ACC)
    for start in range(0, n, BLOCK_N):
        mask = (rows < n_rows)[:, None] & (start + offs < n)[None, :]
        x = tl.load(x_ptr, mask=mask, other=0).to(ACC)
        sumsq += tl.sum(x * x, axis=1)
        x_ptr += BLOCK_N  # the planted bug: BLOCK_N * sxc
    rstd = 1 / tl.sqrt(sumsq / n + tl.full([BLOCK_M], 1, ACC) / EPS_INV)
    tl.store(RSTD + rows, rstd, mask=rows < n_rows)
    x_ptr = X + rows[:, None] * sxr + offs[None, :] * sxc
    y_ptr = Y + rows[:, None] * syr + offs[None, :] * syc
    w_ptr = W + offs * sw
    for start in range(0, n, BLOCK_N):
        mask = (rows < n_rows)[:, None] & (start + offs < n)[None, :]
        x = tl.load(x_ptr, mask=mask, other=0).to(ACC)
        w = tl.load(w_ptr, mask=start + offs < n, other=0).to(ACC)
        tl.store(y_ptr, (x * rstd[:, None] * w[None, :]).to(Y.dtype.element_ty), mask=mask)
        x_ptr, y_ptr, w_ptr = x_ptr + BLOCK_N * sxc, y_ptr + BLOCK_N * syc, w_ptr + BLOCK_N * sw


class TritonRMSNormMissingStride(TritonRMSNorm):
    """`TritonRMSNorm` with a forward kernel that, in its sum of squares, steps from one block to
    the next as if x's columns were contiguous (its backward is the built-in one)."""

    @staticmethod
    def forward(ctx, x, w):
        if 0 in x.stride():
            # A stride-0 x would make the planted bug read outside x's storage, whose contents
            # change from run to run; a copy keeps the twin's failures replayable.
            x = x.contiguous()
        y, rstd = rms_norm_forward(_rms_norm_forward_bumped, x, w)
        ctx.save_for_backward(x, w, rstd)
        return y


class TritonRMSNormHalfShares(TritonRMSNorm):
    """`TritonRMSNorm` whose backward keeps the per-block shares of the weight gradient in the
    weight's dtype rather than in the accumulation type: each share is rounded to half precision
    before they are added up (on one block of rows, that rounding is the final one)."""

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, w, rstd = ctx.saved_tensors
        shares = (_tiles(rows(x).shape[0]), w.shape[0])
        return rms_norm_backward(x, w, grad, rstd, w.new_zeros(shares))  # the planted bug


class TritonRMSNormOwnPrecisionSum(TritonRMSNorm):
    """`TritonRMSNorm` whose forward kernel computes in the input's own precision: the wide
    accumulator forgotten for half-precision inputs (the one twin wrong inside a single block:
    float16 squares overflow from |x| = 256, and every step rounds to 11 bits)."""

    @staticmethod
    def forward(ctx, x, w):
        own = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}.get(x.dtype)
        x2 = rows(x)
        y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        y2 = rows(y)
        rstd = torch.empty(x2.shape[0], dtype=torch.float64, device=x.device)
        meta = _meta(x) | ({"ACC": own} if own is not None else {})  # the planted bug
        launch(K.rms_norm_forward, _tiles(x2.shape[0]) * (x2.numel() > 0), x2, w, y2, rstd,
               *x2.shape, *x2.stride(), w.stride(0), *y2.stride(), EPS_INV=_EPS_INV,
               **meta)  # fmt: skip
        ctx.save_for_backward(x, w, rstd)
        return y


@triton.jit
def _rms_norm_weight_grad(
    X, G, RSTD, DW, n_rows, n, sxr, sxc, sgr, sgc,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, ACC: tl.constexpr, ATOMIC: tl.constexpr,
):  # fmt: skip
    """dw = sum over rows of g x rstd: each program adds its rows' share into DW (zeros, ACC)
    with an atomic add, or, where ``ATOMIC`` is false, stores it over what is there."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rstd = tl.load(RSTD + rows, mask=rows < n_rows, other=0)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = (rows < n_rows)[:, None] & (cols < n)[None, :]
        x = tl.load(X + rows[:, None] * sxr + cols[None, :] * sxc, mask=mask, other=0).to(ACC)
        g = tl.load(G + rows[:, None] * sgr + cols[None, :] * sgc, mask=mask, other=0).to(ACC)
        share = tl.sum(g * x * rstd[:, None], axis=0)
        if ATOMIC:
            tl.atomic_add(DW + cols, share, mask=cols < n)
        else:
            tl.store(DW + cols, share, mask=cols < n)  # the planted bug


def _atomic_backward(ctx, grad, atomic: bool):
    x, w, rstd = ctx.saved_tensors
    shares = rstd.new_zeros((_tiles(rows(x).shape[0]), w.shape[0]))
    dx, _ = rms_norm_backward(x, w, grad, rstd, shares)
    x2, g2 = rows(x), rows(grad)
    dw = rstd.new_zeros(w.shape)
    launch(_rms_norm_weight_grad, _tiles(x2.shape[0]) * (x2.numel() > 0), x2, g2, rstd, dw,
           *x2.shape, *x2.stride(), *g2.stride(), ATOMIC=atomic, **_meta(x))  # fmt: skip
    return dx, dw.to(w.dtype)


class TritonRMSNormAtomicWeightGrad(TritonRMSNorm):
    """`TritonRMSNorm` whose weight gradient is summed over blocks of rows with atomic adds
    (correct; on a GPU the order of float atomics varies, so its bits may too)."""

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return _atomic_backward(ctx, grad, atomic=True)


class TritonRMSNormStoredWeightGrad(TritonRMSNorm):
    """As `TritonRMSNormAtomicWeightGrad`, but each block's share is stored, not atomically
    added: the last block to write wins."""

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return _atomic_backward(ctx, grad, atomic=False)


#: A twin's inputs have at most this many elements (the built-ins: 64): enough for a row of
#: three blocks, or three blocks of rows, and the interpreter shrinks a failure in far fewer calls.
TWIN_MAX_ELEMENTS = 24


def like(name: str, **changes) -> dict:
    """The registration of the built-in Triton target ``name`` (references, inputs, options),
    for a twin to be registered the same way, but with smaller inputs and ``changes``."""
    from fuzzgrad.targets import triton_kernels

    t = triton_kernels.__fuzzgrad_targets__[name]
    kwargs = dict(
        reference=t.reference,
        jax_reference=t.jax_reference,
        inputs=list(t.inputs),
        dtypes=t.dtypes,
        **t.options,
    )
    return {**kwargs, "max_elements": TWIN_MAX_ELEMENTS, **changes}
