"""Normalisation layers over the last dim, with the classic hand-derived backward passes.

Backward recomputes the statistics from the saved input (rather than saving mean and rstd from
forward) so that double backward sees how they depend on the input.
"""

import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import sum_leading, upcast

LN_EPS = 1e-5
RMS_EPS = 1e-6
L2_EPS = 1e-12


def _centred(x):
    """x minus its row mean. The mean is sum(x / n), which cannot overflow, refined by a second
    pass, so that a constant row centres to exactly 0 rather than to the mean's rounding error
    (which the 1/sqrt(var + eps) that follows would amplify up to 316-fold)."""
    n = max(x.shape[-1], 1)
    d = x - (x / n).sum(-1, keepdim=True)
    return d - (d / n).sum(-1, keepdim=True)


def _layer_norm_stats(x):
    centred = _centred(x)
    rstd = torch.rsqrt((centred * centred).mean(-1, keepdim=True) + LN_EPS)
    return centred * rstd, rstd


def _layer_norm_jax(x, w, b):
    centred = x - x.mean(-1, keepdims=True)
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / jnp.sqrt(var + LN_EPS) * w + b


@fg.register(
    reference=lambda x, w, b: F.layer_norm(x, x.shape[-1:], w, b, LN_EPS),
    jax_reference=_layer_norm_jax,
    inputs=[fg.tensor("*batch n"), fg.tensor("n"), fg.tensor("n")],
    precision="fused",
)
class LayerNorm(Function):
    """LayerNorm over the last dim with elementwise weight and bias (eps = 1e-5)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.bias_dtype = b.dtype
        xf = upcast(x)
        # Statistics in float64, as torch's CPU kernel accumulates: a constant row of huge
        # float32 values centres to the mean's rounding error in float32, which 1/sqrt(var + eps)
        # then scales to +-1 where the exact output is 0 (fuzzgrad's exploration found it).
        xhat = _layer_norm_stats(xf.double())[0].to(xf.dtype)
        return (xhat * upcast(w) + upcast(b)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        g = upcast(grad)
        xf = upcast(x)  # once: each upcast's backward rounds to half on its own
        xd, rd = _layer_norm_stats(xf.double())
        xhat = xd.to(xf.dtype)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            # In float64, as torch's CPU kernel accumulates: for a row of two (or any nearly
            # degenerate row) dx is terms of ~|g w| rstd cancelling down to ~eps/var of them, and
            # float32 leaves noise 25x the exact value (fuzzgrad found it against torch).
            gxhat = g.double() * upcast(w).double()
            proj = (gxhat * xd).mean(-1, keepdim=True)
            dx = (rd * (gxhat - gxhat.mean(-1, keepdim=True) - xd * proj)).to(x.dtype)
        if ctx.needs_input_grad[1]:
            dw = sum_leading(g * xhat).to(w.dtype)
        if ctx.needs_input_grad[2]:
            db = sum_leading(g).to(ctx.bias_dtype)
        return dx, dw, db


def _rms_jax(x, w):
    return x / jnp.sqrt((x * x).mean(-1, keepdims=True) + RMS_EPS) * w


@fg.register(
    reference=lambda x, w: F.rms_norm(x, x.shape[-1:], w, RMS_EPS),
    jax_reference=_rms_jax,
    inputs=[fg.tensor("*batch n"), fg.tensor("n")],
    precision="fused",
)
class RMSNorm(Function):
    """RMSNorm over the last dim with a weight: x / sqrt(mean(x^2) + 1e-6) * w."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        xf = upcast(x)
        rstd = torch.rsqrt((xf * xf).mean(-1, keepdim=True) + RMS_EPS)
        return (xf * rstd * upcast(w)).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        xf, g = upcast(x), upcast(grad)
        rstd = torch.rsqrt((xf * xf).mean(-1, keepdim=True) + RMS_EPS)
        xhat = xf * rstd
        # dx in float64, as for LayerNorm: where one element dominates a short row the two
        # terms cancel almost exactly, and float32 leaves noise well above the exact value
        xd = xf.double()
        rd = torch.rsqrt((xd * xd).mean(-1, keepdim=True) + RMS_EPS)
        xhd, gxhat = xd * rd, g.double() * upcast(w).double()
        dx = rd * (gxhat - xhd * (gxhat * xhd).mean(-1, keepdim=True))
        return dx.to(x.dtype), sum_leading(g * xhat).to(w.dtype)


def _l2_normalize_jax(x):
    # the double-where trick: sqrt's derivative at 0 would turn x / eps's gradients into NaN
    sq = (x * x).sum(-1, keepdims=True)
    norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1)), 0)
    return x / jnp.maximum(norm, L2_EPS)


@fg.register(
    reference=lambda x: F.normalize(x, dim=-1, eps=L2_EPS),
    jax_reference=_l2_normalize_jax,
    inputs=[fg.tensor("*batch n")],
    precision="fused",
)
class L2Normalize(Function):
    """x / max(||x||, eps) along the last dim (``F.normalize``); below eps it is x / eps."""

    @staticmethod
    def forward(ctx, x):
        xf = upcast(x)
        y = xf / torch.linalg.vector_norm(xf, dim=-1, keepdim=True).clamp_min(L2_EPS)
        ctx.save_for_backward(x)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        # In float64: for a row of one element, g - y * <g, y> is g (1 - y^2), exactly 0, and
        # its derivative (the double backward) is a cancellation that float32 leaves as noise
        # far above the exact result (fuzzgrad's nightly profile found it).
        xf, g = x.double(), grad.double()
        norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True)
        denom = norm.clamp_min(L2_EPS)
        y = xf / denom
        radial = torch.where(norm > L2_EPS, (g * y).sum(-1, keepdim=True), 0)
        return ((g - y * radial) / denom).to(x.dtype)
