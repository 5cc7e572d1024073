"""Linear algebra layers: a linear layer over any batch, broadcasting matmul, and a bilinear form.

Weight gradients sum over every batch dim; broadcast operands get their gradient summed back to
their own shape (``Tensor.sum_to_size``), the step hand-written matmuls most often forget.
"""

import math

import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import dense, upcast


@fg.register(
    reference=F.linear,
    jax_reference=lambda x, w, b: x @ w.T + b,
    inputs=[fg.tensor("*batch i"), fg.tensor("o i"), fg.tensor("o")],
)
class Linear(Function):
    """y = x @ W.T + b over any leading batch dims (``nn.Linear``), as one addmm on the rows."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        # addmm accumulates onto b: x @ W.T + b would overflow where x @ W.T alone does
        rows = math.prod(x.shape[:-1])
        y = torch.addmm(b, dense(x.reshape(rows, w.shape[1])), dense(w.T))
        return y.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        rows = math.prod(x.shape[:-1])  # reshape(-1, n) is ambiguous when n == 0
        g2 = dense(grad.reshape(rows, w.shape[0]))
        dx = dense(grad) @ dense(w) if ctx.needs_input_grad[0] else None
        dw = dense(g2.T) @ dense(x.reshape(rows, w.shape[1])) if ctx.needs_input_grad[1] else None
        db = g2.sum(0) if ctx.needs_input_grad[2] else None
        return dx, dw, db


@fg.register(
    reference=torch.matmul,
    jax_reference=jnp.matmul,
    inputs=[fg.tensor("*#batch n k"), fg.tensor("*#batch k m")],
)
class BroadcastMatmul(Function):
    """Batched matmul whose batch dims broadcast (each operand may drop or size-1 any of them)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return dense(a) @ dense(b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        # The products of a broadcast batch are summed in float32 for half precision, as
        # torch.matmul's own backward folds them into one float32 accumulation: one product
        # rounded to half may overflow where the sum does not (found by exploration).
        g = dense(upcast(grad))
        da = db = None
        if ctx.needs_input_grad[0]:
            da = (g @ dense(upcast(b).mT)).sum_to_size(a.shape).to(a.dtype)
        if ctx.needs_input_grad[1]:
            db = (dense(upcast(a).mT) @ g).sum_to_size(b.shape).to(b.dtype)
        return da, db


@fg.register(
    # F.bilinear itself fails on zero-size inputs (an ambiguous reshape(-1, 0))
    reference=lambda x1, x2, w, b: torch.einsum("bi,oij,bj->bo", x1, w, x2) + b,
    jax_reference=lambda x1, x2, w, b: jnp.einsum("bi,oij,bj->bo", x1, w, x2) + b,
    inputs=[fg.tensor("b i"), fg.tensor("b j"), fg.tensor("o i j"), fg.tensor("o")],
    precision="fused",
)
class Bilinear(Function):
    """y_o = x1^T W_o x2 + b_o (``nn.Bilinear``), written with einsum in both directions.

    A three-operand einsum rounds its intermediate product, so half precision runs in float32.
    """

    @staticmethod
    def forward(ctx, x1, x2, w, b):
        ctx.save_for_backward(x1, x2, w)
        y = torch.einsum("bi,oij,bj->bo", upcast(x1), upcast(w), upcast(x2)) + upcast(b)
        return y.to(x1.dtype)

    @staticmethod
    def backward(ctx, grad):
        x1, x2, w = ctx.saved_tensors
        g, a, c, wf = upcast(grad), upcast(x1), upcast(x2), upcast(w)
        need = ctx.needs_input_grad
        return (
            torch.einsum("bo,oij,bj->bi", g, wf, c).to(x1.dtype) if need[0] else None,
            torch.einsum("bo,oij,bi->bj", g, wf, a).to(x2.dtype) if need[1] else None,
            torch.einsum("bo,bi,bj->oij", g, a, c).to(w.dtype) if need[2] else None,
            g.sum(0).to(grad.dtype) if need[3] else None,
        )
