"""The verdict between a Function's results and its references, on one case at a time.

`Judge.pair` takes what the Function computed (outputs, or gradients) and returns a `Mismatch`
or None. It compares with the float64 torch reference first, and before calling anything a
failure widens the tolerance by what honest arithmetic may err at this input: the reference's
own error at the case's dtype (calibration), rounding slack (`fuzzgrad.verdict.slack`), the
JAX reference's error at the dtype, and for float64 the reference's own conditioning. Then the
JAX reference votes: where the two references disagree with each other (kinks, ties,
subgradient conventions), agreeing with either one is enough, and the case is counted
ambiguous. With inputs so large that intermediates overflow (`fuzzgrad.verdict.overflow`),
inf/NaN is excused only where those inputs reach.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fuzzgrad.oracles.case_dtype import case_dtype, with_case_dtype
from fuzzgrad.oracles.evaluation import Evaluation, floating, widen
from fuzzgrad.oracles.numerical import element_estimates, grad_elements
from fuzzgrad.oracles.torch_ref import torch_oracle
from fuzzgrad.verdict import rules
from fuzzgrad.verdict.calibration import AtDtype, Calibration, low_precision
from fuzzgrad.verdict.compare import NEAR_OVERFLOW, TOLERANCES, Mismatch, compare, tolerance
from fuzzgrad.verdict.differences import (
    AMBIGUOUS,
    FAIL,
    KINK,
    MAX_FD_ELEMENTS,
    PASS,
    at_a_tie,
    by_differences,
    off_a_tie,
)
from fuzzgrad.verdict.overflow import (
    find_reach,
    magnitudes,
    near_max,
    overflow_regime,
    overflow_watch,
)
from fuzzgrad.verdict.slack import float64_rounding, rounding_slack
from fuzzgrad.verdict.stats import Stats

#: Share of run time that JAX compilation may take on cases the torch reference already passes
#: (there it only samples how often the references disagree). JAX always runs where the custom
#: Function disagrees with the torch reference (it can only change a verdict there), compiling
#: whatever that takes.
JAX_COMPILE_SHARE = 0.03
#: Share of the cases that the custom Function passes against the torch reference on which JAX
#: still runs. There it cannot change the verdict (agreeing with either reference is enough);
#: it only measures how often the references disagree (the "ambiguous" count, sampled). Chosen
#: by the case itself, so a replay makes the same choice.
JAX_PASSING_SHARE = 0.25
#: Second-order (and forward-mode) results in reduced precision compound the rounding of two
#: passes through formulas that need not match the reference's: their default tolerances are
#: this many times the first-order ones (a target's own ``tolerances`` are used as given).
HIGHER_ORDER_SLACK = 10.0

_UNSET = object()


class Discard(Exception):
    """The case is outside the math's domain (a reference raised); counted, not a failure."""


class Judge:
    """Verdicts for one target's cases. Call `start` at each case, `finish` after it."""

    def __init__(self, target, reference, jax, stats: Stats, *, jax_share: float):
        self.target = target
        #: the torch reference (the registration's, or one built from the Function's forward),
        #: before `reference` gives it the case's dtype (`fuzzgrad.oracles.case_dtype`)
        self.base_reference = reference
        self.jax = jax
        self.stats = stats
        self.jax_share = jax_share
        self._jax_compile0 = jax.compile_seconds if jax else 0.0
        self._out_dtypes: dict[tuple, tuple] = {}  # see `Calibration`
        self.higher_tolerances = _higher_tolerances(target)
        #: The property being checked (`fuzzgrad.properties.checker.Checker` sets it): the
        #: properties named by the registration's ``nonfinite_ok`` accept a NaN or inf where
        #: the reference at the case's dtype gives one too.
        self.property: str | None = None
        self._nonfinite_ok = frozenset(target.options.get("nonfinite_ok", ()))
        self.start(None)

    @property
    def reference(self):
        """The torch reference for the current case (given its dtype where it asks for it)."""
        return with_case_dtype(self.base_reference, case_dtype(self.case))

    @reference.setter
    def reference(self, fn) -> None:
        self.base_reference = fn

    @property
    def jax_reference(self):
        """The JAX reference for the current case (given its dtype where it asks for it)."""
        return with_case_dtype(self.target.jax_reference, case_dtype(self.case))

    # -- per case -------------------------------------------------------------------------------
    def start(self, case, nonleaf: bool = False) -> None:
        """Forget the previous case; size up this one's inputs (the overflow regime)."""
        self.case = case
        self.nonleaf = nonleaf  # the Function works in place: calls get copies
        args = case.args if case is not None else ()
        self.magnitudes = magnitudes(args)
        self.overflow_regime = overflow_regime(self.magnitudes)
        self.near_max = self.overflow_regime and near_max(self.magnitudes)
        self.all_float64 = all(a.dtype == torch.float64 for a in args if floating(a))
        self._regime_case: tuple | None = None  # (wrt, cotangents) for `_reach`
        self._reach_memo: Any = _UNSET
        self._away = False  # judging only the elements the largest inputs do not reach
        self._worst = 0.0
        #: Whether the reference at the case's dtype overflowed an intermediate (`watched`):
        #: then a NaN or inf of the Function where the float64 reference is finite is excused.
        self.dtype_overflowed = False
        self.case_ratio: float | None = None
        #: The references' own disagreement on this case, where no kink or tie explains it:
        #: ``(mismatch, the side the Function took)`` (`reference_disagreement` reports it).
        self.disagreement: tuple[Mismatch, str] | None = None

    def finish(self) -> None:
        """Record the case's worst accepted error ratio (one histogram entry per case)."""
        if self.case_ratio is not None:
            self.stats.record_ratio(self.case_ratio)

    def regime_for(self, wrt, cotangents) -> None:
        """The call whose reach the overflow regime measures, if it is needed."""
        self._regime_case = (wrt, cotangents)

    # -- references -----------------------------------------------------------------------------
    def oracle(self, case, wrt, cts, dtype, describe=None) -> Evaluation:
        """The torch reference at ``dtype`` (None: the case's own), else the JAX reference;
        a reference that raises means the case is outside the math's domain: `Discard`."""
        try:
            if self.reference is not None and dtype is None:
                return self.watched(lambda: torch_oracle(self.reference, case.args, wrt, cts, None))
            if self.reference is not None:
                return torch_oracle(self.reference, case.args, wrt, cts, dtype)
            return self.run_jax(case, wrt, cts)
        except Exception as exc:  # noqa: BLE001 - outside the math's domain
            reason = f"reference raised {type(exc).__name__}"
            self.stats.record_discard(reason, describe(case) if describe else None)
            raise Discard(reason) from exc

    def watched(self, compute: Callable[[], Any]) -> Any:
        """``compute()``, a run of the reference at the case's own dtype, noting in
        ``dtype_overflowed`` whether it overflowed the dtype's range
        (`fuzzgrad.verdict.overflow.overflow_watch`)."""
        watch = overflow_watch()
        with watch:
            out = compute()
        self.dtype_overflowed = self.dtype_overflowed or watch.overflowed
        return out

    def run_jax(self, case, wrt, cts) -> Evaluation:
        """The JAX reference's outputs and vjp, once per case, inputs and cotangents (the
        forward and vjp properties share one evaluation; so does a raise)."""
        memo = case.notes.setdefault("_jax", {})
        key = (tuple(wrt), None if cts is None else id(cts))
        if key not in memo:
            self.stats.jax_runs += 1
            try:
                memo[key] = (self.jax(self.jax_reference, case.args, wrt, cts), None)
            except Exception as exc:  # noqa: BLE001 - raised again to each caller
                memo[key] = (None, exc)
        value, error = memo[key]
        if error is not None:
            raise error
        return value

    def _conditioning(self, case, wrt, cts, ref) -> Evaluation | None:
        """For float64 cases: the float64 reference's own rounding error, estimated from its
        error in float32 scaled by eps64/eps32 (the conditioning of the math at this input)."""
        try:
            low = torch_oracle(self.reference, case.args, wrt, cts, torch.float32)
        except Exception:  # noqa: BLE001
            return None
        return Evaluation(
            tuple(float64_rounding(lo, hi) for lo, hi in zip(low.outputs, ref.outputs)),
            tuple(float64_rounding(lo, hi) for lo, hi in zip(low.grads, ref.grads)),
        )

    def _jax_calibration(self, case, wrt, cts, ref, calib) -> Evaluation | None:
        """Per element, whichever of the torch and JAX references errs more at the case's dtype
        (None where there is no low-precision calibration or no JAX reference)."""
        if calib is None or self.jax is None or case.dtype is None:
            return None
        try:
            low = self.jax(self.jax_reference, case.args, wrt, cts, working=case.dtype)
        except Exception:  # noqa: BLE001 - outside the JAX reference's domain at this dtype
            return None

        def worse(t, j, e):
            if not all(isinstance(v, torch.Tensor) and floating(v) for v in (t, j, e)):
                return t
            t64, j64, e64 = (widen(v) for v in (t, j, e))
            further = (j64 - e64).abs().nan_to_num(0.0) > (t64 - e64).abs().nan_to_num(0.0)
            return torch.where(further, j64, t64)

        return Evaluation(
            tuple(worse(t, j, e) for t, j, e in zip(calib.outputs, low.outputs, ref.outputs)),
            tuple(worse(t, j, e) for t, j, e in zip(calib.grads, low.grads, ref.grads)),
        )

    def calibration(self, case, wrt, cts) -> Calibration | None:
        """The reference at the case's own dtype, lazily (None for float64 cases)."""
        if not low_precision(case.dtype) or self.reference is None:
            return None
        return Calibration(self, case, wrt, cts)

    def at_dtype(self, compute: Callable[[], Sequence[Any]]) -> AtDtype | None:
        """Results of other kinds (a jvp, a Hessian-vector product, a Jacobian) computed by
        ``compute`` from the reference at the case's own dtype, lazily: the calibration those
        properties are judged with (`calibrated_list`, `between_runs`); None for float64 cases
        or without a torch reference."""
        if self.case is None or not low_precision(self.case.dtype) or self.reference is None:
            return None
        return AtDtype(lambda: self.watched(compute))

    # -- first order ----------------------------------------------------------------------------
    def pair(self, kind, case, wrt, cts, outputs, grads, ref, lazy) -> Mismatch | None:
        """The verdict on the Function's ``outputs`` (``kind="outputs"``) or ``grads``
        (``"grads"``) against ``ref`` (the float64 reference), widening as the module says
        before consulting JAX; a `Mismatch` (its message says what the references said) or
        None."""
        # The reference at the case's dtype only widens the tolerance, so a case that passes
        # without it passes with it: it is computed only for a comparison that fails without.
        calib = None
        dtypes = lazy.out_dtypes if lazy is not None else None
        first = self._compare_all(kind, outputs, grads, ref, None, wrt, out_dtypes=dtypes)
        if first is not None and lazy is not None:
            calib = lazy.get()
            first = self._compare_all(kind, outputs, grads, ref, calib, wrt)
            if first is None:
                self.excuse(rules.CALIBRATION)
        first_ratio = self._worst
        if first is None:
            self._accept()
        if first is not None and self.reference is not None:
            # Where the math is ill-conditioned or the result a cancellation of large terms,
            # honest rounding at the dtype errs by more than any fixed tolerance: allow that.
            slack = rounding_slack(self.reference, case.args, wrt, cts, ref)
            if (
                slack is not None
                and self._compare_all(kind, outputs, grads, ref, calib, wrt, slack=slack) is None
            ):
                if kind != "grads" or not self._off_a_tie(case, wrt, cts, grads, ref):
                    self.excuse(rules.ROUNDING_SLACK)
                    self._accept()
                    return None
                slack = None  # a nudge across a tie measured a jump, not rounding
            # The reference math's error at this dtype, from the JAX reference too: the torch
            # reference may accumulate in float64 (torch's CPU LayerNorm does) where a textbook
            # formula, the Function's and JAX's, cancels in float32.
            wider = self._jax_calibration(case, wrt, cts, ref, calib)
            if wider is not None and (
                self._compare_all(kind, outputs, grads, ref, wider, wrt, slack=slack) is None
            ):
                self.excuse(rules.CALIBRATION)
                self._accept()
                return None
        if first is not None and calib is None and self.all_float64 and self.reference:
            # A float64 Function may differ from the float64 reference by that reference's own
            # rounding where the math is ill-conditioned (huge terms cancelling): allow it.
            cond = self._conditioning(case, wrt, cts, ref)
            if cond is not None and self._compare_all(kind, outputs, grads, ref, cond, wrt) is None:
                self.excuse(rules.CONDITIONING)
                self._accept()
                return None
        run_jax = (
            self.jax is not None
            and self.reference is not None
            and (
                first is not None
                or (
                    sampled(case, JAX_PASSING_SHARE)
                    and (
                        self.jax.is_warm(self.jax_reference, case.args, wrt, cts)
                        or self._may_compile()
                    )
                )
            )
        )
        if not run_jax:
            if first is not None and self._unjudgeable(kind, case, wrt, cts, grads, ref, first):
                return None
            if first is not None:
                self._reject(first_ratio)
            return first
        try:
            jref = self.run_jax(case, wrt, cts)
        except Exception as exc:  # noqa: BLE001
            if first is None:
                return None
            self._reject(first_ratio)
            return _noted(first, f"the JAX reference raised {type(exc).__name__}")
        second = self._compare_all(kind, outputs, grads, jref, calib, wrt, out_dtypes=dtypes)
        if second is not None and lazy is not None and calib is None:
            calib = lazy.get()
            second = self._compare_all(kind, outputs, grads, jref, calib, wrt)
        if second is None:
            self._accept()
        if first is not None and second is not None:
            # Where the two references differ from each other, their disagreement is the
            # precision the math allows here (cancellation, kinks): widen by it, like calibration.
            if self._compare_all(kind, outputs, grads, ref, jref, wrt) is None:
                self.excuse(rules.REFERENCE_DISAGREEMENT)
                self._accept()
                first = None
        found = self.vote(
            case,
            first,
            second,
            lambda: self._references_differ(kind, ref, jref, wrt),
            away=lambda: self.pair(kind, case, wrt, cts, outputs, grads, ref, lazy),
            disagree=lambda side: self.references_disagree(kind, case, wrt, cts, ref, jref, side),
        )
        if found is not None and self._unjudgeable(kind, case, wrt, cts, grads, ref, found):
            return None
        if found is not None:
            self._reject(first_ratio)
        return found

    def _references_differ(self, kind, ref, jref, wrt) -> bool:
        """Whether the two references differ on ``kind``; in the overflow regime, a gradient's
        references that differ on the outputs differ too (the gradient of garbage is garbage:
        on a float64 LayerNorm row of 1.3e154, torch's outputs and input gradient are 0, JAX's
        outputs 1 and its gradient 4e-139, where the exact gradient, the Function's, is ~300)."""
        outputs, grads = (ref.outputs, None) if kind == "outputs" else (None, ref.grads)
        if self._compare_all(kind, outputs, grads, jref, None, wrt) is not None:
            return True
        return (
            kind == "grads"
            and self.overflow_regime
            and self._compare_all("outputs", ref.outputs, None, jref, None, wrt) is not None
        )

    def vote(self, case, first, second, refs_differ, away=None, disagree=None) -> Mismatch | None:
        """Either-agreement: a mismatch only if the custom Function disagrees with both
        references (``first``: with torch's, ``second``: with JAX's).

        ``away``, where given, runs the same check again judging only the elements that the
        inputs past the overflow size do not reach; its mismatch, if any, is the verdict.
        ``disagree(side)``, where given, looks into references that disagree with each other
        while the Function agrees with one (``side``): unless a kink or a tie explains it, it
        is recorded in `disagreement`, since one of the references must be wrong."""
        if first is None and second is None:
            return None
        if first is None or second is None:
            # the references disagree here; agreeing with one is enough (counted ambiguous)
            self.excuse(rules.REFERENCE_DISAGREEMENT, ambiguous=True)
            if disagree is not None and self.disagreement is None and not self.overflow_regime:
                disagree("torch" if first is None else "JAX")
            return None
        differ = refs_differ()
        if self.overflow_regime and (differ or self.near_max) and not self._away:
            # Inputs so large that the references' own intermediates overflow, and they disagree
            # with each other: neither can be trusted here (e.g. both give finite garbage for a
            # LayerNorm row of 1e154), so there is nothing to judge against. With an input within
            # NEAR_OVERFLOW of the largest value, both may agree on garbage: torch's BCE cancels
            # -max + max to 0 where the exact loss (and the Function's) is 2. Away from where
            # those inputs reach, the references are as good as anywhere.
            if away is not None and self._reach() is not None:
                self._away = True
                try:
                    found = away()
                finally:
                    self._away = False
                if found is not None:
                    return found
            self.excuse(rules.OVERFLOW_REGIME, ambiguous=True)
            return None
        note = (
            "the torch and JAX references also disagree with each other"
            if differ
            else "JAX agrees with the torch reference"
        )
        if self._away:
            note += "; judged only where the inputs past the overflow size do not reach"
        return _noted(first, note)

    def references_disagree(self, kind, case, wrt, cts, ref, jref, side=None) -> None:
        """Record the references' disagreement on this case (see `vote`) unless it is within
        the tolerance the Function is held to, or a kink or tie: moving the inputs a little
        (twice) makes the references agree."""
        if self.overflow_regime or self.reference is None:
            return  # intermediates may overflow anywhere: the references may both be right
        found = self._refs_compare(kind, case, wrt, ref, jref)
        if found is None:
            return
        for attempt in range(2):
            args = _nudged(case, attempt)
            try:
                moved = torch_oracle(self.reference, args, wrt, cts, torch.float64)
                jmoved = self.jax(self.jax_reference, args, wrt, cts)
            except Exception:  # noqa: BLE001 - the move left the math's domain: cannot tell
                return
            if self._refs_compare(kind, case, wrt, moved, jmoved) is None:
                return  # a kink or a tie, where conventions may differ
        if self._within_rounding_noise(kind, case, wrt, cts, ref, jref):
            # counted: results.json and junit.xml list it with the other unjudged reasons
            self.stats.skipped["references differ within their own rounding noise"] += 1
            self.excuse(rules.ROUNDING_NOISE)
            return
        self.disagreement = (found, side)

    def _within_rounding_noise(self, kind, case, wrt, cts, ref, jref) -> bool:
        """Whether the references differ by no more than `JITTER_FACTOR` times what moving
        each input and cotangent a few ulps (`_jittered`) moves either of them by (the largest
        move in each result tensor), on top of the dtype's tolerance. An ill-conditioned
        formula amplifies rounding (a one-element row's LayerNorm in float64 at 1.9e6: torch's
        weight gradient jumps by +-3e-7 between neighbouring floats where the exact value,
        JAX's, is 0; with cotangents of ~1e3 and a weight of 1881, its input gradient there is
        +-2.4e-7, from rounding g * w * rstd); a wrong reference differs by far more."""
        dtype = case.dtype if case.dtype is not None else torch.float64
        rtol, atol = tolerance(dtype, self.target.tolerances)
        # Per result tensor, its noise level: the largest move of any element under any jitter
        # (rounding noise is discrete, and a jitter can leave one element's rounding as it was).
        noise: dict[int, float] = {}
        for attempt in range(JITTERS):
            try:
                args = _jittered(case, attempt)
                moved_cts = _jittered_cotangents(cts, attempt) if kind == "grads" else cts
                moved = torch_oracle(self.reference, args, wrt, moved_cts, torch.float64)
                jmoved = self.jax(self.jax_reference, args, wrt, moved_cts)
            except Exception:  # noqa: BLE001 - cannot tell
                return False
            values = zip(*(_compared(kind, e, wrt) for e in (ref, moved, jref, jmoved)))
            for k, (r, rm, j, jm) in enumerate(values):
                if r is None or rm is None or j is None or jm is None:
                    continue
                step = torch.maximum((rm - r).abs(), (jm - j).abs()).to(torch.float64)
                level = float(step.amax()) if step.numel() else 0.0  # NaN or inf: no level
                noise[k] = max(noise.get(k, 0.0), level) if math.isfinite(level) else math.inf
        for k, (r, j) in enumerate(zip(_compared(kind, ref, wrt), _compared(kind, jref, wrt))):
            if r is None or j is None:
                continue
            if not math.isfinite(noise.get(k, math.inf)):
                return False
            r, j = r.to(torch.float64), j.to(torch.float64)
            if not (r.isfinite().all() and j.isfinite().all()):
                return False
            if ((r - j).abs() > atol + rtol * j.abs() + JITTER_FACTOR * noise[k]).any():
                return False
        return True

    def _refs_compare(self, kind, case, wrt, ref, jref) -> Mismatch | None:
        """The first place the two references differ by more than the case's dtype allows."""
        dtype = case.dtype if case.dtype is not None else torch.float64
        if kind == "outputs":
            pairs = [
                (f"output[{k}]", r, j) for k, (r, j) in enumerate(zip(ref.outputs, jref.outputs))
            ]
        else:
            pairs = [(f"grad[input={i}]", ref.grads[i], jref.grads[i]) for i in wrt]
        for path, r, j in pairs:
            if not (isinstance(r, torch.Tensor) and isinstance(j, torch.Tensor) and floating(r)):
                continue
            m, _ = compare(path, r, j, dtype=dtype, overrides=self.target.tolerances)
            if m is not None:
                return m
        return None

    def _unjudgeable(self, kind, case, wrt, cts, grads, ref, found: Mismatch) -> bool:
        """Whether a gradient mismatch is at a point the references cannot judge: where their
        derivative is far above finite differences (`_ill_conditioned`), or at a kink or tie
        where the Function took another valid side (`_at_kink`); counted by rule."""
        if self._ill_conditioned(kind, case, wrt, cts, ref, found):
            self.excuse(rules.ILL_CONDITIONED)
            return True
        if self._at_kink(kind, case, wrt, cts, grads, ref):
            self.excuse(rules.KINK, ambiguous=True)
            return True
        return False

    def _at_kink(self, kind, case, wrt, cts, grads, ref) -> bool:
        """Whether every gradient element that differs most from the reference sits at a kink
        of ``<reference, cotangents>`` along it (one-sided differences disagree), with the
        Function's value between the one-sided values: at a tie both references may take the
        same side, and another valid subgradient is no bug
        (`fuzzgrad.verdict.differences.within_kinks`)."""
        if kind != "grads" or self.reference is None or not cts or grads is None:
            return False
        if _any_complex(case.args) or _any_complex(ref.outputs):
            return False  # one-sided differences here are of real functions of real inputs
        rtol, atol = tolerance(case.dtype or torch.float64, self.target.tolerances)
        return at_a_tie(self.reference, case.args, wrt, cts, grads, ref.grads, rtol, atol)

    def _off_a_tie(self, case, wrt, cts, grads, ref) -> bool:
        """Whether the gradients differ from the reference at a tie in a direction where the
        math is smooth: the element that differs most sits at a kink, yet along ``grads -
        reference`` the one-sided derivatives agree and ``<grads, direction>`` is off. There a
        rounding-sized nudge of the inputs breaks the tie and the reference's gradient jumps
        (to one side), so the nudges' spread is no rounding slack (giving a tie's whole
        gradient to every tied entry hid behind it)."""
        if self.reference is None or not cts or _any_complex(case.args):
            return False
        rtol, atol = tolerance(case.dtype or torch.float64, self.target.tolerances)
        return off_a_tie(self.reference, case.args, wrt, cts, grads, ref.grads, rtol, atol)

    def _ill_conditioned(self, kind, case, wrt, cts, ref, found: Mismatch) -> bool:
        """Whether the reference's derivative where the Function disagrees is orders of
        magnitude above what central finite differences of the reference's forward show (a
        non-differentiable point, or a formula that blows up there): then it is no expected
        value, and the case is ambiguous (counted)."""
        if kind != "grads" or found.index is None or self.reference is None:
            return False
        if _any_complex(case.args) or _any_complex(ref.outputs):
            return False  # finite differences here are of real functions of real inputs
        i = _input_index(found.path)
        expected = found.expected
        if (
            i is None
            or expected is None
            or not _finite(expected)
            or case.args[i].dim() != len(found.index)
        ):
            return False
        flat = _flat_index(found.index, case.args[i].shape)
        (estimate,) = grad_elements(self.reference, case.args, wrt, cts or [], [(i, flat)])
        if estimate is None:
            return False
        rtol, atol = tolerance(case.dtype or torch.float64, self.target.tolerances)
        if abs(expected) <= ILL_CONDITIONED * (abs(estimate) + atol):
            return False
        self.stats.ambiguous += 1
        self.stats.skipped["reference derivative far above finite differences (ambiguous)"] += 1
        return True

    def nonfinite_references(self, case, wrt, cts, grads, ref) -> Mismatch | None:
        """Where the references' gradients are NaN or inf (the torch one, and the JAX one
        where registered) but the math is finite around the point, the gradient is judged
        against finite differences of the reference's forward (`fuzzgrad.verdict.differences`):
        a NaN gradient where the true one is 0 (an ``x*x`` underflowing inside a backward, say)
        is a finding; a value the estimates cannot tell from right (they disagree with each
        other by more), or one between the one-sided differences at a kink, is ambiguous."""
        if self.overflow_regime or self.reference is None or not cts:
            return None
        if _any_complex(case.args) or _any_complex(ref.outputs):
            return None  # finite differences here are of real functions of real inputs
        positions = []
        for i in wrt:
            e = ref.grads[i]
            if isinstance(e, torch.Tensor) and e.numel() and not bool(e.isfinite().all()):
                bad = (~e.isfinite()).reshape(-1).nonzero().reshape(-1)[:MAX_FD_ELEMENTS]
                positions += [(i, int(j)) for j in bad]
        if not positions or not all(
            not isinstance(o, torch.Tensor) or bool(o.isfinite().all()) for o in ref.outputs
        ):
            return None
        jax_note = "no JAX reference is registered"
        if self.jax is not None:
            try:
                jref = self.run_jax(case, wrt, cts)
            except Exception:  # noqa: BLE001 - no second opinion: the torch one stands alone
                jref = None
                jax_note = "the JAX reference raised"
            if jref is not None:
                jax_note = ""
                positions = [
                    (i, j) for i, j in positions if not _finite(jref.grads[i].reshape(-1)[j])
                ]
        estimates = element_estimates(self.reference, case.args, wrt, cts, positions)
        dtype = case.dtype or torch.float64
        rtol, atol = tolerance(dtype, self.target.tolerances)
        for (i, j), est in zip(positions, estimates):
            if est is None or not est.finite:
                self.excuse(rules.FINITE_DIFFERENCES, True)
                continue
            got = grads[i]
            value = 0.0 if got is None else float(got.detach().reshape(-1)[j].double())
            allowed = atol + max(rtol, 1e-4) * abs(est.value) + FD_TOLERANCE
            verdict = by_differences(value, est, allowed)
            if verdict == FAIL and est.kink and not math.isfinite(value):
                verdict = KINK  # NaN at a kink: what the references give there too
            if verdict in (KINK, AMBIGUOUS):
                self.excuse(rules.KINK if verdict == KINK else rules.FINITE_DIFFERENCES, True)
                continue
            if verdict == PASS:
                continue
            index = _unflat(j, case.args[i].shape)
            refs = f"the torch reference gives {float(ref.grads[i].reshape(-1)[j]):.6g}"
            refs = (
                f"{refs} and so does the JAX reference" if not jax_note else f"{refs} ({jax_note})"
            )
            shape = "smooth there, " if est.smooth and est.error <= allowed else ""
            return Mismatch(
                f"grad[input={i}]",
                f"at index {index}: got {value:.6g} where {refs}, but the math is finite and "
                f"{shape}by finite differences of the forward: {est.describe()}",
                abs(value - est.value),
                index=index,
                actual=value,
                expected=est.value,
            )
        return None

    def excuse(self, rule: str, ambiguous: bool = False) -> None:
        """Count one excuse by its rule's name (`fuzzgrad.verdict.rules`); ``ambiguous``: the
        case was not judged either way (counted with the ambiguous ones too)."""
        if rule not in rules.RULES:
            raise KeyError(f"no verdict rule named {rule!r}")
        self.stats.excused[rule] += 1
        if ambiguous:
            self.stats.ambiguous += 1

    @property
    def nonfinite_ok(self) -> bool:
        """Whether a NaN or inf that the reference makes at the case's dtype too is accepted
        (see `fuzzgrad.verdict.compare.compare`): the property being checked is named in the
        registration's ``nonfinite_ok``, or that reference overflowed the dtype's range."""
        return self.property in self._nonfinite_ok or self.dtype_overflowed

    def _accept(self) -> None:
        self.case_ratio = max(self.case_ratio or 0.0, min(self._worst, 1.0))

    def _reject(self, ratio: float) -> None:
        self.case_ratio = max(self.case_ratio or 0.0, ratio)

    def _reach(self) -> Evaluation | None:
        """The elements the case's inputs past the overflow size reach (`find_reach`), in the
        reference and in the Function itself; None (every element) where unknown. Once per
        case, on demand."""
        if self._reach_memo is _UNSET:
            self._reach_memo = None
            if self._regime_case is None or self.case is None:
                return None
            wrt, cts = self._regime_case
            fn = self.target.fn
            if self.nonleaf:  # in-place Functions get copies, as the Function's own call does

                def fn(*xs):
                    return self.target.fn(*(x.clone() if floating(x) else x for x in xs))

            if self.reference is not None:
                reference = functools.partial(torch_oracle, self.reference)
            else:
                reference = functools.partial(self.jax, self.jax_reference)
            self._reach_memo = find_reach(reference, fn, self.case.args, wrt, cts)
        return self._reach_memo

    def _regime(self, kind: str, k: int, actual: Any, expected: Any) -> bool | torch.Tensor:
        """What `compare` gets as ``overflow_regime`` for output or gradient ``k``."""
        if not self.overflow_regime:
            return False
        if not self._away and all(
            not isinstance(t, torch.Tensor) or bool(t.isfinite().all()) for t in (actual, expected)
        ):
            return True  # all finite: nothing for the regime to excuse, no need for its reach
        reach = self._reach()
        if reach is None:
            return True
        masks = reach.outputs if kind == "outputs" else reach.grads
        mask = masks[k] if k < len(masks) else None
        return mask if mask is not None else True

    def _may_compile(self) -> bool:
        spent = self.jax.compile_seconds - self._jax_compile0
        return spent <= self.jax_share * (time.perf_counter() - self.stats.started)

    def _compare_all(self, kind, outputs, grads, ref, calib, wrt, slack=None, out_dtypes=None):
        """The first mismatch of ``kind`` against ``ref`` (None if all agree); the worst
        error/tolerance ratio is left in ``self._worst``. ``out_dtypes``: the output dtypes the
        reference gives at the case's dtype, where ``calib`` is not computed."""
        worst = 0.0
        found = None
        if kind == "outputs":
            if len(outputs) != len(ref.outputs):
                self._worst = float("inf")
                return Mismatch(
                    "outputs", f"{len(outputs)} outputs but the reference gives {len(ref.outputs)}"
                )
            for k, (o, e) in enumerate(zip(outputs, ref.outputs)):
                c = calib.outputs[k] if calib is not None else None
                want = c.dtype if isinstance(c, torch.Tensor) else None
                if calib is None and out_dtypes is not None:
                    want = out_dtypes[k]
                if (
                    want is None
                    and isinstance(e, torch.Tensor)
                    and (not floating(e) or self.all_float64)
                ):
                    want = e.dtype  # float64 inputs: the float64 reference's dtype is the dtype
                m, r = compare(
                    f"output[{k}]",
                    o,
                    e,
                    calib=c,
                    overrides=self.target.tolerances,
                    check_dtype=want,
                    overflow_regime=self._regime(kind, k, o, e),
                    slack=slack.outputs[k] if slack is not None else None,
                    judge_reach=not self._away,
                    nonfinite_ok=self.nonfinite_ok,
                )
                worst = max(worst, r)
                found = found or m
        else:
            for i in wrt:
                c = calib.grads[i] if calib is not None else None
                m, r = compare(
                    f"grad[input={i}]",
                    grads[i],
                    ref.grads[i],
                    calib=c,
                    overrides=self.target.tolerances,
                    overflow_regime=self._regime(kind, i, grads[i], ref.grads[i]),
                    slack=slack.grads[i] if slack is not None else None,
                    judge_reach=not self._away,
                    nonfinite_ok=self.nonfinite_ok,
                )
                worst = max(worst, r)
                found = found or m
        self._worst = worst
        if found is None and (self.overflow_regime or self.nonfinite_ok):
            regime = self.overflow_regime or self.dtype_overflowed
            pairs = (
                zip(outputs, ref.outputs)
                if kind == "outputs"
                else ((grads[i], ref.grads[i]) for i in wrt)
            )
            if any(_nonfinite_where_finite(a, e) for a, e in pairs):
                # what compare accepted there: the overflow regime, else the registration's opt-out
                self.excuse(rules.OVERFLOW_REGIME if regime else rules.NONFINITE_OK)
        return found

    # -- higher order ---------------------------------------------------------------------------
    def calibrated_list(
        self, paths, got, expected, at: AtDtype | None, slack=None, margin=NEAR_OVERFLOW
    ) -> Mismatch | None:
        """`compare_list` calibrated as `pair` is: where the results differ from the float64
        ``expected`` by more than the tolerance, the error the reference math makes at the
        case's dtype (``at``, computed only then) is allowed on top."""
        found = self.compare_list(paths, got, expected, None, slack, margin)
        calib = at.get() if found is not None and at is not None else None
        if calib is None:
            return found
        found = self.compare_list(paths, got, expected, calib, slack, margin)
        if found is None:
            self.excuse(rules.CALIBRATION)
        return found

    def between_runs(self, path, got, want, at: AtDtype | None, k: int = 0) -> Mismatch | None:
        """Two evaluations of the Function at the case's dtype (a vmapped one, ``got``, and
        one per sample, ``want``) that must agree: where they differ by more than the dtype's
        tolerance, each may err by what the reference math errs by at that dtype, so that
        error is allowed on top, as in `pair` (``at``: per result, the reference's results
        ``(at the dtype, in float64)``, computed only then; ``k``: which result)."""
        found, _ = compare(path, got, want, overrides=self.target.tolerances)
        pairs = at.get() if found is not None and at is not None else None
        if pairs is None or k >= len(pairs) or not isinstance(want, torch.Tensor):
            return found
        low, high = pairs[k]
        if not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor)):
            return found
        if low.shape != want.shape or high.shape != want.shape:
            return found
        calib = widen(want) + (widen(low) - widen(high))
        found, _ = compare(
            path,
            got,
            want,
            calib=calib,
            overrides=self.target.tolerances,
            nonfinite_ok=self.nonfinite_ok,
        )
        if found is None:
            self.excuse(rules.CALIBRATION)
        return found

    def compare_list(self, paths, got, expected, calib, slack=None, margin=NEAR_OVERFLOW):
        """The first mismatch between lists of results (second order, forward mode), with the
        looser higher-order tolerances; a None result stands for zeros."""
        for n, (path, g, e) in enumerate(zip(paths, got, expected)):
            c = calib[n] if calib is not None else None
            if g is None and e is not None:
                g = torch.zeros_like(e)
            m, _ = compare(
                path,
                g,
                e,
                calib=c,
                overrides=self.higher_tolerances,
                overflow_regime=self.overflow_regime,
                slack=slack[n] if slack is not None else None,
                near_overflow=margin,
                nonfinite_ok=self.nonfinite_ok,
            )
            if m is not None:
                return m
        return None


#: A reference derivative this many times above central finite differences (plus atol) is
#: taken for a non-differentiable point (`Judge._ill_conditioned`).
ILL_CONDITIONED = 1e3
#: Absolute slack of a finite-difference estimate (its own rounding and truncation).
FD_TOLERANCE = 1e-6
#: How far `_nudged` moves each input element, relative to max(|x|, 1).
NUDGE = 1e-4


#: How many ulps (of the case's dtype, relative to each element) `_jittered` moves an input by.
JITTER_ULPS = 4
#: A references' difference within this many times their own few-ulp jitter is rounding noise.
JITTER_FACTOR = 4.0
#: Jitters tried for the references' rounding noise.
JITTERS = 3


def _compared(kind: str, ev: Evaluation, wrt) -> list[torch.Tensor | None]:
    """The floating outputs (``kind`` "outputs") or the gradients of ``wrt`` of an evaluation."""
    values = list(ev.outputs) if kind == "outputs" else [ev.grads[i] for i in wrt]
    return [v if isinstance(v, torch.Tensor) and floating(v) else None for v in values]


def _ulps(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """`JITTER_ULPS` ulps of ``a``'s dtype at each element of ``x``."""
    return JITTER_ULPS * torch.finfo(a.dtype).eps * x.abs()


def _jittered(case, attempt: int) -> list:
    """The case's floating real inputs, each element moved by up to `JITTER_ULPS` ulps of the
    case's dtype (toward the inside of a bounded spec)."""
    return _moved(case.args, case.recipes, 2000 + attempt, _ulps)


def _jittered_cotangents(cts, attempt: int) -> list:
    """The cotangents (None where an output has none) moved as `_jittered` moves inputs."""
    return _moved(list(cts or []), None, 3000 + attempt, _ulps)


def _nudged(case, attempt: int) -> list:
    """The case's floating inputs moved a little (``NUDGE``), kept inside their spec's bounds:
    off a kink or a tie, not out of the math's domain."""
    return _moved(
        case.args, case.recipes, 1000 + attempt, lambda x, a: NUDGE * x.abs().clamp_min(1.0)
    )


def _moved(tensors, recipes, seed: int, scale) -> list:
    """The floating real ``tensors`` (anything else as is), each element moved by a seeded
    random fraction of ``scale(x, a)`` (``x``: the tensor in float64, ``a``: as given) either
    way, the other way where that leaves its recipe's bounds; cast back to the tensor's dtype."""
    gen = torch.Generator().manual_seed(seed)
    recipes = recipes or (None,) * len(tensors)
    out = []
    for a, recipe in zip(tensors, recipes):
        if not floating(a) or a.is_complex():
            out.append(a)
            continue
        x = a.detach().to(torch.float64)
        step = scale(x, a) * (torch.rand(x.shape, generator=gen) * 2 - 1)
        moved = x + step
        low, high = getattr(recipe, "low", None), getattr(recipe, "high", None)
        outside = torch.zeros_like(moved, dtype=torch.bool)
        if low is not None:
            outside |= moved < low
        if high is not None:
            outside |= moved > high
        out.append(torch.where(outside, x - step, moved).to(a.dtype))
    return out


def _input_index(path: str) -> int | None:
    import re

    m = re.fullmatch(r"grad\[input=(\d+)\]", path)
    return int(m.group(1)) if m else None


def _flat_index(index: tuple[int, ...], shape) -> int:
    flat = 0
    for i, n in zip(index, shape):
        flat = flat * n + i
    return flat


def _unflat(flat: int, shape) -> tuple[int, ...]:
    out = []
    for n in reversed(tuple(shape)):
        out.append(flat % n if n else 0)
        flat //= n if n else 1
    return tuple(reversed(out))


def _nonfinite_where_finite(actual, expected) -> bool:
    """Whether ``actual`` is NaN or inf somewhere ``expected`` (the same shape) is finite."""
    if not (isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor)):
        return False
    if not floating(actual) or actual.shape != expected.shape:
        return False
    a, e = actual.detach().cpu(), expected.detach().cpu()
    return bool((~a.isfinite() & e.isfinite()).any())


def _any_complex(values) -> bool:
    return any(isinstance(v, torch.Tensor) and v.is_complex() for v in values)


def _finite(x) -> bool:
    import math

    return math.isfinite(float(abs(x)))


def sampled(case, share: float) -> bool:
    """Whether ``case`` falls in a ``share`` of all cases, by its own cotangent seed."""
    return (case.direction_seed * 2654435761 % 2**32) < share * 2**32


def _noted(mismatch: Mismatch, note: str) -> Mismatch:
    """``mismatch`` whose message ends with ``(note)``."""
    import dataclasses

    return dataclasses.replace(mismatch, message=f"{mismatch.message} ({note})")


def _higher_tolerances(target) -> dict:
    out = {
        dt: (r * HIGHER_ORDER_SLACK, a * HIGHER_ORDER_SLACK)
        for dt, (r, a) in TOLERANCES.items()
        if dt not in (torch.float64, torch.complex128)
    }
    out.update(target.tolerances)
    return out
