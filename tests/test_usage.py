"""Functions used the way their authors use them (issue #24): no false alarm where correct code
is written as torch's own tests and AMP training write it, and no blind spot there either.
The corpus pairs are in tests/corpus/correct_usage.py and buggy_usage.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from corpus._usage import exp_backward, matmul_amp, numpy_exp_

import fuzzgrad as fg
from fuzzgrad.properties.case import WRITES_EXPANDED
from fuzzgrad.properties.checker import Checker
from fuzzgrad.properties.grad_meta import SUMMED_SHAPE, sums_to
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import Case, CotangentRecipe
from fuzzgrad.verdict.judge import Discard

CORPUS = Path(__file__).parent / "corpus"
NumpyExp_ = numpy_exp_(exp_backward)


@pytest.mark.parametrize("requires_grad", [True, False])
def test_an_expanded_input_an_in_place_function_writes_is_a_counted_discard(requires_grad):
    """numpy writes into an expanded input without a word (each element several times), then
    autograd refuses it (a leaf that requires grad) or fuzzgrad sees the input returned: the
    input is restored through its one stored slice and the case discarded, not failed."""
    target = make_target(NumpyExp_, reference=torch.exp, name="numpy_exp_")
    x = torch.tensor([0.5, -1.0]).reshape(2, 1).expand(2, 3)
    before = x.clone()
    case = Case((x,), (requires_grad,), (CotangentRecipe(),), dtype=torch.float32)
    checker = Checker(target, ["forward", "vjp", "purity"])
    with pytest.raises(Discard, match="expanded"):
        checker.check(case)
    assert torch.equal(x, before)
    assert checker.stats.discards == {WRITES_EXPANDED: 1}


@pytest.mark.parametrize(
    ("grad", "shape", "summed"),
    [
        ((3, 1), (), True),  # a 0-d parameter's gradient per row
        ((1,), (), True),
        ((4, 2), (2,), True),  # leading dims summed
        ((2,), (1,), True),  # a broadcast dim summed
        ((0,), (1,), True),  # to zeros
        ((1,), (2,), False),  # autograd raises "invalid gradient"
        ((2, 1), (2,), False),
        ((), (1,), False),
        ((3,), (0,), False),
    ],
)
def test_sums_to_is_what_autograd_sums(grad, shape, summed):
    assert sums_to(grad, shape) is summed
    leaf = torch.zeros(shape, requires_grad=True)
    out = _ReturnsGrad.apply(leaf, torch.ones(grad))
    if summed:
        out.sum().backward()
        assert leaf.grad.shape == leaf.shape
    else:
        with pytest.raises(RuntimeError, match="invalid gradient"):
            out.sum().backward()


class _ReturnsGrad(torch.autograd.Function):
    """Its backward returns ``g`` as the gradient of ``x``, whatever its shape."""

    @staticmethod
    def forward(ctx, x, g):
        ctx.g = g
        return x.clone()

    @staticmethod
    def backward(ctx, _):
        return ctx.g, None


def test_a_gradient_autograd_sums_is_a_counted_note_not_a_failure():
    (target,) = [
        t for t in load_targets([str(CORPUS / "correct_usage.py")])
        if t.name == "ScaleByScalarRowGrads"
    ]  # fmt: skip
    target = make_target(target.fn, reference=target.reference, inputs=["b n", ""])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    s = torch.tensor(0.5, dtype=torch.float64)
    case = Case((x, s), (True, True), (CotangentRecipe(),), dtype=torch.float64)
    checker = Checker(target, ["vjp", "grad_meta"])
    checker.check(case)
    assert checker.stats.skipped[SUMMED_SHAPE] == 1
    assert checker.stats.checked["grad_meta"] == 1


def test_autocast_runs_the_backward_after_the_region_too(monkeypatch):
    """AMP recipes call ``loss.backward()`` after the autocast region: a backward without
    custom_bwd that mixes the forward's bfloat16 with float32 raises there, and passed when the
    backward ran inside the region only."""
    from fuzzgrad.properties import autocast

    target = make_target(
        matmul_amp(custom_bwd=False), reference=lambda x, w: x @ w, inputs=["m k", "k n"]
    )
    x, w = torch.linspace(-1, 1, 6).reshape(2, 3), torch.linspace(2, -1, 6).reshape(3, 2)
    case = Case((x, w), (True, True), (CotangentRecipe(),), dtype=torch.float32)
    with pytest.raises(AssertionError, match="backward after the region, the Function raised"):
        Checker(target, ["autocast"]).check(case)
    monkeypatch.setattr(autocast, "PLACEMENTS", ("inside",))
    Checker(target, ["autocast"]).check(case)
    fixed = make_target(
        matmul_amp(custom_bwd=True), reference=lambda x, w: x @ w, inputs=["m k", "k n"]
    )
    Checker(fixed, ["autocast"]).check(case)


@pytest.mark.parametrize("declared", [True, [0]])
def test_an_input_declared_written_in_place_is_never_drawn_expanded(declared):
    """``mutates_inputs`` says which inputs the Function writes: those are drawn in every
    layout but expanded; the others still are."""
    import random

    from fuzzgrad.engine.explore import FastData
    from fuzzgrad.strategies import cases, describe_layout

    target = make_target(
        lambda x, y: NumpyExp_.apply(x) * y,
        reference=lambda x, y: torch.exp(x) * y,
        inputs=[fg.tensor("m n"), fg.tensor("m n")],
        name="numpy_exp_",
        options={"mutates_inputs": declared},
    )
    drawn = [cases(target).do_draw(FastData(random.Random(seed))) for seed in range(300)]
    layouts = [[describe_layout(a) for a in case.args] for case in drawn]
    assert not any(first == "expanded" for first, _ in layouts)
    assert {"sliced", "transposed", "offset"} <= {first for first, _ in layouts}
    assert any(second == "expanded" for _, second in layouts) is (declared != True)  # noqa: E712


def test_mutates_inputs_names_arguments_or_says_what_it_takes():
    from fuzzgrad.errors import InvalidRegistration
    from fuzzgrad.strategies import cases

    target = make_target(
        NumpyExp_, reference=torch.exp, name="numpy_exp_", options={"mutates_inputs": [3]}
    )
    with pytest.raises(InvalidRegistration, match=r"mutates_inputs=\[0\]"):
        cases(target)


def test_torch_func_sums_a_gradient_autograd_sums():
    """Why `grad_meta` notes a summed shape rather than failing it, even for a Function that
    supports torch.func: its transforms sum a (b, 1) gradient of a 0-d input as autograd does
    (``reductify``). Should a torch release stop doing so, this says the rule must change."""
    from corpus.correct_usage import ScaleByScalarRowGradsVmap as Summed

    class Exact(Summed):
        @staticmethod
        def backward(ctx, g):
            x, s = ctx.saved_tensors
            return g * s, (g * x).sum()

    x = torch.linspace(-1, 2, 6, dtype=torch.float64).reshape(3, 2)
    s = torch.tensor(0.5, dtype=torch.float64)
    xs, ss = torch.stack([x, 2 * x]), torch.stack([s, -s])

    def transforms(fn):
        loss = lambda a, b: fn.apply(a, b).pow(2).sum()  # noqa: E731
        return (
            torch.func.jacrev(fn.apply, argnums=(0, 1))(x, s),
            torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(xs, ss),
            torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)), in_dims=(0, None))(xs, s),
        )

    for got, want in zip(transforms(Summed), transforms(Exact)):
        torch.testing.assert_close(got, want)
