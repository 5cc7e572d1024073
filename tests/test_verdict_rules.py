"""The verdict's excuses at their edges (issue #24): each forgives a correct Function on an input
that looked wrong before it, and still fails a planted bug on the same input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fuzzgrad.engine.replay import replay
from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.oracles.numerical import element_estimates
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.registry.target import make_target
from fuzzgrad.verdict.differences import AMBIGUOUS, FAIL, KINK, PASS, by_differences

CORPUS = Path(__file__).parent / "corpus"


CORRECT = {t.name: t for t in load_targets([str(CORPUS / "correct_verdict.py")])}
BUGGY = {t.name: t for t in load_targets([str(CORPUS / "buggy_verdict.py")])}
F16 = torch.float16
F64 = torch.float64
ONE = torch.ones(1, dtype=F64)


def h16(*values):
    return torch.tensor(values, dtype=F16)


# -- calibration at the dtype: forward mode --------------------------------------------------------

#: x * y in float16 whose jvp (tangents of direction seed 0: 0.3923, -0.2235) is -0.0883 exactly,
#: a difference of products of ~275 that float16 rounds to -0.25, as the reference math does.
JVP_CANCELLING = [h16(1230.0), h16(700.5)]


def test_a_half_precision_jvp_is_allowed_the_references_error_at_that_dtype():
    args = JVP_CANCELLING
    assert replay(CORRECT["MulJvpHalf"], "forward_ad", args, [0, 1], [h16(1.0)]) == 0


def test_a_jvp_from_float8_copies_still_fails_on_the_same_input():
    args = JVP_CANCELLING
    assert replay(BUGGY["MulJvpHalfFloat8Saved"], "forward_ad", args, [0, 1], [h16(1.0)]) == 1


# -- a NaN or inf where the exact result is finite -----------------------------------------------

F32 = torch.float32


def t32(*values):
    return torch.tensor(values, dtype=F32)


#: hypot(0, 1e-30) in float32: the naive references' own float32 runs square 1e-30 to 0 and give
#: 0/0 and 1e-30/0, but the float64 reference, and the exact gradient, are (0, 1).
TINY = [t32(0.0), t32(1e-30)]


def test_a_nan_gradient_from_an_underflowed_square_fails_though_the_reference_does_it_too():
    assert replay(BUGGY["HypotUnderflowingBackward"], "vjp", TINY, [0, 1], [t32(1.0)]) == 1
    assert replay(CORRECT["HypotScaled"], "vjp", TINY, [0, 1], [t32(1.0)]) == 0


def test_a_nan_from_an_overflowed_intermediate_at_the_dtype_keeps_its_excuse():
    # x * exp(-y) at x = 0, y = -13.5 in float16: exp(13.5) overflows float16, 0 * inf is NaN,
    # where the exact value is 0; no input is past the overflow size (64), but the reference
    # at the dtype overflowed an intermediate: the overflow regime, not an underflow
    (seed,) = [t for t in load_targets(["fuzzgrad.targets.seed"]) if t.name == "MyElementWise"]
    args = [h16(0.0), h16(-13.5)]
    assert replay(seed, "forward", args, [0, 1], [h16(1.0)]) == 0
    assert replay(seed, "vjp", args, [0, 1], [h16(1.0)]) == 0


def _attention(q, k, v):
    return torch.softmax(q @ k.mT, -1) @ v


def test_an_overflow_inside_the_references_backward_keeps_its_excuse():
    # The README's attention in float16 with q = 0: every forward value is small, but the
    # backward's grad_output @ v.T is 2000 * 40 = 80000, past float16's 65504: torch's own
    # softmax backward then makes NaN where the exact gradient is finite. Only a watch that sees
    # the operators autograd runs for the backward tells that overflow from an underflow.
    from fuzzgrad.verdict.overflow import overflow_watch

    target = make_target(_attention, reference=_attention, name="attention_half")
    q = torch.zeros(1, 1, 1, dtype=F16)
    k = torch.tensor([[[1.0], [2.0]]], dtype=F16)
    v = torch.tensor([[[40.0], [-40.0]]], dtype=F16)
    cotangent = torch.full((1, 1, 1), 2000.0, dtype=F16)
    watch = overflow_watch()
    leaves = [a.clone().requires_grad_() for a in (q, k, v)]
    with watch:
        out = _attention(*leaves)
        (grad_q,) = torch.autograd.grad(out, leaves[0], cotangent)
    assert watch.overflowed and not bool(out.isinf().any())
    assert bool(grad_q.isnan().any())
    assert replay(target, "vjp", [q, k, v], [0, 1, 2], [cotangent]) == 0
    # ... and a cotangent that overflows nothing is judged as before: no excuse is needed
    assert replay(target, "vjp", [q, k, v], [0, 1, 2], [cotangent / 100]) == 0
    small = overflow_watch()
    with small:
        torch.autograd.grad(_attention(*leaves), leaves[0], cotangent / 100)
    assert not small.overflowed


def test_nonfinite_ok_names_the_properties_that_accept_it():
    import dataclasses

    buggy = BUGGY["HypotUnderflowingBackward"]
    options = {**buggy.options, "nonfinite_ok": ("vjp",)}
    excused = dataclasses.replace(buggy, options=options)
    assert replay(excused, "vjp", TINY, [0, 1], [t32(1.0)]) == 0


@pytest.mark.parametrize("value", ["vjp", ("vjp", "no_such_property")])
def test_nonfinite_ok_is_validated_like_properties(value):
    with pytest.raises(InvalidRegistration, match="nonfinite_ok"):
        make_target(
            CORRECT["HypotScaled"].function,
            name="bad",
            reference=CORRECT["HypotScaled"].reference,
            options={"nonfinite_ok": value},
        )


# -- finite differences with their own error bound -----------------------------------------------


def test_finite_differences_extrapolate_and_bound_their_error():
    (est,) = element_estimates(torch.exp, [torch.tensor([2.0], dtype=F64)], [0], [ONE], [(0, 0)])
    assert est is not None and est.smooth and not est.kink
    assert abs(est.value - math.exp(2.0)) <= est.error + 1e-9 and est.error < 1e-5


def test_estimates_that_disagree_with_each_other_judge_nothing():
    # a ripple at the scale of the steps: central differences at h, h/2, h/4 disagree
    x = torch.tensor([1.0], dtype=F64)

    def rippled(a):
        return a + 1e-8 * torch.sin(a / 1e-6)

    (est,) = element_estimates(rippled, [x], [0], [ONE], [(0, 0)])
    assert est is not None and not est.smooth
    assert by_differences(1.0, est, 1e-9) in (PASS, AMBIGUOUS)
    assert by_differences(1.5, est, 1e-9) == FAIL


def test_a_kink_is_told_from_curvature():
    zero = torch.tensor([0.0], dtype=F64)
    (kink,) = element_estimates(torch.abs, [zero], [0], [ONE], [(0, 0)])
    (curve,) = element_estimates(torch.square, [zero], [0], [ONE], [(0, 0)])
    assert kink is not None and kink.kink and sorted((kink.left, kink.right)) == [-1.0, 1.0]
    assert curve is not None and not curve.kink and curve.smooth
    assert by_differences(0.3, kink, 1e-9) == KINK and by_differences(1.5, kink, 1e-9) == FAIL


def test_the_message_names_the_references_that_were_nan(capsys):
    # hypot at (0, 0): both references give NaN; the Function's NaN is at a kink (ambiguous),
    # a finite value outside the one-sided differences (there, -1 and 1) fails
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return torch.hypot(x, y)

        @staticmethod
        def backward(ctx, grad):
            return grad * 3, grad * 3

    zero = torch.zeros(1, dtype=F64)
    source = CORRECT["HypotScaled"]
    for jax, named in ((True, "and so does the JAX reference"), (False, "no JAX reference")):
        target = make_target(
            Wrong,
            name="HypotWrong",
            reference=source.reference,
            jax_reference=source.jax_reference if jax else None,
        )
        capsys.readouterr()
        assert replay(target, "vjp", [zero, zero.clone()], [0, 1], [ONE]) == 1
        message = capsys.readouterr().out
        assert named in message and "a kink" in message and "smooth" not in message, message
    assert replay(source, "vjp", [zero, zero.clone()], [0, 1], [ONE]) == 0


# -- ties ----------------------------------------------------------------------------------------

TIES = [torch.zeros(2, 4, dtype=F64)]
TIE_CTS = [torch.tensor([0.7, -1.3], dtype=F64)]


def test_another_subgradient_at_a_tie_is_ambiguous_not_a_failure():
    assert replay(CORRECT["RowMinFirstIndex"], "vjp", TIES, [0], TIE_CTS) == 0


def test_a_gradient_outside_the_ties_subgradients_still_fails():
    assert replay(BUGGY["RowMinEveryTie"], "vjp", TIES, [0], TIE_CTS) == 1


# -- every excuse is a named rule, counted and reported -------------------------------------------


def test_every_rule_has_a_docstring_and_speaks_somewhere():
    import re

    import fuzzgrad
    from fuzzgrad.verdict import rules

    assert all(len(rule.doc) > 60 and rule.name == name for name, rule in rules.RULES.items())
    package = Path(fuzzgrad.__file__).parent
    source = "".join(p.read_text() for p in package.rglob("*.py") if p.name != "rules.py")
    constants = {n for n in dir(rules) if isinstance(getattr(rules, n), str) and n.isupper()}
    assert len(constants) == len(rules.RULES)
    for name in constants:  # each rule is applied (and counted) by name somewhere
        assert re.search(rf"\b{name}\b", source), name


def test_excuses_are_counted_by_rule_and_shown_in_the_reports(tmp_path):
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.report.html import _target_card
    from fuzzgrad.report.markdown import summary_markdown

    result = fuzz_target(CORRECT["HypotScaled"], max_examples=60, derandomize=True)
    record = result.to_json()
    assert not record["failures"] and record["excused"].get("kink", 0) > 0, record["excused"]
    assert f"kink {record['excused']['kink']}" in summary_markdown({"targets": [record]})
    assert any("excused: " in m and "kink" in m for m in _target_card(record)["meta"])


def test_a_subnormal_input_gets_a_step_that_does_not_round_to_zero():
    x = torch.tensor([1e-320], dtype=F64)
    (est,) = element_estimates(lambda a: 3 * a, [x], [0], [ONE], [(0, 0)])
    assert est is not None and abs(est.value - 3.0) < 1e-6


# -- calibration at the dtype: vmap ---------------------------------------------------------------


def _triple_product(scale: float):
    """x * y * z, multiplied as (x * y) * z per sample and as x * (y * z) (times ``scale``)
    under vmap: in float16 the two orders differ by a few ulps, as the reference math errs."""

    class TripleProduct(torch.autograd.Function):
        @staticmethod
        def forward(x, y, z):
            return (x * y) * z

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx, grad):
            x, y, z = ctx.saved_tensors
            return grad * y * z, grad * x * z, grad * x * y

        @staticmethod
        def vmap(info, in_dims, x, y, z):
            x, y, z = (t if d is None else t.movedim(d, 0) for t, d in zip((x, y, z), in_dims))
            return x * (y * z) * scale, 0

    return make_target(
        TripleProduct,
        name=f"TripleProduct{scale}",
        reference=lambda x, y, z: x * y * z,
        options={"properties": ["vmap"]},
    )


def test_vmap_in_half_precision_is_allowed_the_references_error_at_that_dtype():
    # (x*y)*z = 3286 and x*(y*z) = 3290 in float16, exactly 3287.94: 4 apart, beyond float16's
    # default tolerance (3.3), within what the reference errs by there
    args = [h16(-10.828125), h16(-11.9296875), h16(25.453125)]
    assert replay(_triple_product(1.0), "vmap", args, [0, 1, 2], [h16(1.0)]) == 0
    assert replay(_triple_product(1.01), "vmap", args, [0, 1, 2], [h16(1.0)]) == 1


def test_the_overflow_watch_imports_what_torch_needs_outside_the_examples_time():
    """The first dispatch mode of a process imports torch._dynamo (a second): with the
    example's timer paused, so that it is not taken for the example hanging (a loaded machine's
    first low-precision case once timed out on it). In a fresh process, under a 0.2 s alarm."""
    import subprocess
    import sys

    script = (
        "import signal, sys, time, torch\n"
        "from fuzzgrad.verdict.overflow import overflow_watch\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "def fire(*_): raise SystemExit('the alarm fired: the import was timed')\n"
        "signal.signal(signal.SIGALRM, fire)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.2)\n"
        "with overflow_watch():\n"
        "    torch.ones(2, dtype=torch.float16).double().detach()\n"
        "left = signal.setitimer(signal.ITIMER_REAL, 0)[0]\n"
        "assert 'torch._dynamo' in sys.modules and 0 < left <= 0.2, left\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
