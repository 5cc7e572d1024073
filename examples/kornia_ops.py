"""kornia's two custom autograd Functions (https://github.com/kornia/kornia), fuzzed.

kornia 0.9.0 has only two `torch.autograd.Function`s, both private helpers:
``kornia.losses.focal._TargetLogSoftmax``, the target-class log-probability of the focal loss,
whose docstring states its math, ``log_softmax(where(valid, pred, 0), 1).gather(1, target)``;
and ``kornia.geometry.epipolar.essential._NullSpaceBasis``, an orthonormal basis of the four
right singular vectors of a ``(B, N, 9)`` design matrix with the smallest singular values. A basis
is not unique, so its projector ``V V^T`` is compared; for the 5-point case (``N = 5``, the case
its docstring singles out) that is the projector onto the null space of ``X``,
``I - X^T (X X^T)^-1 X``.

    pip install -e ".[examples]" && fuzzgrad fuzz examples/kornia_ops.py
"""

from __future__ import annotations

import torch
from _arrays import take, xp
from kornia.geometry.epipolar.essential import _NullSpaceBasis
from kornia.losses.focal import _TargetLogSoftmax

import fuzzgrad as fg

# --- the documented math --------------------------------------------------------------------


def target_log_softmax(pred, target):
    n = xp(pred)
    shifted = pred - n.amax(pred, axis=1, keepdims=True)
    log_prob = shifted - n.log(n.sum(n.exp(shifted), axis=1, keepdims=True))
    return take(log_prob, target)


def design(a, b):
    """``[I + a | b]``: of full rank and well conditioned for a positive definite ``a``."""
    n = xp(a)
    return n.concatenate([n.eye(a.shape[-1], dtype=a.dtype) + a, b], axis=-1)


def null_space_projector(a, b):
    """The projector onto the null space of the full-rank ``design(a, b)``."""
    n = xp(a)
    x = design(a, b)
    xt = n.swapaxes(x, -1, -2)
    return n.eye(x.shape[-1], dtype=x.dtype) - xt @ n.linalg.solve(x @ xt, x)


def basis_projector(a, b):
    """The projector onto the span of the basis `_NullSpaceBasis` returns for the design."""
    basis = _NullSpaceBasis.apply(design(a, b))[0]
    return basis @ basis.transpose(-1, -2)


# --- the registrations ----------------------------------------------------------------------
# The design matrix [I + a | b], a positive definite, has full rank, so the four smallest singular
# values (all 0) are apart from the fifth and the subspace is unique, as the Function needs; and
# it is well conditioned (b in [-1, 1]), as an SVD's accuracy needs.

fg.register(
    _TargetLogSoftmax,
    reference=lambda pred, target, valid: target_log_softmax(pred, target),
    jax_reference=lambda pred, target, valid: target_log_softmax(pred, target),
    inputs=[fg.tensor("b c"), fg.tensor("b 1", structure="index", high="c"), None],
)
fg.register(
    basis_projector,
    reference=null_space_projector,
    jax_reference=null_space_projector,
    inputs=[
        fg.tensor("b 5 5", structure="positive_definite", max_cond=10),
        fg.tensor("b 5 4", low=-1, high=1),
    ],
    dtypes=[torch.float64, torch.float32],  # the SVD has no half-precision kernels
    name="_NullSpaceBasis",
    xfail={
        "second_order": "K1: double backward is silently wrong: the backward uses S and V saved "
        "without a graph"
    },
)
