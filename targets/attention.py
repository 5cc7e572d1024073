"""Attention-lite: scaled dot-product attention on small "b s d" tensors, plain and causal.

The pattern of a memory-saving (flash-style) implementation: forward keeps only q, k, v, and
backward recomputes the attention probabilities before applying the softmax Jacobian.
"""

import math

import jax
import jax.numpy as jnp
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.targets._common import softmax_jvp_t, upcast


def _scale(d: int) -> float:
    """1/sqrt(d), and 1 for d == 0 (where every score is the empty sum 0 anyway)."""
    return 1 / math.sqrt(d) if d else 1.0


def _attention_jax(q, k, v, *, causal=False):
    scores = q @ jnp.swapaxes(k, -1, -2) * _scale(q.shape[-1])
    if causal:
        keep = jnp.tril(jnp.ones((q.shape[-2], k.shape[-2]), dtype=bool))
        scores = jnp.where(keep, scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


def _attention_torch(q, k, v, *, causal=False):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=_scale(q.shape[-1]))


def _probs(q, k, causal):
    """Attention probabilities and the causal mask (None when not causal)."""
    scores = q @ k.mT * _scale(q.shape[-1])
    keep = None
    if causal:
        keep = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, -math.inf)
    return torch.softmax(scores, -1), keep


def _forward(ctx, q, k, v, causal):
    ctx.save_for_backward(q, k, v)
    return (_probs(upcast(q), upcast(k), causal)[0] @ upcast(v)).to(q.dtype)


def _backward(ctx, grad, causal):
    q, k, v = ctx.saved_tensors
    if grad.numel() == 0:  # no output (e.g. e == 0): zero gradients, even if scores overflowed
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    qf, kf, vf, g = upcast(q), upcast(k), upcast(v), upcast(grad)
    p, keep = _probs(qf, kf, causal)
    dp = g @ vf.mT
    ds = softmax_jvp_t(p, dp) * _scale(q.shape[-1])
    if keep is not None:  # masked scores get no gradient, even from a row that overflowed to NaN
        ds = ds.masked_fill(~keep, 0)
    return (ds @ kf).to(q.dtype), (ds.mT @ qf).to(k.dtype), (p.mT @ g).to(v.dtype)


@fg.register(
    reference=_attention_torch,
    jax_reference=_attention_jax,
    # Activations, not arbitrary floats: with |q.k| in the thousands softmax is one-hot and the
    # gradients cancel catastrophically in any formula, so differences there say nothing.
    inputs=[
        fg.tensor("b s d", low=-8, high=8),
        fg.tensor("b t d", low=-8, high=8),
        fg.tensor("b t e", low=-8, high=8),
    ],
    precision="fused",
)
class ScaledDotProductAttention(Function):
    """softmax(q k^T / sqrt(d)) v; queries and keys may differ in number (s vs t)."""

    @staticmethod
    def forward(ctx, q, k, v):
        return _forward(ctx, q, k, v, causal=False)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad, causal=False)


@fg.register(
    reference=lambda q, k, v: _attention_torch(q, k, v, causal=True),
    jax_reference=lambda q, k, v: _attention_jax(q, k, v, causal=True),
    inputs=[
        fg.tensor("b s d", low=-8, high=8),
        fg.tensor("b s d", low=-8, high=8),
        fg.tensor("b s e", low=-8, high=8),
    ],
    precision="fused",
)
class CausalAttention(Function):
    """Causal self-attention: query i attends to keys j <= i (masked with -inf before softmax)."""

    @staticmethod
    def forward(ctx, q, k, v):
        return _forward(ctx, q, k, v, causal=True)

    @staticmethod
    def backward(ctx, grad):
        return _backward(ctx, grad, causal=True)
