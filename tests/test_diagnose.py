"""`fuzzgrad.engine.diagnose.reduce_to_element`: a one-element reduction is kept only when it fails
the same way (a mismatch at the same output), not when slicing some inputs broke the call."""

from __future__ import annotations

import torch
from fuzzgrad.strategies import Case, CotangentRecipe, Values
from torch.autograd import Function

from fuzzgrad.engine.diagnose import reduce_to_element
from fuzzgrad.registry.target import make_target
from fuzzgrad.verdict.compare import Mismatch

EQ = "bi,oij,bj->bo"


class _BilinearWrongX1(Function):
    @staticmethod
    def forward(ctx, x1, x2, w):
        ctx.save_for_backward(x1, x2, w)
        return torch.einsum(EQ, x1, w, x2)

    @staticmethod
    def backward(ctx, g):
        x1, x2, w = ctx.saved_tensors
        return (
            2 * torch.einsum("bo,oij,bj->bi", g, w, x2),  # should be 1x
            torch.einsum("bo,oij,bi->bj", g, w, x1),
            torch.einsum("bo,bi,bj->oij", g, x1, x2),
        )


def _case(args, ct):
    return Case(
        tuple(args),
        (True,) * len(args),
        (CotangentRecipe(Values(seed=0)),),
        (None,) * len(args),
        torch.float64,
        "cpu",
        {"cotangents": [ct], "wrt": list(range(len(args)))},
    )


def test_a_reduction_that_breaks_the_call_is_not_kept():
    """x1 (4, 17) and x2 (4, 2) share b but not their last dim: slicing x1 alone at (3, 13)
    leaves b inconsistent, and the call then fails differently (einsum broadcasts; the double
    backward raises on the cotangent's shape). Found on the built-in Bilinear."""
    target = make_target(_BilinearWrongX1, reference=lambda a, b, w: torch.einsum(EQ, a, w, b))
    gen = torch.Generator().manual_seed(0)
    args = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((4, 17), (4, 2))]
    args.append(torch.randn(15, 17, 2, generator=gen, dtype=torch.float64))
    case = _case(args, torch.randn(4, 15, generator=gen, dtype=torch.float64))
    mismatch = Mismatch("hvp[input=0]", "differs", index=(3, 13))
    kept, reduced = reduce_to_element(target, "second_order", case, mismatch)
    assert reduced is None and kept is case


def test_an_elementwise_failure_is_still_reduced_to_one_element():
    class DoubleWrong(Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, g):
            return g  # should be 2 x g

    target = make_target(DoubleWrong, reference=lambda x: x * x, name="double_wrong")
    x = torch.linspace(1, 2, 12, dtype=torch.float64).reshape(3, 4)
    case = _case([x], torch.ones(3, 4, dtype=torch.float64))
    kept, reduced = reduce_to_element(
        target, "vjp", case, Mismatch("grad[input=0]", "differs", index=(2, 1))
    )
    assert reduced is not None and kept.args[0].shape == (1, 1)
