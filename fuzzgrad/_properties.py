"""Properties: the named checks run on each drawn case, and the verdict rules between oracles.

A case passes a property when the custom Function agrees with the torch reference, or (when they
differ) with the JAX reference: where the two references disagree with each other (kinks, ties,
subgradient conventions) agreeing with either one is enough, and the case is counted ambiguous.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from fuzzgrad._compare import Mismatch, compare, tolerance
from fuzzgrad._oracles import (
    HALF,
    Evaluation,
    as_float32,
    as_tuple,
    floating,
    shared_jax,
    torch_oracle,
    torch_vjp,
)
from fuzzgrad._overflow import find_reach, magnitudes, near_max, overflow_regime, same_each
from fuzzgrad._sensitivity import float64_rounding, rounding_slack

#: Every property, in the order they run on a case (each has its own failure type and meta-test).
PROPERTIES = (
    "forward",  # outputs: count, shape, dtype, values
    "vjp",  # gradients for drawn (also non-contiguous and stride-0) cotangents
    "requires_grad_subsets",  # a subset of inputs requiring grad gives the same gradients
    "grad_meta",  # backward's raw results have the input's shape/dtype/device (autograd fixes)
    "purity",  # inputs, outputs and grad_output unchanged (unless mark_dirty)
    "determinism",  # backward twice gives the same bits
    "second_order",  # Hessian-vector products (or a clear error if once_differentiable)
    "forward_ad",  # the Function's jvp, when it defines one
    "vmap",  # torch.func.vmap, when the Function defines vmap or generate_vmap_rule
    "cuda",  # on a GPU, CUDA agrees with CPU
)
DEFAULT_PROPERTIES = PROPERTIES
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


class PropertyFailure(AssertionError):
    """A property does not hold for a case.

    Subclassed per property (`failure_type`) so that Hypothesis shrinks each one separately.
    """

    property = "property"

    def __init__(
        self,
        message: str,
        *,
        mismatch: Mismatch | None = None,
        case: Any = None,
        details: dict | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.mismatch = mismatch
        self.case = case
        self.details = details or {}


FAILURES: dict[str, type[PropertyFailure]] = {}


def failure_type(prop: str) -> type[PropertyFailure]:
    if prop not in FAILURES:
        name = "".join(p.title() for p in prop.split("_")) + "Failure"
        FAILURES[prop] = type(name, (PropertyFailure,), {"property": prop})
    return FAILURES[prop]


class Discard(Exception):
    """The case is outside the math's domain (a reference raised); counted, not a failure."""


@dataclass
class Stats:
    """What a run explored, for reports: counts, coverage and error distribution."""

    examples: int = 0
    discards: Counter = field(default_factory=Counter)
    ambiguous: int = 0
    jax_runs: int = 0
    coverage: dict[str, Counter] = field(
        default_factory=lambda: {
            k: Counter() for k in ("dtype", "layout", "dtype_layout", "ndim", "numel")
        }
    )
    ratio_hist: Counter = field(default_factory=Counter)
    first_failure: dict[str, float] = field(default_factory=dict)
    oracle_note: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def record_case(self, case) -> None:
        from fuzzgrad.strategies import describe_layout

        self.examples += 1
        for a in case.args:
            if not isinstance(a, torch.Tensor):
                continue
            dt = str(a.dtype).replace("torch.", "")
            lay = describe_layout(a)
            self.coverage["dtype"][dt] += 1
            self.coverage["layout"][lay] += 1
            self.coverage["dtype_layout"][f"{dt}|{lay}"] += 1
            self.coverage["ndim"][str(a.dim())] += 1
            n = a.numel()
            bucket = (
                "0"
                if n == 0
                else "1"
                if n == 1
                else "2-8"
                if n <= 8
                else "9-64"
                if n <= 64
                else ">64"
            )
            self.coverage["numel"][bucket] += 1

    def record_ratio(self, ratio: float) -> None:
        if ratio <= 0:
            b = -12
        elif not math.isfinite(ratio):
            b = 2
        else:
            b = max(-12, min(2, 2 * math.floor(math.log10(ratio) / 2)))
        self.ratio_hist[b] += 1

    def histogram(self) -> dict[str, list]:
        edges = list(range(-12, 4, 2))
        return {"edges": edges, "counts": [self.ratio_hist.get(e, 0) for e in edges[:-1]]}


_UNSET = object()


#: What autograd says when a Function writes into an input it was given as is (see
#: `Checker.run_custom`).
_WRITES_INTO_INPUTS = (
    "leaf Variable that requires grad",
    "more than one element of the written-to tensor refers to a single memory location",
)


def _restore(args, snapshot) -> None:
    """Write the values of ``snapshot`` back into the tensors of ``args`` that changed."""
    with torch.no_grad():
        for a, a0 in zip(args, snapshot):
            if isinstance(a, torch.Tensor) and not _same_bits(a, a0):
                a.copy_(a0)


def _same_bits(a: Any, b: Any) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return (a is None) == (b is None)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return bool(torch.equal(a, b))
    return bool(same_each(a, b).all())


class Checker:
    """Runs the selected properties on cases of one target, keeping oracles and stats."""

    def __init__(self, target, properties=None, *, jax_share: float = JAX_COMPILE_SHARE):
        from fuzzgrad._higher import applicable

        self.target = target
        wanted = tuple(properties or target.options.get("properties") or DEFAULT_PROPERTIES)
        self.properties = tuple(p for p in wanted if applicable(target, p))
        self.stats = Stats()
        self.jax = shared_jax() if target.jax_reference is not None else None
        self.jax_share = jax_share
        self._jax_compile0 = self.jax.compile_seconds if self.jax else 0.0
        # Call the Function on copies of the inputs: declared (``mutates_inputs``), or found
        # out afresh on each case (see `run_custom`), so no case's verdict depends on another.
        self._declared_nonleaf = bool(target.options.get("mutates_inputs", False))
        self._out_dtypes: dict[tuple, tuple] = {}  # see `_Calibration`
        self._worst = 0.0
        self._nonleaf = self._declared_nonleaf
        self.magnitudes: tuple = ()  # of the case's inputs (`fuzzgrad._overflow.magnitudes`)
        self.overflow_regime = False
        self.near_max = False
        self._regime_case: tuple | None = None  # (case, wrt, cotangents) for `_reach`
        self._reach_memo: Any = _UNSET
        self._away = False  # judging only the elements the largest inputs do not reach
        self._all_float64 = False
        self.fused = target.options.get("precision") == "fused"
        self.reference = target.reference
        self.numerical = False  # no reference at all: finite differences of the Function itself
        self._auto = self.reference is None and target.jax_reference is None
        if self._auto:
            from fuzzgrad._autoref import auto_reference

            self.reference = auto_reference(target)
        specs = target.inputs if isinstance(target.inputs, tuple) else None
        self._grad_allowed = None if specs is None else [s.requires_grad for s in specs]

    def wants(self, prop: str) -> bool:
        return prop in self.properties

    # -- the custom Function ------------------------------------------------------------
    def differentiable(self, case) -> list[int]:
        """Indices of the floating inputs that may require grad (the "all" in subsets)."""
        allowed = self._grad_allowed
        return [
            i for i, a in enumerate(case.args) if floating(a) and (allowed is None or allowed[i])
        ]

    def run_custom(self, args, wrt, snapshot=None) -> tuple[tuple, list, list]:
        """Call the Function on leaves (views of ``args``) with ``wrt`` requiring grad.

        A Function found to write into its inputs (autograd refuses its in-place write into a
        leaf that requires grad, or into an input whose elements share memory) is called on
        copies from then on; ``args`` are first restored from ``snapshot`` (their values before
        the call), as the write happened before autograd refused it."""
        leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        for i in wrt:
            leaves[i] = leaves[i].requires_grad_(True)
        call = leaves
        if self._nonleaf:
            # In-place (mark_dirty) Functions get copies: a leaf that requires grad cannot be
            # modified in place, and the case's own inputs must stay intact for the references.
            call = [a.clone() if isinstance(a, torch.Tensor) else a for a in leaves]
        try:
            with torch.enable_grad():
                outputs = as_tuple(self.target.fn(*call))
        except RuntimeError as exc:
            if not self._nonleaf and any(m in str(exc) for m in _WRITES_INTO_INPUTS):
                self._nonleaf = True
                if snapshot is not None:
                    _restore(args, snapshot)
                return self.run_custom(args, wrt)
            raise
        return outputs, leaves, call

    # -- one case -------------------------------------------------------------------------
    def check(self, case) -> None:
        """Raise the property's failure type if a selected property fails on ``case``."""
        self.stats.record_case(case)
        self._nonleaf = self._declared_nonleaf
        full = self.differentiable(case)
        case.notes["wrt"] = full
        self.magnitudes = magnitudes(case.args)
        self.overflow_regime = overflow_regime(self.magnitudes)
        self.near_max = self.overflow_regime and near_max(self.magnitudes)
        self._reach_memo, self._regime_case = _UNSET, None
        self._all_float64 = all(a.dtype == torch.float64 for a in case.args if floating(a))
        if self._auto:
            self._probe_auto_reference(case, full)
        if self.numerical:
            return self._check_numerical(case, full)
        snapshot = [a.clone() if isinstance(a, torch.Tensor) else a for a in case.args]
        try:
            outs, leaves, call = self.run_custom(case.args, full, snapshot)
        except Exception as exc:  # noqa: BLE001 - a crash of the Function is a finding
            self._oracle(case, full, None, torch.float64)  # outside the domain: discard instead
            self._fail("forward", f"the Function raised {type(exc).__name__}: {exc}", case)
        if not self._nonleaf and any(o is c for o in outs for c in call):
            # mark_dirty on an input that does not require grad: undo it, then use copies.
            self._nonleaf = True
            _restore(case.args, snapshot)
            outs, leaves, call = self.run_custom(case.args, full)
        versions = [a._version if isinstance(a, torch.Tensor) else None for a in call]
        cts = materialise(case, outs)
        case.notes["cotangents"] = cts
        grads_wanted = (
            bool(full)
            and any(c is not None for c in cts)
            and any(
                self.wants(p) for p in ("vjp", "requires_grad_subsets", "grad_meta", "determinism")
            )
        )
        ref_cts = cts if grads_wanted else None
        self._regime_case = (case, full, ref_cts)
        ref = self._oracle(case, full, ref_cts, torch.float64)
        low = case.dtype not in (None, torch.float64) and self.reference is not None
        calib = _Calibration(self, case, full, ref_cts) if low else None
        # precision="fused": the Function's own float32 run, once per half-precision case
        wide = self._float32_run(case, full, ref_cts) if self.fused and case.dtype in HALF else None
        out_snap = (
            [o.detach().clone() if isinstance(o, torch.Tensor) else o for o in outs]
            if self.wants("purity")
            else None
        )
        if self.wants("forward"):
            self._check_pair("forward", case, full, cts, outs, None, ref, calib, "outputs")
            if wide is not None:
                paths = [f"output[{k}]" for k in range(len(outs))]
                self._check_fused("forward", case, paths, outs, wide.outputs)
        if grads_wanted:
            ct_snap = [c.clone() if c is not None else None for c in cts]
            retain = self.wants("determinism") or self.wants("grad_meta")
            grads = self._grads(case, outs, leaves, full, cts, retain=retain)
            if self.wants("purity"):
                for k, (c, c0) in enumerate(zip(cts, ct_snap)):
                    if c is not None and not _same_bits(c, c0):
                        self._fail("purity", f"backward modified grad_output[{k}] in place", case)
            if self.wants("vjp"):
                self._check_pair("vjp", case, full, cts, None, grads, ref, calib, "grads")
            if wide is not None and self.wants("vjp"):
                paths = [f"grad[input={i}]" for i in full]
                got, want = [grads[i] for i in full], [wide.grads[i] for i in full]
                self._check_fused("vjp", case, paths, got, want)
            if self.wants("purity"):
                self._check_purity(case, snapshot, call, versions, outs, out_snap)
            if self.wants("determinism"):
                again = self._grads(
                    case,
                    outs,
                    leaves,
                    full,
                    cts,
                    retain=self.wants("grad_meta"),
                    prop="determinism",
                )
                for i in full:
                    if not _same_bits(grads[i], again[i]):
                        self._fail(
                            "determinism",
                            f"grad[input={i}]: backward run twice on the "
                            "same graph gives different bits",
                            case,
                        )
            if self.wants("grad_meta"):  # last: calling backward by hand may have side effects
                self._check_grad_meta(case, outs, cts, call, full)
        elif self.wants("purity"):
            self._check_purity(case, snapshot, call, versions, outs, out_snap)
        subset = [i for i in full if case.requires_grad[i]]
        if self.wants("requires_grad_subsets") and grads_wanted and subset != full:
            self._check_subset(case, subset, ref, calib)
        from fuzzgrad._higher import check_higher

        check_higher(self, case, full, cts)

    def _probe_auto_reference(self, case, full) -> None:
        """On the first case, find out whether forward can serve as its own reference."""
        from fuzzgrad._autoref import AutoReferenceImpossible

        try:
            torch_oracle(self.reference, case.args, full, None)
        except AutoReferenceImpossible as exc:
            self.numerical, self.reference = True, None
            self.stats.oracle_note = f"numerical oracle (finite differences): {exc}"
        except Exception:  # noqa: BLE001 - outside the domain; probe again on the next case
            return
        self._auto = False

    def _check_numerical(self, case, full) -> None:
        """VJP against central finite differences of the Function's own forward, in float64."""
        from fuzzgrad._autoref import numerical_vjp

        try:
            outs, leaves, _ = self.run_custom(case.args, full)
        except Exception as exc:  # noqa: BLE001
            self._fail("forward", f"the Function raised {type(exc).__name__}: {exc}", case)
        cts = materialise(case, outs)
        case.notes["cotangents"] = cts
        if not self.wants("vjp") or not full or all(c is None for c in cts):
            return
        grads = self._grads(case, outs, leaves, full, cts, retain=False)
        rtol, atol = tolerance(case.dtype or torch.float64, self.target.tolerances)
        for dirs, estimate, scale in numerical_vjp(self.target.fn, case.args, full, cts):
            dot = sum(
                float((grads[i].to(torch.float64) * d).sum())
                for i, d in dirs.items()
                if grads[i] is not None
            )
            allowed = 1e-4 * scale + max(rtol, 1e-5) * abs(estimate) + atol
            if not abs(dot - estimate) <= allowed:
                self._fail(
                    "vjp",
                    f"<grad, direction> = {dot:.6g} but central finite differences "
                    f"of the Function's own forward give {estimate:.6g} (no reference "
                    "registered; numerical oracle)",
                    case,
                )

    def _grads(self, case, outs, leaves, wrt, cts, *, retain, prop="vjp") -> list:
        pairs = [(o, c) for o, c in zip(outs, cts) if c is not None]
        grads: list[torch.Tensor | None] = [None] * len(case.args)
        if not pairs or not wrt:
            return grads
        try:
            got = torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in wrt],
                [c for _, c in pairs],
                allow_unused=True,
                retain_graph=retain,
            )
        except Exception as exc:  # noqa: BLE001
            self._fail(prop, f"backward raised {type(exc).__name__}: {exc}", case)
        for i, g in zip(wrt, got):
            grads[i] = g
        return grads

    def _check_grad_meta(self, case, outs, cts, call, full) -> None:
        cls = self.target.function
        node = next((o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn), None)
        if cls is None or node is None or type(node).__name__ != f"{cls.__name__}Backward":
            return  # a plain callable whose last node is not the Function: nothing to inspect
        grads_in = [
            c.clone() if c is not None else (torch.zeros_like(o) if floating(o) else None)
            for o, c in zip(outs, cts)
        ]
        try:
            raw = as_tuple(node.apply(*grads_in))
        except Exception:  # noqa: BLE001 - the vjp property reports a crashing backward
            return
        for i in full:
            g = raw[i] if i < len(raw) else None
            if not isinstance(g, torch.Tensor):
                continue
            x = call[i]
            for what, got, want in (
                ("shape", tuple(g.shape), tuple(x.shape)),
                ("dtype", g.dtype, x.dtype),
                ("device", g.device, x.device),
            ):
                if got != want:
                    self._fail(
                        "grad_meta",
                        f"backward returned grad[input={i}] with {what} "
                        f"{got} for an input with {what} {want}; autograd silently "
                        f"{'sums' if what == 'shape' else 'casts'} it, but other callers "
                        "(double backward, torch.func) may not",
                        case,
                    )

    def _check_purity(self, case, snapshot, call, versions, outs, out_snap) -> None:
        dirty = {id(o) for o in outs if isinstance(o, torch.Tensor)}
        for i, (a, a0) in enumerate(zip(case.args, snapshot)):
            if isinstance(a, torch.Tensor) and not _same_bits(a, a0):
                self._fail(
                    "purity",
                    f"input {i} was modified in place (values changed) without ctx.mark_dirty",
                    case,
                )
        for i, (c, v) in enumerate(zip(call, versions)):
            if isinstance(c, torch.Tensor) and c._version != v and id(c) not in dirty:
                self._fail(
                    "purity", f"input {i} was modified in place without ctx.mark_dirty", case
                )
        for k, (o, o0) in enumerate(zip(outs, out_snap)):
            if isinstance(o, torch.Tensor) and not _same_bits(o.detach(), o0):
                self._fail(
                    "purity",
                    f"output[{k}] changed after backward ran (backward "
                    "modified a saved tensor in place)",
                    case,
                )

    def _check_subset(self, case, subset, ref, calib) -> None:
        case.notes["wrt"] = subset
        outs, leaves, _ = self.run_custom(case.args, subset)
        cts = materialise(case, outs)
        grads = self._grads(
            case, outs, leaves, subset, cts, retain=False, prop="requires_grad_subsets"
        )
        self._check_pair(
            "requires_grad_subsets", case, subset, cts, None, grads, ref, calib, "grads"
        )

    def _float32_run(self, case, wrt, cts) -> Evaluation | None:
        """The Function on the case's inputs and cotangents upcast with `as_float32`; None if
        that raises (a float32 crash is the float32 cases' finding)."""
        args = [as_float32(a) for a in case.args]
        if self._nonleaf:
            args = [a.clone() if floating(a) else a for a in args]
        try:
            return torch_vjp(
                self.target.fn, args, wrt, None if cts is None else [as_float32(c) for c in cts]
            )
        except Exception:  # noqa: BLE001
            return None

    def _check_fused(self, prop, case, paths, got, want) -> None:
        """precision="fused": each half-precision result must be the Function's own float32
        result (`_float32_run`) rounded once to the half dtype. Both sides are the Function, so
        no reference's rounding enters; whether the float32 path is right is judged on float32
        cases. A forgotten upcast (half intermediates) is caught."""
        for path, g, w in zip(paths, got, want):
            if not (isinstance(g, torch.Tensor) and floating(g) and isinstance(w, torch.Tensor)):
                continue
            m, _ = compare(path, g, w.to(g.dtype), fused=True, overrides=self.target.tolerances)
            if m is not None:
                self._fail(
                    prop,
                    f"{m} (precision='fused': against the Function's own float32 result, "
                    "rounded once)",
                    case,
                    m,
                )

    def _oracle(self, case, wrt, cts, dtype) -> Evaluation:
        try:
            if self.reference is not None:
                return torch_oracle(self.reference, case.args, wrt, cts, dtype)
            return self._run_jax(case, wrt, cts)
        except Exception as exc:  # noqa: BLE001 - outside the math's domain
            reason = f"reference raised {type(exc).__name__}"
            self.stats.discards[reason] += 1
            raise Discard(reason) from exc

    def _run_jax(self, case, wrt, cts) -> Evaluation:
        """The JAX reference's outputs and vjp, once per case, inputs and cotangents (the
        forward and vjp properties share one evaluation; so does a raise)."""
        memo = case.notes.setdefault("_jax", {})
        key = (tuple(wrt), None if cts is None else id(cts))
        if key not in memo:
            self.stats.jax_runs += 1
            try:
                memo[key] = (self.jax(self.target.jax_reference, case.args, wrt, cts), None)
            except Exception as exc:  # noqa: BLE001 - raised again to each caller
                memo[key] = (None, exc)
        value, exc = memo[key]
        if exc is not None:
            raise exc
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
            low = self.jax(self.target.jax_reference, case.args, wrt, cts, working=case.dtype)
        except Exception:  # noqa: BLE001 - outside the JAX reference's domain at this dtype
            return None

        def worse(t, j, e):
            if not all(isinstance(v, torch.Tensor) and floating(v) for v in (t, j, e)):
                return t
            t64, j64, e64 = (v.detach().to(torch.float64) for v in (t, j, e))
            further = (j64 - e64).abs().nan_to_num(0.0) > (t64 - e64).abs().nan_to_num(0.0)
            return torch.where(further, j64, t64)

        return Evaluation(
            tuple(worse(t, j, e) for t, j, e in zip(calib.outputs, low.outputs, ref.outputs)),
            tuple(worse(t, j, e) for t, j, e in zip(calib.grads, low.grads, ref.grads)),
        )

    def _check_pair(self, prop, case, wrt, cts, outputs, grads, ref, lazy, kind) -> None:
        # The reference at the case's dtype only widens the tolerance, so a case that passes
        # without it passes with it: it is computed only for a comparison that fails without.
        calib = lazy.value if lazy is not None else None
        dtypes = lazy.out_dtypes if lazy is not None else None
        first = self._compare_all(
            kind, outputs, grads, ref, calib, wrt, record=False, out_dtypes=dtypes
        )
        if first is not None and lazy is not None and calib is None:
            calib = lazy.get()
            first = self._compare_all(kind, outputs, grads, ref, calib, wrt, record=False)
        self.stats.record_ratio(self._worst)
        if first is not None and self.reference is not None:
            # Where the math is ill-conditioned or the result a cancellation of large terms,
            # honest rounding at the dtype errs by more than any fixed tolerance: allow that.
            slack = rounding_slack(self.reference, case.args, wrt, cts, ref)
            if (
                slack is not None
                and self._compare_all(
                    kind, outputs, grads, ref, calib, wrt, record=False, slack=slack
                )
                is None
            ):
                return
            # The reference math's error at this dtype, from the JAX reference too: the torch
            # reference may accumulate in float64 (torch's CPU LayerNorm does) where a textbook
            # formula, the Function's and JAX's, cancels in float32.
            wider = self._jax_calibration(case, wrt, cts, ref, calib)
            if (
                wider is not None
                and self._compare_all(
                    kind, outputs, grads, ref, wider, wrt, record=False, slack=slack
                )
                is None
            ):
                return
        if first is not None and calib is None and self._all_float64 and self.reference:
            # A float64 Function may differ from the float64 reference by that reference's own
            # rounding where the math is ill-conditioned (huge terms cancelling): allow it.
            cond = self._conditioning(case, wrt, cts, ref)
            if (
                cond is not None
                and self._compare_all(kind, outputs, grads, ref, cond, wrt, record=False) is None
            ):
                return
        run_jax = (
            self.jax is not None
            and self.reference is not None
            and (
                first is not None
                or (
                    _sampled(case, JAX_PASSING_SHARE)
                    and (
                        self.jax.is_warm(self.target.jax_reference, case.args, wrt, cts)
                        or self._may_compile()
                    )
                )
            )
        )
        if not run_jax:
            if first is not None:
                self._fail(prop, str(first), case, first)
            return
        try:
            jref = self._run_jax(case, wrt, cts)
        except Exception as exc:  # noqa: BLE001
            if first is not None:
                self._fail(
                    prop, f"{first} (the JAX reference raised {type(exc).__name__})", case, first
                )
            return
        second = self._compare_all(
            kind, outputs, grads, jref, calib, wrt, record=False, out_dtypes=dtypes
        )
        if second is not None and lazy is not None and calib is None:
            calib = lazy.get()
            second = self._compare_all(kind, outputs, grads, jref, calib, wrt, record=False)
        if first is not None and second is not None:
            # Where the two references differ from each other, their disagreement is the
            # precision the math allows here (cancellation, kinks): widen by it, like calibration.
            if self._compare_all(kind, outputs, grads, ref, jref, wrt, record=False) is None:
                first = None
        self.vote(
            prop,
            case,
            first,
            second,
            lambda: self._compare_all(
                kind,
                ref.outputs if kind == "outputs" else None,
                ref.grads if kind == "grads" else None,
                jref,
                None,
                wrt,
                record=False,
            ),
            away=lambda: self._check_pair(prop, case, wrt, cts, outputs, grads, ref, lazy, kind),
        )

    def vote(self, prop, case, first, second, refs_differ, away=None) -> None:
        """Either-agreement: fail only if the custom Function disagrees with both references.

        ``away``, where given, runs the same check again judging only the elements that the
        inputs past the overflow size do not reach (``self._away``); it raises if the Function
        disagrees with both references there."""
        if first is None and second is None:
            return
        if first is None or second is None:
            self.stats.ambiguous += 1  # the references disagree here; agreeing with one is enough
            return
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
                    away()
                finally:
                    self._away = False
            self.stats.ambiguous += 1
            return
        note = (
            "the torch and JAX references also disagree with each other"
            if differ
            else "JAX agrees with the torch reference"
        )
        if self._away:
            note += "; judged only where the inputs past the overflow size do not reach"
        self._fail(prop, f"{first} ({note})", case, first)

    def _reach(self) -> Evaluation | None:
        """The elements the case's inputs past the overflow size reach (`find_reach`), in the
        reference and in the Function itself; None (every element) where unknown. Once per
        case, on demand."""
        if self._reach_memo is _UNSET:
            self._reach_memo = None
            if self._regime_case is None:
                return None
            case, wrt, cts = self._regime_case
            fn = self.target.fn
            if self._nonleaf:  # in-place Functions get copies, as in `run_custom`

                def fn(*xs):
                    return self.target.fn(*(x.clone() if floating(x) else x for x in xs))

            if self.reference is not None:
                reference = functools.partial(torch_oracle, self.reference)
            else:
                reference = functools.partial(self.jax, self.target.jax_reference)
            self._reach_memo = find_reach(reference, fn, case.args, wrt, cts)
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

    def _compare_all(
        self, kind, outputs, grads, ref, calib, wrt, record=True, slack=None, out_dtypes=None
    ):
        """The first mismatch of ``kind`` against ``ref`` (None if all agree); the worst
        error/tolerance ratio is left in ``self._worst``. ``out_dtypes``: the output dtypes the
        reference gives at the case's dtype, where ``calib`` is not computed."""
        worst = 0.0
        found = None
        if kind == "outputs":
            if len(outputs) != len(ref.outputs):
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
                    and (not floating(e) or self._all_float64)
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
                )
                worst = max(worst, r)
                found = found or m
        self._worst = worst
        if record:
            self.stats.record_ratio(worst)
        return found

    def _fail(self, prop, message, case, mismatch=None):
        self.stats.first_failure.setdefault(prop, time.perf_counter() - self.stats.started)
        raise failure_type(prop)(message, mismatch=mismatch, case=case)


class _Calibration:
    """The reference evaluated at the case's own dtype (`Checker._oracle` with no float64
    upcast), computed on first use: only a comparison that fails without it needs it.

    Its output dtypes, which the Function's outputs must have, depend only on the dtypes of the
    arguments; they are kept per dtype signature, and computed eagerly for a new one."""

    def __init__(self, checker, case, wrt, cts):
        self._args = (checker, case, wrt, cts)
        self._key = tuple(
            a.dtype if isinstance(a, torch.Tensor) else type(a).__name__ for a in case.args
        )
        self.value: Evaluation | None = None
        self.out_dtypes = checker._out_dtypes.get(self._key)
        if self.out_dtypes is None:
            self.get()

    def get(self) -> Evaluation:
        if self.value is None:
            checker, case, wrt, cts = self._args
            self.value = checker._oracle(case, wrt, cts, None)
            self.out_dtypes = tuple(
                o.dtype if isinstance(o, torch.Tensor) else None for o in self.value.outputs
            )
            checker._out_dtypes[self._key] = self.out_dtypes
        return self.value


def _sampled(case, share: float) -> bool:
    """Whether ``case`` falls in a ``share`` of all cases, by its own cotangent seed."""
    return (case.direction_seed * 2654435761 % 2**32) < share * 2**32


def materialise(case, outputs) -> list[torch.Tensor | None]:
    """The cotangents a case uses for these outputs (None for non-differentiable ones)."""
    fixed = case.notes.get("fixed_cotangents")
    if fixed is not None:  # a replayed case brings its exact cotangents
        return [
            c if isinstance(o, torch.Tensor) and o.requires_grad else None
            for o, c in zip(outputs, fixed)
        ]
    return [
        case.cotangent_for(k, o)
        if isinstance(o, torch.Tensor) and floating(o) and o.requires_grad
        else None
        for k, o in enumerate(outputs)
    ]


__all__ = ["PROPERTIES", "Checker", "Discard", "PropertyFailure", "Stats"]
