"""`fuzzgrad.engine.diagnose`: a one-element reduction is kept only when it fails the same way (a
mismatch at the same output), not when slicing some inputs broke the call, and neither the
reduction nor a factor's simplification leaves what the target's inputs can produce."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fuzzgrad.strategies import Case, CotangentRecipe, Values
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine.diagnose import diagnose, reduce_to_element
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.registry.discovery import load_targets
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


# -- what is reported is what the user's inputs can produce (issue 12) -------------------------


def _cos_sign_flip():
    """The corpus's cos whose backward forgot the minus sign: wrong at every element."""
    corpus = Path(__file__).parent / "corpus" / "buggy.py"
    (target,) = load_targets([str(corpus)], names=["CosSignFlip"])
    return target


def _vjp_failure(inputs, name):
    cos = _cos_sign_flip()
    target = make_target(cos.function, reference=cos.reference, inputs=inputs, name=name)
    result = fuzz_target(target, max_examples=60, derandomize=True, properties=["vjp"])
    (failure,) = result.failures
    return failure


def test_a_failure_is_cut_to_one_element_only_where_the_spec_allows_it():
    assert _vjp_failure([fg.tensor("m n")], "free").case.args[0].shape == (1, 1)
    assert _vjp_failure([fg.tensor("m n>=3")], "bounded").case.args[0].shape == (1, 3)


def test_a_strategy_drawing_n_at_least_3_is_never_reported_on_a_1x1_input():
    squares = st.integers(3, 5).flatmap(lambda n: st.tuples(fg.tensor(f"{n} {n}")))
    assert _vjp_failure(squares, "strategy").case.args[0].shape == (3, 3)


class NegativeWrong(Function):
    """2 x, whose gradient is wrong (3) for negative x below float64."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        wrong = (x < 0) & (x.dtype != torch.float64)
        return g * torch.where(wrong, 3.0, 2.0).to(g.dtype)


@pytest.mark.parametrize(
    "spec, dtypes, named",
    [
        (fg.tensor(), None, {"sign", "dtype"}),
        (fg.tensor(low=-3.0, high=-1.0), None, {"dtype"}),  # |x| is outside [-3, -1]
        (fg.tensor(), [torch.float32], {"sign"}),  # float64 is outside the target's dtypes
        (fg.tensor(dtypes=[torch.float32, torch.float16]), None, {"sign"}),
    ],
    ids=["free", "bounded", "float32-target", "float32-input"],
)
def test_a_simplification_outside_the_spec_is_not_tried(spec, dtypes, named):
    target = make_target(
        NegativeWrong, reference=lambda x: 2 * x, inputs=[spec], dtypes=dtypes, name="neg"
    )
    gen = torch.Generator().manual_seed(0)
    x = (-1.5 - torch.rand(3, generator=gen, dtype=torch.float64)).to(torch.float32)
    case = _case([x], torch.ones(3, dtype=torch.float32))
    case.dtype = torch.float32
    _, factors = diagnose(target, "vjp", case)
    assert set(factors) == named
