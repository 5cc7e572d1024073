"""Correct Functions, part 4: the twins of `buggy_kinds` (the argument kinds of issue 27)."""

import importlib

import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus import _kinds
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _kinds = importlib.import_module("_kinds")


@fg.register(**_kinds.CLAMPED_LOG, dtypes=_kinds.ALL_FLOATS)
class ClampedLog(Function):
    """log(max(x, 64 eps)) with eps of x's dtype, forward and backward alike. Without the
    case's dtype in the reference it could only be registered for float64."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.clamp(x, min=_kinds.tiny(x.dtype)).log()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        floor = _kinds.tiny(x.dtype)
        return g / torch.clamp(x, min=floor) * (x >= floor)


@fg.register(reference=lambda z: z * z, jax_reference=lambda z: z * z, dtypes=_kinds.COMPLEX)
class ComplexSquareResolved(Function):
    """z*z by a kernel that reads z's storage after resolving a lazy conjugate."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return _kinds.square_from_parts(_kinds.raw_storage(z.resolve_conj()))

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * 2 * z.conj()


@fg.register(**_kinds.KRON)
class KronSolve(Function):
    """x = (A kron B)^-1 rhs, rhs of p*q rows (a size expression in its shape string)."""

    @staticmethod
    def forward(ctx, a, b, rhs):
        x = _kinds.kron_solve(a, b, rhs)
        ctx.save_for_backward(a, b, x)
        return x

    @staticmethod
    def backward(ctx, g):
        a, b, x = ctx.saved_tensors
        return _kinds.kron_solve_grads(a, b, x, g)


@fg.register(**_kinds.VERSINE)
class VersineRatio(Function):
    """(1 - cos x) / x^2 whose backward uses the series near 0 (stable in float32)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _kinds.versine_ratio(x, torch.where, torch.cos, torch.abs)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * _kinds.versine_ratio_grad(x)
