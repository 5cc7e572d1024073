"""The three bug finders the benchmark compares, each given one target and the same wall budget.

- ``fuzzgrad``: `fuzzgrad.engine.runner.fuzz_target` with ``stop_at``; any property failure (or a
  hang/crash it reports as an error) kills.
- ``gradcheck``: what most people run today: `torch.autograd.gradcheck` and `gradgradcheck` (the
  latter skipped for ``once_differentiable`` Functions, which forbid it) on random contiguous
  float64 inputs, repeated with fresh inputs until the budget is spent. No shrinking.
- ``hypothesis``: a hand-written Hypothesis test calling the same checks on float64
  `hypothesis_torch.tensor_strategy` tensors with elements in [-10, 10] (or the input's declared
  bounds), shrinking a failure as Hypothesis does.

Both baselines draw shapes the way a user's test would: every named dim 1..4, a variadic one
0..2 dims of 1..3, broadcastable dims at full size; targets whose inputs are a Hypothesis
strategy (index-taking ones) reuse that strategy for shapes and index values, with the float
tensors redrawn in float64. Every tool's crash (an exception from the Function) counts as a
kill. Sizes are the elements of all tensor arguments of the (shrunk) failing call.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

TOOLS = ("fuzzgrad", "gradcheck", "hypothesis")
#: Cap on Hypothesis's shrinking (its default is 300 s), the same for fuzzgrad and the baseline.
SHRINK_SECONDS = 30
USER_RANGE = (-10.0, 10.0)


@dataclass
class Outcome:
    """What one tool did to one subject (a mutant, or an unmutated target)."""

    tool: str
    subject: str
    killed: bool
    seconds: float | None = None  # wall time to the first failure
    size: int | None = None  # elements in the (shrunk) failing inputs
    examples: int = 0
    wall: float = 0.0
    detail: str = ""


class BudgetSpent(BaseException):
    """Ends a budgeted Hypothesis run without a failure (a BaseException: never shrunk)."""


def elements(args) -> int:
    return sum(a.numel() for a in args if isinstance(a, torch.Tensor))


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:160]


# -- fuzzgrad ---------------------------------------------------------------------------------
def run_fuzzgrad(target, budget: float, seed: int) -> Outcome:
    """fuzzgrad with all its default properties, stopping generation at the budget."""
    from fuzzgrad.engine.runner import fuzz_target, hypothesis_settings

    start = time.monotonic()
    found: dict[str, float] = {}
    config = settings(hypothesis_settings(10**9), report_multiple_bugs=False)
    r = fuzz_target(
        target,
        hyp_settings=config,
        seed=seed,
        stop_at=start + budget,
        example_timeout=max(10.0, 3 * budget),
        on_finding=lambda prop, info: found.setdefault(prop, time.monotonic() - start),
    )
    wall = time.monotonic() - start
    if r.failures:
        first = min(r.failures, key=lambda f: found.get(f.property, math.inf))
        return Outcome(
            "fuzzgrad",
            target.name,
            True,
            found.get(first.property),
            elements(first.case.args),
            r.examples,
            wall,
            f"{first.property}: {first.message[:140]}",
        )
    if r.status == "error":
        err = r.error or {}
        seconds = min(found.values()) if found else wall
        return Outcome(
            "fuzzgrad",
            target.name,
            True,
            seconds,
            None,
            r.examples,
            wall,
            f"error ({err.get('kind')}): {str(err.get('message'))[:140]}",
        )
    return Outcome("fuzzgrad", target.name, False, None, None, r.examples, wall)


# -- what a user's test draws -----------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """A float argument to fill with values (shape, value range, whether it requires grad)."""

    shape: tuple[int, ...]
    low: float | None
    high: float | None
    requires_grad: bool


def _spec_slots(draw, specs) -> list[Any]:
    sizes: dict[str, Any] = {}
    default = draw(st.lists(st.integers(1, 4), max_size=3))
    out: list[Any] = []
    for spec in specs:
        if spec.shape is None:
            shape = tuple(default)
        else:
            shape = []
            for d in spec.dims:
                if d.variadic:
                    key = d.name if d.name != "_" else object()
                    if key not in sizes:
                        sizes[key] = draw(st.lists(st.integers(1, 3), max_size=2))
                    shape.extend(sizes[key])
                elif d.size is not None:
                    shape.append(d.size)
                else:
                    key = d.name if d.name != "_" else object()
                    if key not in sizes:
                        sizes[key] = draw(st.integers(1, 4))
                    shape.append(sizes[key])
            shape = tuple(shape)
        if spec.dtypes and not any(dt.is_floating_point for dt in spec.dtypes):
            if spec.dtypes[0] == torch.bool:
                flags = draw(
                    st.lists(st.booleans(), min_size=math.prod(shape), max_size=math.prod(shape))
                )
                out.append(torch.tensor(flags, dtype=torch.bool).reshape(shape))
            else:
                out.append(torch.zeros(shape, dtype=spec.dtypes[0]))
        else:
            out.append(Slot(shape, spec.low, spec.high, spec.requires_grad))
    return out


@st.composite
def user_slots(draw, target) -> list[Any]:
    """The arguments a user's test would pass, with float tensors left as `Slot` s to fill."""
    if isinstance(target.inputs, tuple):
        return _spec_slots(draw, target.inputs)
    args = draw(target.inputs)
    args = args if isinstance(args, (tuple, list)) else (args,)
    return [
        Slot(tuple(a.shape), None, None, True)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else a
        for a in args
    ]


def _nonempty(drawn) -> bool:
    """Users' tests draw no empty float tensors (the mean of nothing is NaN; gradgradcheck
    would then blame the Function), so neither baseline does."""
    return all(math.prod(a.shape) for a in drawn if isinstance(a, Slot))


def _random_fill(slot: Slot, gen: torch.Generator) -> torch.Tensor:
    if slot.low is not None or slot.high is not None:
        lo = slot.low if slot.low is not None else slot.high - 2
        hi = slot.high if slot.high is not None else lo + 2
        t = lo + (hi - lo) * torch.rand(slot.shape, generator=gen, dtype=torch.float64)
    else:
        t = torch.randn(slot.shape, generator=gen, dtype=torch.float64)
    return t.requires_grad_(slot.requires_grad)


def gradchecks(target, args) -> None:
    """gradcheck, then gradgradcheck unless backward is ``once_differentiable``; raise on failure.

    Inputs are cloned inside the checked function, as users must for in-place (``mark_dirty``)
    Functions, since gradcheck's leaves cannot be modified in place.
    """
    from torch.autograd import gradcheck, gradgradcheck

    def fn(*xs):
        return target.fn(*[x.clone() if isinstance(x, torch.Tensor) else x for x in xs])

    if not any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        return
    gradcheck(fn, args)
    if not target.once_differentiable:
        gradgradcheck(fn, args)


# -- baseline (a): gradcheck on random inputs --------------------------------------------------
class Killed(BaseException):
    """A failure of the random-input baseline: ends the run at once, never shrunk."""


def _budgeted(phases) -> settings:
    return settings(
        max_examples=10**9,
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=phases,
    )


def run_gradcheck(target, budget: float, seed: int) -> Outcome:
    """gradcheck + gradgradcheck on fresh random float64 inputs until the budget is spent.

    Hypothesis only draws the shapes (and index values) here, with no shrinking; the values are
    ``torch.randn`` (or uniform in declared bounds) from a drawn seed.
    """
    start = time.monotonic()
    state: dict[str, Any] = {"n": 0}

    @_budgeted((Phase.generate,))
    @given(user_slots(target), st.integers(0, 2**63 - 1))
    def test(drawn, value_seed):
        assume(_nonempty(drawn))
        if time.monotonic() - start >= budget:
            raise BudgetSpent
        gen = torch.Generator().manual_seed(value_seed)
        args = tuple(_random_fill(a, gen) if isinstance(a, Slot) else a for a in drawn)
        state["n"] += 1
        try:
            gradchecks(target, args)
        except Exception as exc:  # a GradcheckError or a crash: both kill
            state["seconds"], state["size"] = time.monotonic() - start, elements(args)
            state["detail"] = _short(exc)
            raise Killed from exc

    try:
        hypothesis_seed(seed)(test)()
    except (BudgetSpent, Killed):
        pass
    wall = time.monotonic() - start
    return Outcome(
        "gradcheck",
        target.name,
        "seconds" in state,
        state.get("seconds"),
        state.get("size"),
        state["n"],
        wall,
        state.get("detail", ""),
    )


# -- baseline (b): a hand-written Hypothesis test ----------------------------------------------
def _user_tensor(slot: Slot):
    import hypothesis_torch

    lo = slot.low if slot.low is not None else USER_RANGE[0]
    hi = slot.high if slot.high is not None else USER_RANGE[1]
    values = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    # strided: gradcheck needs dense tensors, and a user's test would say so after one run
    return hypothesis_torch.tensor_strategy(
        dtype=torch.float64, shape=slot.shape, elements=values, layout=torch.strided
    ).map(
        # hypothesis-torch also draws stride-0 (expanded) tensors, which gradcheck rejects
        lambda t: t.clone(memory_format=torch.preserve_format).requires_grad_(slot.requires_grad)
    )


def run_hypothesis(target, budget: float, seed: int) -> Outcome:
    """``@given`` float64 hypothesis-torch tensors, assert gradcheck/gradgradcheck; shrunk."""
    start = time.monotonic()
    state: dict[str, Any] = {"n": 0, "first": None, "args": None, "error": None}
    slots = user_slots(target)

    @_budgeted((Phase.generate, Phase.shrink))
    @given(st.data())
    def test(data):
        drawn = data.draw(slots)
        assume(_nonempty(drawn))
        args = tuple(data.draw(_user_tensor(a)) if isinstance(a, Slot) else a for a in drawn)
        if state["first"] is None and time.monotonic() - start >= budget:
            raise BudgetSpent  # after the draws: a run must draw the same way every time
        state["n"] += 1
        try:
            gradchecks(target, args)
        except Exception as exc:
            if state["first"] is None:
                state["first"] = time.monotonic() - start
            state["args"], state["error"] = args, exc  # the last failing call is the shrunk one
            raise

    try:
        hypothesis_seed(seed)(test)()
    except BudgetSpent:
        pass
    except Exception as exc:  # noqa: BLE001 - the shrunk failure (or a crash Hypothesis re-raised)
        if state["first"] is None:
            state["first"], state["error"] = time.monotonic() - start, exc
    wall = time.monotonic() - start
    if state["first"] is None:
        return Outcome("hypothesis", target.name, False, None, None, state["n"], wall)
    size = elements(state["args"]) if state["args"] is not None else None
    return Outcome(
        "hypothesis",
        target.name,
        True,
        state["first"],
        size,
        state["n"],
        wall,
        _short(state["error"]),
    )


RUNNERS = {"fuzzgrad": run_fuzzgrad, "gradcheck": run_gradcheck, "hypothesis": run_hypothesis}
