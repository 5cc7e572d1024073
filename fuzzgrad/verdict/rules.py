"""Every excuse the verdict grants, by name: the one place to list them.

A mismatch between the Function and a reference that the verdict forgives is forgiven by one
of these rules; each time one speaks, `fuzzgrad.verdict.stats.Stats.excused` counts it by name,
and every report shows the counts (``excused`` in results.json). A rule's docstring says when
it applies and why; `fuzzgrad.verdict.judge` and the properties name the rule they apply
(`Judge.excuse`), and tests/test_verdict_rules.py holds, per rule, a correct case it forgives
and a planted bug it must not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One named excuse: ``doc`` says when it applies and why."""

    name: str
    doc: str


RULES: dict[str, Rule] = {}


def _rule(name: str, doc: str) -> str:
    RULES[name] = Rule(name, " ".join(doc.split()))
    return name


CALIBRATION = _rule(
    "calibration",
    """A low-precision result may err by what the reference math itself errs by when run at
    the case's dtype (the torch reference, or the JAX one where it errs more): a float16
    Function is judged against the float64 reference, not held to float64 accuracy. Used by
    every property that compares results (outputs, gradients, jvp, vmap, Jacobians, second
    order).""",
)
ROUNDING_SLACK = _rule(
    "rounding_slack",
    """Where the math is ill-conditioned or a result cancels large terms, honest rounding at
    the dtype errs by more than any fixed tolerance: the float64 reference's spread under
    rounding-sized nudges of the inputs, and eps times the magnitudes of the terms, are
    allowed (`fuzzgrad.verdict.slack`).""",
)
CONDITIONING = _rule(
    "conditioning",
    """A float64 Function may differ from the float64 reference by that reference's own
    rounding where the math is ill-conditioned (its float32 error scaled by eps64/eps32).""",
)
REFERENCE_DISAGREEMENT = _rule(
    "reference_disagreement",
    """Where the torch and JAX references disagree with each other (kinks, ties, subgradient
    conventions, cancellation), agreeing with either one, or differing from one by no more
    than they differ from each other, is enough; the case is counted ambiguous.""",
)
ILL_CONDITIONED = _rule(
    "ill_conditioned",
    """Where the reference's derivative is orders of magnitude above what finite differences
    of its forward show (a non-differentiable point, a formula that blows up there), it is no
    expected value: ambiguous.""",
)
KINK = _rule(
    "kink",
    """At a kink or tie (the one-sided differences of <f, cotangent> along an input element
    disagree, and keep disagreeing as the step halves), every value between them is a valid
    subgradient, though both references took one side: ambiguous. A value outside fails.""",
)
OVERFLOW_REGIME = _rule(
    "overflow_regime",
    """With an input so large that squaring it nears the dtype's largest value, where and how
    intermediates overflow is not a finding: inf/NaN (and, where the references overflowed,
    any value) is accepted at the results those inputs reach, and references that disagree
    there judge nothing. Likewise where the reference run at the case's dtype overflows an
    intermediate (an operation other than a pole turns finite operands into inf, as
    ``exp(13.5)`` in float16): a NaN or inf of the Function there is the dtype's range, not an
    underflow's 0/0.""",
)
FINITE_DIFFERENCES = _rule(
    "finite_differences",
    """Where finite differences judge (no reference is registered, or the references'
    gradients are NaN or inf while the forward is finite around the point), a value the
    estimates at several steps cannot tell from right (they differ from each other by more
    than from it), or one they cannot estimate (not finite nearby), is ambiguous.""",
)
NONFINITE_OK = _rule(
    "nonfinite_ok",
    """A registration that names a property in ``nonfinite_ok`` accepts, in it, a NaN or inf
    result where the reference run at the case's dtype gives one too, though the float64
    reference is finite (otherwise that is a failure).""",
)
ROUNDING_NOISE = _rule(
    "references_rounding_noise",
    """References that differ from each other by no more than a few-ulp jitter of the inputs
    moves them (an ill-conditioned formula) are not reported as disagreeing.""",
)


def describe() -> str:
    """The rules, one paragraph each, as `fuzzgrad rules` might print them."""
    return "\n\n".join(f"{r.name}: {r.doc}" for r in RULES.values())
