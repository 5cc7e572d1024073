"""One finding is one bug: two bugs of one property are two findings (each shrunk on its own,
with its own signature and reproducer, which replays that finding and no other); one bug under
several properties is one finding listing them; an exception of fuzzgrad's own code is an
internal error that costs no finding. The planted pairs are in tests/corpus/twobugs.py;
`bench/catch_rates.py --pairs` measures them over seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzgrad.engine.replay import run_reproducer
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.properties.base import PropertyFailure, failure_type
from fuzzgrad.properties.checker import Checker
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.common import failure_signature
from fuzzgrad.report.reproducer import read_reproducer
from fuzzgrad.verdict.identity import (
    argument_classes,
    kind_has,
    raised_by_user,
    raising_site,
    root_of,
)

CORPUS = Path(__file__).parent / "corpus"
PAIRS = load_targets([str(CORPUS / "twobugs.py")])
ONE_BUG = {t.name: t for t in load_targets([str(CORPUS / "onebug.py")])}
EXAMPLES = 150


def matching(failures, planted: str):
    return [f for f in failures if kind_has(f.kind, planted)]


@pytest.mark.parametrize("target", PAIRS, ids=[t.name for t in PAIRS])
def test_each_planted_bug_is_its_own_finding_with_its_own_reproducer(target, tmp_path):
    result = fuzz_target(target, max_examples=EXAMPLES, derandomize=True, report_dir=tmp_path)
    assert result.error is None, result.error
    kinds = [f.kind for f in result.failures]
    paths = set()
    for planted in target.options["planted_pair"]:
        found = matching(result.failures, planted)
        assert len(found) == 1, f"{planted!r}: {kinds}"
        (failure,) = found
        paths.add(failure.reproducer)
        data = read_reproducer(failure.reproducer)
        assert data["kind"] == failure.kind
        assert run_reproducer(data, failure.reproducer) == 1  # it replays its own bug
    assert len(paths) == len(target.options["planted_pair"])  # one file per finding
    signatures = {failure_signature(target.name, f.to_json()) for f in result.failures}
    assert len(signatures) == len(result.failures)
    for prop in target.options.get("planted_properties", ()):
        (failure,) = result.failures
        if Checker(target, [prop]).selected:
            assert prop in failure.properties, (prop, failure.properties)


def test_a_reproducer_replays_its_finding_and_no_other(tmp_path):
    (target,) = [t for t in PAIRS if t.name == "ModeScaleTwoModesWrong"]
    result = fuzz_target(target, max_examples=EXAMPLES, derandomize=True, report_dir=tmp_path)
    (reflect,) = matching(result.failures, "vjp grad[input=0] | mode='reflect'")
    data = read_reproducer(reflect.reproducer)
    data["root"] = "vjp grad[input=1]"  # another finding's root: this input does not show it
    assert run_reproducer(data, reflect.reproducer) == 0


def test_the_same_bug_found_again_keeps_its_signature(tmp_path):
    (target,) = [t for t in PAIRS if t.name == "ExpTwoRaisingSites"]
    runs = [
        fuzz_target(target, max_examples=EXAMPLES, seed=seed, report_dir=tmp_path / str(seed))
        for seed in (1, 2)
    ]
    sigs = [{failure_signature(target.name, f.to_json()) for f in r.failures} for r in runs]
    assert sigs[0] == sigs[1] and len(sigs[0]) == 2


def test_search_goes_on_after_the_first_failure_of_a_property():
    (target,) = [t for t in PAIRS if t.name == "ModeScaleTwoModesWrong"]
    result = fuzz_target(target, max_examples=EXAMPLES, derandomize=True)
    assert len(matching(result.failures, "vjp grad[input=0]")) == 2
    # the search ran its examples beyond the shrinking of the first finding
    assert result.stats.checked["vjp"] >= EXAMPLES


def test_argument_classes_name_dims_sizes_and_strategy_values():
    by_name = {t.name: t for t in PAIRS}
    x = __import__("torch").ones(3)
    case = type("C", (), {"args": (x, -1)})()
    assert argument_classes(by_name["SumSquaresNegativeDimAndRank3"], case) == ((1, "dim<0"),)
    case.args = (x, "reflect")
    assert argument_classes(by_name["ModeScaleTwoModesWrong"], case) == ((1, "mode='reflect'"),)
    case.args = (x, 3)
    assert argument_classes(by_name["TopMeanWrongAtBothBounds"], case) == ((1, "k==n,k>1"),)
    case.args = (x, 1)
    assert argument_classes(by_name["TopMeanWrongAtBothBounds"], case) == ((1, "k<n,k==1"),)


def _raise_in_user_code():
    raise KeyError("the user's")


def test_raising_site_is_the_innermost_user_frame():
    try:
        _raise_in_user_code()
    except KeyError as exc:
        assert raising_site(exc) == "KeyError in test_findings.py:_raise_in_user_code"
        assert raised_by_user(exc)
        failure = failure_type("vjp")("backward raised", case=None)
    assert failure.cause is not None  # made while handling: the cause is what was handled
    assert root_of(failure) == "raises KeyError in test_findings.py:_raise_in_user_code"


def test_an_internal_error_in_a_property_keeps_the_finding_and_is_reported(monkeypatch, tmp_path):
    """fuzzgrad's own code raising while it builds a failure's message (as a hint once did on a
    sparse saved tensor) keeps that failure, and is reported as an internal error."""
    from fuzzgrad.properties import vjp as vjp_module

    (target,) = [t for t in PAIRS if t.name == "ModeScaleTwoModesWrong"]
    # the broken wrapper is compiled as if it were in fuzzgrad's own vjp.py
    scope = {"original": vjp_module.Vjp.check, "PropertyFailure": PropertyFailure}
    source = (
        "def check(self, run):\n"
        "    try:\n"
        "        original(self, run)\n"
        "    except PropertyFailure:\n"
        "        {}['a bug of fuzzgrad while explaining the failure']\n"
    )
    exec(compile(source, vjp_module.__file__, "exec"), scope)
    check = scope["check"]

    monkeypatch.setattr(vjp_module.Vjp, "check", check)
    result = fuzz_target(target, max_examples=60, derandomize=True, report_dir=tmp_path)
    assert result.error is None, result.error
    assert len(matching(result.failures, "vjp grad[input=0]")) == 2
    (internal,) = result.stats.internal.values()
    assert internal["message"].startswith("KeyError") and internal["property"] == "vjp"
    assert "vjp.py" in internal["traceback"]
    record = result.to_json()
    assert record["internal_errors"][0]["site"] == internal["site"]


def test_an_overflow_of_every_dtype_is_one_finding_not_one_per_dtype():
    """The float64 shrink (x > 709) and the float32 one (x > 88) of one naive softmax are one
    finding: the narrower dtype's shrink folds into the one that fails in every dtype."""
    target = ONE_BUG["LogSumExpNaiveSoftmax"]
    result = fuzz_target(target, max_examples=EXAMPLES, derandomize=True)
    kinds = [f.kind for f in result.failures]
    assert kinds == ["vjp grad[input=0] non-finite"], kinds


def test_a_second_order_failure_of_a_wrong_backward_is_that_backwards_finding():
    """x**2 with a backward of 3x: the double backward is autograd of that backward, right
    about it, so second_order fails too; one finding lists both properties."""
    result = fuzz_target(ONE_BUG["SquareWrongFactor"], max_examples=EXAMPLES, derandomize=True)
    (finding,) = result.failures
    assert finding.kind.startswith("vjp grad[input=0]"), finding.kind
    assert set(finding.properties) == {"vjp", "second_order"}, finding.properties


def test_only_a_nonfinite_finding_of_a_narrower_dtype_folds():
    from fuzzgrad.verdict.identity import folds_into

    general = "vjp grad[input=0] non-finite | dim<0"
    assert folds_into("vjp grad[input=0] non-finite | dim<0 | needs dtype", general)
    # a finite wrong value in one dtype, another path, class or property: findings of their own
    assert not folds_into("vjp grad[input=0] | needs dtype", "vjp grad[input=0]")
    assert not folds_into("vjp grad[input=1] non-finite | needs dtype", general)
    assert not folds_into("vjp grad[input=0] non-finite | dim>=0 | needs dtype", general)
    assert not folds_into("forward output[0] non-finite | needs dtype", general)
    assert not folds_into(general, general)


def test_a_subset_run_that_repeats_a_wrong_backward_is_that_backwards_finding():
    """With only x requiring grad, x*y's wrong backward gives the same wrong gradient as with
    both: requires_grad_subsets holds in its own sense (the gradient is unchanged), so its
    failure against the reference folds into vjp's finding instead of being a second one."""
    result = fuzz_target(ONE_BUG["MulWrongFirstGrad"], max_examples=EXAMPLES, derandomize=True)
    (finding,) = result.failures
    assert finding.kind.startswith("vjp grad[input=0]"), finding.kind
    assert "requires_grad_subsets" in finding.properties, finding.properties


def test_an_example_that_times_out_while_a_finding_is_shrunk_keeps_the_finding(monkeypatch):
    """A timeout met while a candidate is handed to Hypothesis to shrink (a loaded machine, a
    short --example-timeout) is a timeout error beside the finding: it once raised an
    UnboundLocalError in the runner, which killed the worker ("exit status 1") and lost the
    finding's shrink."""
    import time

    import torch

    from fuzzgrad.engine import runner
    from fuzzgrad.registry.target import make_target

    shrinking, handed_off = [], []
    hand_off = runner._TargetRun.hand_off

    def slow_hand_off(self, *args, **kwargs):
        shrinking.append(True)  # slow only while shrinking (not while diagnosing after it)
        try:
            return hand_off(self, *args, **kwargs)
        finally:
            shrinking.clear()
            handed_off.append(True)

    monkeypatch.setattr(runner._TargetRun, "hand_off", slow_hand_off)

    class DoubleWrongSlowWhenShrunk(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            if shrinking:
                time.sleep(3)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    target = make_target(DoubleWrongSlowWhenShrunk, reference=lambda x: x * 2)
    result = fuzz_target(target, max_examples=20, seed=0, properties=["vjp"], example_timeout=0.5)
    assert handed_off  # the timeout was met during the hand-off
    assert [f.property for f in result.failures] == ["vjp"], result.failures
    assert result.error is not None and result.error["kind"] == "timeout", result.error


def test_a_finding_an_earlier_round_reported_is_not_reported_again():
    """A budgeted run fuzzes in rounds (`fuzzgrad.nightly.worker.fuzz_for`), each told the
    identities found before: the same bug met again in another dtype is not a second finding
    (a Ray unit once reported one bug three times, from float64, float32 and bfloat16 cases)."""
    target = ONE_BUG["SquareWrongFactor"]
    first = fuzz_target(target, max_examples=EXAMPLES, derandomize=True, properties=["vjp"])
    (finding,) = first.failures
    again = fuzz_target(
        target,
        max_examples=EXAMPLES,
        seed=1,
        properties=["vjp"],
        known_kinds=frozenset({finding.kind}),
    )
    assert again.failures == [], [f.kind for f in again.failures]
