"""The argument kinds of issue 27: the case's dtype given to a reference that asks for it, lazy
conjugate views of complex inputs and cotangents (drawn, diagnosed, replayed), size expressions
and variadic bounds, small magnitudes inside bounds, well-conditioned general matrices. The
planted bugs and their twins are in tests/corpus/buggy_kinds.py and correct_kinds.py."""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.oracles.case_dtype import takes_dtype, with_case_dtype
from fuzzgrad.registry.target import make_target
from fuzzgrad.report.reproducer import decode_tensor, encode_tensor
from fuzzgrad.strategies import Layout, arrange, cases, shapes


class _Exp(Function):
    @staticmethod
    def forward(ctx, x):
        out = x.exp()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * out


def test_only_a_keyword_only_dtype_is_given_the_case_dtype():
    def keyword(x, *, dtype):
        return dtype

    def positional(x, dtype=None):
        return dtype

    assert takes_dtype(keyword) and not takes_dtype(positional) and not takes_dtype(torch.exp)
    assert with_case_dtype(keyword, torch.float16)(1.0) is torch.float16
    assert with_case_dtype(keyword, torch.float16) is with_case_dtype(keyword, torch.float16)
    assert with_case_dtype(positional, torch.float16) is positional
    assert with_case_dtype(torch.exp, torch.float16) is torch.exp


def test_the_reference_receives_the_case_dtype_and_computes_in_float64():
    seen: set[tuple[torch.dtype, torch.dtype]] = set()

    def reference(x, *, dtype):
        seen.add((dtype, x.dtype))
        return x.exp()

    dtypes = [torch.float64, torch.float32, torch.float16]
    target = make_target(_Exp, reference=reference, dtypes=dtypes, name="exp_dtype")
    result = fuzz_target(target, max_examples=30, derandomize=True, properties=["vjp"])
    assert not result.failures and result.error is None
    assert {d for d, _ in seen} == set(dtypes)
    assert (torch.float16, torch.float64) in seen  # the float64 oracle, told the case's dtype


def test_a_conjugate_layout_holds_the_same_values_with_the_bit_set():
    z = torch.randn(3, 4, dtype=torch.complex128)
    for kind in ("contiguous", "transposed", "sliced", "offset", "expanded"):
        view = arrange(z, Layout(kind, 1, conj=True))
        assert view.is_conj(), kind
        plain = arrange(z, Layout(kind, 1))
        torch.testing.assert_close(view.resolve_conj(), plain, equal_nan=True)
    x = torch.randn(3)
    assert not arrange(x, Layout("contiguous", conj=True)).is_conj()  # real: ignored


def test_a_reproducer_keeps_the_conjugate_bit():
    z = arrange(torch.randn(2, 3, dtype=torch.complex64), Layout("sliced", 0, conj=True))
    back = decode_tensor(encode_tensor(z))
    assert back.is_conj() and back.stride() == z.stride()
    torch.testing.assert_close(back.resolve_conj(), z.resolve_conj(), equal_nan=True)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.data())
def test_real_calls_never_draw_conjugate_views(data):
    real = make_target(_Exp, reference=torch.exp, name="exp", inputs=[fg.tensor()])
    plain = data.draw(cases(real))
    assert not any(a.is_conj() for a in plain.args)
    assert not any(c.layout.conj for c in plain.cotangents)


def test_conjugate_views_are_drawn_for_inputs_and_cotangents():
    target = make_target(
        _Exp, reference=torch.exp, dtypes=[torch.complex128], name="cexp", inputs=[fg.tensor()]
    )
    seen = {"input": 0, "cotangent": 0}

    @settings(max_examples=80, derandomize=True, deadline=None)
    @given(cases(target))
    def draw(case):
        seen["input"] += case.args[0].is_conj()
        seen["cotangent"] += case.cotangents[0].layout.conj
        like = torch.zeros(2, dtype=torch.complex128)
        assert case.cotangent_for(0, like).is_conj() == case.cotangents[0].layout.conj

    draw()
    assert seen["input"] > 0 and seen["cotangent"] > 0, seen


# -- size expressions, variadic bounds, sizes= for strategy entries -------------------------------


def test_size_expressions_and_variadic_bounds_parse():
    from fuzzgrad.registry.grammar import evaluate, parse_shape

    pq, k = parse_shape("p*q k")
    assert pq.expr == (("p", "q"),) and pq.expr_names == ("p", "q") and k.name == "k"
    (odd,) = parse_shape("2*n+1")
    assert evaluate(odd.expr or (), {"n": 3}) == 7 and str(odd) == "2*n+1"
    batch, _ = parse_shape("*batch>=1 n")
    assert batch.variadic and [str(b) for b in batch.bounds] == ["*batch>=1"]


@pytest.mark.parametrize(
    "shape, says",
    [("2*3 n", "has no name"), ("_*2", "'_' has no size"), ("*b>=n k", "number bounds")],
)
def test_a_bad_size_expression_says_what_to_write(shape, says):
    from fuzzgrad.errors import ShapeSpecError
    from fuzzgrad.registry.grammar import parse_shape

    with pytest.raises(ShapeSpecError, match=re.escape(says)):
        parse_shape(shape)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(shapes(["p p", "q q", "p*q k", "n+1 n", "*batch>=1 m"]))
def test_drawn_shapes_compute_their_expressions_and_keep_variadic_bounds(drawn):
    (p, _), (q, _), (pq, _), (n1, n), (*batch, _) = drawn
    assert pq == p * q and n1 == n + 1
    assert all(s >= 1 for s in batch)


def test_match_shapes_checks_an_expression_once_its_names_are_known():
    from fuzzgrad.strategies._shapes import match_shapes

    plan = shapes(["p*q k", "p p", "q q"])
    assert match_shapes(plan, [(6, 1), (2, 2), (3, 3)]) == {"k": 1, "p": 2, "q": 3}
    assert "where p*q is 6" in str(match_shapes(plan, [(5, 1), (2, 2), (3, 3)]))


def test_sizes_bound_a_name_only_a_strategy_entry_uses():
    spec = st.tuples(fg.tensor("d")).map(lambda t: t[0])
    target = make_target(
        lambda x, y: x * y.sum(),
        reference=lambda x, y: x * y.sum(),
        inputs=[fg.tensor("n"), spec],
        options={"sizes": {"d": (5, 6)}},
        name="sized_inside",
    )
    seen = set()

    @settings(max_examples=40, derandomize=True, deadline=None)
    @given(cases(target))
    def draw(case):
        seen.add(case.args[1].shape[0])

    draw()
    assert seen <= {5, 6} and seen, seen


# -- value scales and well-conditioned matrices ---------------------------------------------------


def test_a_small_scale_zooms_a_bounded_fill_in_on_zero():
    from fuzzgrad.strategies import Values
    from fuzzgrad.strategies._values import fill

    wide = fill((1000,), torch.float32, "cpu", Values(seed=1), -math.pi, math.pi)
    assert wide.abs().min() > 1e-4 and wide.abs().max() > 3.0  # uniform: nothing tiny
    tiny = fill((1000,), torch.float32, "cpu", Values(seed=1, scale=1e-6), -math.pi, math.pi)
    assert tiny.abs().max() <= math.pi * 1e-6 and (tiny < 0).any() and (tiny > 0).any()
    above = fill((100,), torch.float64, "cpu", Values(seed=1, scale=1e-3), 2.0, 3.0)
    assert above.min() >= 2.0 and above.max() <= 2.0 + 1e-3  # near the bound nearest zero


def test_well_conditioned_matrices_are_general_and_capped():
    from fuzzgrad.strategies._structures import impose, violation

    x = torch.randn(4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = impose("well_conditioned", x, max_cond=10.0)
    s = torch.linalg.svdvals(a)
    assert (s[..., 0] / s[..., -1]).max() <= 10.0 + 1e-9
    assert (a - a.mT).abs().max() > 0.1  # not symmetric
    assert violation("well_conditioned", a, max_cond=10.0) is None
    assert violation("well_conditioned", a * torch.tensor([1.0, 1, 1, 1, 1e-6]), max_cond=10.0)
    torch.testing.assert_close(impose("well_conditioned", torch.zeros(3, 3)), torch.eye(3))
    fg.tensor("n n", structure="well_conditioned", max_cond=1e3)  # accepted
