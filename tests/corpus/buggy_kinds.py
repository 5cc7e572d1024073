"""Planted bugs, part 5: the argument kinds of issue 27. Each needs a kind of argument fuzzgrad
draws: the case's dtype given to the reference, a lazy conjugate view, a size that is a product
of two others, small magnitudes inside ``low=``/``high=``. See `correct_kinds` for the twins
and `buggy` for the meaning of ``planted``."""

import importlib

import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus import _kinds
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _kinds = importlib.import_module("_kinds")


@fg.register(
    **_kinds.CLAMPED_LOG,
    dtypes=_kinds.ALL_FLOATS,
    planted={
        "property": "vjp",
        "bug_class": "a dtype-dependent clamp that the backward takes at another dtype",
        "needs": "dtype:float16",
    },
)
class ClampedLogFloat32Floor(Function):
    """log(max(x, 64 eps)) with eps of x's dtype, whose backward computes half inputs in float32
    and takes the floor of that dtype: at half precision, x between the two floors gets 1/x
    instead of 0."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.clamp(x, min=_kinds.tiny(x.dtype)).log()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        floor = _kinds.tiny(wide.dtype)  # the planted bug: x.dtype
        return (g / torch.clamp(wide, min=floor) * (wide >= floor)).to(x.dtype)


@fg.register(
    reference=lambda z: z * z,
    jax_reference=lambda z: z * z,
    dtypes=_kinds.COMPLEX,
    planted={
        "property": "forward",
        "bug_class": "a kernel reading raw storage ignores the conjugate bit",
        "needs": "conj_view",
    },
)
class ComplexSquareRawStorage(Function):
    """z*z by a kernel that reads z's storage directly (as a data pointer does), never resolving
    a lazy conjugate: on ``z.conj()`` it squares the conjugate."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return _kinds.square_from_parts(_kinds.raw_storage(z))  # the planted bug: resolve_conj()

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * 2 * z.conj()


@fg.register(
    **_kinds.KRON,
    planted={
        "property": "vjp",
        "bug_class": "a Kronecker solve's backward weights one factor's share by A^T, not A",
        "needs": "none",
        "max_elements": 24,
    },
)
class KronSolveTransposedWeight(Function):
    """x = (A kron B)^-1 rhs, rhs of p*q rows, whose backward weights B's share of -r x^T by
    A^T instead of A: B's gradient is wrong once A is a non-symmetric matrix (p >= 2)."""

    @staticmethod
    def forward(ctx, a, b, rhs):
        x = _kinds.kron_solve(a, b, rhs)
        ctx.save_for_backward(a, b, x)
        return x

    @staticmethod
    def backward(ctx, g):
        a, b, x = ctx.saved_tensors
        return _kinds.kron_solve_grads(a, b, x, g, a_in_b_share=a.mT)  # the planted bug: a


@fg.register(
    **_kinds.VERSINE,
    planted={
        "property": "vjp",
        "bug_class": "a wrong Taylor coefficient in a small-angle branch",
        "needs": "values",
    },
)
class VersineRatioSmallAngleSlip(Function):
    """(1 - cos x) / x^2 whose backward takes a small-angle branch below |x| < 1e-4 with the
    derivative of 1/2 - x^2/12 (the series of (1 - cos x) / x^2 has x^2/24). Reached only with
    magnitudes below 1e-4 inside low=-pi, high=pi (no hand-written scale list)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _kinds.versine_ratio(x, torch.where, torch.cos, torch.abs)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        small = -x / 6  # the planted bug: -x / 12
        return g * torch.where(x.abs() < 1e-4, small, _kinds.versine_ratio_grad(x))
