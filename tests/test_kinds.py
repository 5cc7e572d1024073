"""The argument kinds of issue 27: the case's dtype given to a reference that asks for it, lazy
conjugate views of complex inputs and cotangents (drawn, diagnosed, replayed). The planted bugs
and their twins are in tests/corpus/buggy_kinds.py and correct_kinds.py."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.oracles.case_dtype import takes_dtype, with_case_dtype
from fuzzgrad.registry.target import make_target
from fuzzgrad.report.reproducer import decode_tensor, encode_tensor
from fuzzgrad.strategies import Layout, arrange, cases


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
