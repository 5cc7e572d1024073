"""Exploration (`fuzzgrad.engine.explore`): fast draws of the same cases, failures handed to
Hypothesis.

A case drawn by `FastData` must be the case Hypothesis draws from the recorded choices, or a
hand-off would shrink some other case; a failure Hypothesis cannot replay must still be reported.
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine import explore as _explore
from fuzzgrad.engine.hypothesis_compat import set_database_key
from fuzzgrad.engine.runner import DATABASE_KEY, db_key, fuzz_target, hypothesis_settings
from fuzzgrad.properties.checker import Checker
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import cases
from fuzzgrad.strategies._cases import _SpecCases
from fuzzgrad.verdict.judge import Discard

BUILTINS = [t for t in load_targets() if isinstance(cases(t), _SpecCases)]
#: Mixed argument specs (a dim, a user's strategies, a plain value) are explored too.
MIXED = make_target(
    lambda x, k, s, d, c: x.sum(d) * s * c,
    reference=lambda x, k, s, d, c: x.sum(d) * s * c,
    inputs=[
        fg.tensor("b n"),
        st.tuples(st.integers(1, 4), st.booleans()).map(lambda t: t[0]),
        st.floats(0.25, 2.0),
        fg.dim(0),
        0.5,
    ],
    name="mixed",
)
CORPUS = Path(__file__).parent / "corpus"


def _same_case(a, b) -> bool:
    if repr(a) != repr(b) or a.cotangents != b.cotangents or a.requires_grad != b.requires_grad:
        return False
    return all(
        torch.equal(x.nan_to_num(), y.nan_to_num()) if isinstance(x, torch.Tensor) else x == y
        for x, y in zip(a.args, b.args)
    )


@pytest.mark.parametrize("target", [*BUILTINS[::3], MIXED], ids=lambda t: t.name)
def test_hypothesis_replays_the_very_case_exploration_drew(target):
    strategy = cases(target)
    rng = random.Random(7)
    for _ in range(8):
        data = _explore.FastData(rng)
        with data.drawing():
            drawn = strategy.do_draw(data)
        handoff = _explore.HandOff(None)
        handoff.stored(DATABASE_KEY, data.to_bytes())
        replayed = []

        def keep(case):
            replayed.append(case)  # noqa: B023 - run at once, in this iteration

        run = settings(hypothesis_settings(1, database=handoff), phases=(Phase.reuse,))(
            given(strategy)(keep)
        )
        set_database_key(run, DATABASE_KEY)
        run()
        assert len(replayed) == 1 and _same_case(drawn, replayed[0]), (drawn, replayed)


class CubeWrongBackward(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * x * g  # should be 3 x^2


def test_a_failure_found_while_exploring_is_shrunk_by_hypothesis(monkeypatch):
    drawn = []
    real = _explore.FastData

    def counting(*args):
        drawn.append(1)
        return real(*args)

    monkeypatch.setattr(_explore, "FastData", counting)
    target = make_target(
        CubeWrongBackward, reference=lambda x: x**3, name="cube", options={"max_elements": 64}
    )
    result = fuzz_target(target, max_examples=100, properties=["vjp"], derandomize=True)
    assert result.status == "failed"
    assert drawn, "the failure should have been found by exploration"
    (failure,) = result.failures
    assert "not shrunk" not in failure.message
    assert sum(max(1, a.numel()) for a in failure.case.args) == 1


def _derandomized_cases(target, n: int) -> list[str]:
    """The cases (as repr) a derandomized run of ``n`` examples draws."""
    drawn: list[str] = []
    fuzz_target(
        target,
        max_examples=n,
        properties=["forward"],
        derandomize=True,
        on_example=lambda c: drawn.append(repr(c)),
    )
    return drawn


def test_derandomized_runs_draw_the_same_cases():
    target = make_target(CubeWrongBackward, reference=lambda x: x**3, name="cube_again")
    first, second = _derandomized_cases(target, 20), _derandomized_cases(target, 20)
    assert first == second and len(first) == 20


def test_derandomized_runs_draw_the_same_cases_wherever_the_project_is_cloned(tmp_path):
    """A file imported by path gets a folder digest in its module name; the cases a
    derandomized (CI) run draws, and its database key, must not depend on it (a CI clone in
    another folder drew other cases and missed a planted bug that passed locally)."""
    source = (CORPUS / "buggy_layout.py").read_text(encoding="utf-8")
    seen = []
    for folder in ("here", "there"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "clone_corpus.py").write_text(source, encoding="utf-8")
        loaded = load_targets([str(tmp_path / folder)])
        (target,) = [t for t in loaded if t.name == "LogCoshNaiveTanh"]
        drawn = _derandomized_cases(target, 15)
        seen.append((target.module, target.key, db_key(target), drawn))
    (module_a, key_a, db_a, drawn_a), (module_b, key_b, db_b, drawn_b) = seen
    assert module_a != module_b
    assert key_a == key_b == "clone_corpus.LogCoshNaiveTanh" and db_a == db_b
    assert drawn_a == drawn_b and len(drawn_a) == 15


class _FirstCallsWrong(Function):
    """Wrong gradient on its first call only: Hypothesis's replay of the failure passes."""

    calls = 0

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        _FirstCallsWrong.calls += 1
        return g * (3 if _FirstCallsWrong.calls <= 1 else 2)


def test_a_failure_hypothesis_cannot_replay_is_reported_not_lost():
    _FirstCallsWrong.calls = 0
    target = make_target(_FirstCallsWrong, reference=lambda x: x * 2, name="first_calls")
    result = fuzz_target(target, max_examples=30, properties=["vjp"], derandomize=True)
    assert result.status == "failed", result
    (failure,) = result.failures
    assert failure.property == "vjp" and "not shrunk" in failure.message
    assert failure.case is not None


def test_in_place_functions_pass_on_any_first_case():
    """Whether a Function writes into its inputs is found out on each case: a fresh checker's
    first case (random, not Hypothesis's simplest) must not leave the inputs modified (an
    expanded input it writes is outside its contract: a discard)."""
    (target,) = [
        t for t in load_targets([str(CORPUS / "correct_ctx.py")]) if t.name == "InplaceTanh"
    ]
    for seed in range(30):
        case = cases(target).do_draw(_explore.FastData(random.Random(seed)))
        with contextlib.suppress(Discard):
            Checker(target, ["forward", "vjp", "purity"]).check(case)


def test_strategy_inputs_are_fuzzed_by_hypothesis_itself(monkeypatch):
    from hypothesis import strategies as st

    monkeypatch.setattr(_explore, "FastData", None)  # would crash if exploration were tried
    target = make_target(
        CubeWrongBackward,
        reference=lambda x: x**3,
        name="cube_strategy",
        inputs=st.just(torch.tensor([1.5, -2.0], dtype=torch.float64)).map(lambda t: (t,)),
    )
    result = fuzz_target(target, max_examples=5, properties=["vjp"], derandomize=True)
    assert result.status == "failed"


def test_fast_data_refuses_what_it_cannot_draw():
    data = _explore.FastData(random.Random(0))
    with pytest.raises(_explore.Unsupported):
        data.draw_integer()
    with pytest.raises(_explore.Unsupported):
        data.draw_bytes(1, 2)
    assert data.draw_integer(3, 3) == 3 and data.choices == [3]
    assert -4.0 <= data.draw_float(-4.0, 4.0, allow_nan=False) <= 4.0


class _WrongAndHangsOnBigInputs(Function):
    @staticmethod
    def forward(ctx, x):
        if x.numel() > 64:
            time.sleep(30)  # interrupted by the example timeout
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 3  # should be 2


def test_a_hang_while_exploring_keeps_the_failures_found_before_it():
    """vjp fails at once; forward holds, so exploration goes on until the hang."""
    target = make_target(_WrongAndHangsOnBigInputs, reference=lambda x: x * 2, name="hangs")
    result = fuzz_target(
        target,
        max_examples=200,
        properties=["forward", "vjp"],
        derandomize=True,
        example_timeout=0.5,
    )
    assert result.status == "error" and result.error["kind"] == "timeout"
    assert [f.property for f in result.failures] == ["vjp"]
    assert "not shrunk" not in result.failures[0].message
