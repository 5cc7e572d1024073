"""Properties: the named checks run on each drawn case, and the verdict rules between oracles.

A case passes a property when the custom Function agrees with the torch reference, or (when they
differ) with the JAX reference: where the two references disagree with each other (kinks, ties,
subgradient conventions) agreeing with either one is enough, and the case is counted ambiguous.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

from fuzzgrad._compare import Mismatch, compare
from fuzzgrad._oracles import Evaluation, as_tuple, floating, shared_jax, torch_oracle, upcast

#: Every property, in the order they run on a case. Issue-4 properties extend this tuple.
PROPERTIES = ("forward", "vjp")
DEFAULT_PROPERTIES = PROPERTIES
#: Share of run time that JAX compilation may take on cases the torch reference already passes.
#: JAX always runs where the custom Function disagrees with the torch reference (it can only
#: change a verdict there) and on every passing case whose signature is already compiled.
JAX_COMPILE_SHARE = 0.1


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


@dataclass
class Outcome:
    """What happened on one case (for ablation: did the property still fail?)."""

    failure: PropertyFailure | None = None


def _wrt(case) -> list[int]:
    return [i for i, (a, rg) in enumerate(zip(case.args, case.requires_grad)) if rg and floating(a)]


def _leaves(case, wrt) -> list[Any]:
    leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in case.args]
    for i in wrt:
        leaves[i] = leaves[i].requires_grad_(True)
    return leaves


class Checker:
    """Runs the selected properties on cases of one target, keeping oracles and stats."""

    def __init__(self, target, properties=None, *, jax_share: float = JAX_COMPILE_SHARE):
        self.target = target
        self.properties = tuple(
            properties or target.options.get("properties") or DEFAULT_PROPERTIES
        )
        self.stats = Stats()
        self.jax = shared_jax() if target.jax_reference is not None else None
        self.jax_share = jax_share
        self._jax_compile0 = self.jax.compile_seconds if self.jax else 0.0
        self._nonleaf = bool(target.options.get("mutates_inputs", False))

    # -- the custom Function ------------------------------------------------------------
    def run_custom(self, case, wrt, *, create_graph=False) -> tuple[tuple, list, Any]:
        leaves = _leaves(case, wrt)
        call = leaves
        if self._nonleaf:
            # In-place (mark_dirty) Functions cannot take leaves that require grad.
            call = [a.clone() if i in wrt else a for i, a in enumerate(leaves)]
        try:
            with torch.enable_grad():
                outputs = as_tuple(self.target.fn(*call))
        except RuntimeError as exc:
            if "leaf Variable that requires grad" in str(exc) and not self._nonleaf:
                self._nonleaf = True
                return self.run_custom(case, wrt, create_graph=create_graph)
            raise
        return outputs, leaves, call

    # -- one case -------------------------------------------------------------------------
    def check(self, case) -> None:
        """Raise the property's failure type if a selected property fails on ``case``."""
        self.stats.record_case(case)
        target = self.target
        wrt = _wrt(case)
        low = case.dtype not in (None, torch.float64)
        primary = target.reference is not None
        # Float64 oracle forward (cotangents come from the custom outputs, so VJP comes later).
        try:
            custom_out, leaves, _ = self.run_custom(case, wrt)
        except Exception as exc:  # noqa: BLE001 - a crash of the Function is a finding
            self._reference_or_discard(case, wrt)
            self._fail("forward", f"the Function raised {type(exc).__name__}: {exc}", case)
        cts = [
            case.cotangent_for(k, o)
            if isinstance(o, torch.Tensor) and o.requires_grad and floating(o)
            else None
            for k, o in enumerate(custom_out)
        ]
        case.notes["cotangents"] = cts
        want_vjp = "vjp" in self.properties and any(c is not None for c in cts) and wrt
        ref = self._oracle(case, wrt, cts if want_vjp else None, torch.float64)
        calib = (
            self._oracle(case, wrt, cts if want_vjp else None, None) if low and primary else None
        )
        if "forward" in self.properties:
            self._check_pair("forward", case, wrt, cts, custom_out, None, ref, calib, "outputs")
        if want_vjp:
            try:
                got = torch.autograd.grad(
                    [o for o, c in zip(custom_out, cts) if c is not None],
                    [leaves[i] for i in wrt],
                    [c for c in cts if c is not None],
                    allow_unused=True,
                )
            except Exception as exc:  # noqa: BLE001
                self._fail("vjp", f"backward raised {type(exc).__name__}: {exc}", case)
            grads = [None] * len(case.args)
            for i, g in zip(wrt, got):
                grads[i] = g
            self._check_pair("vjp", case, wrt, cts, None, grads, ref, calib, "grads")

    def _reference_or_discard(self, case, wrt) -> None:
        self._oracle(case, wrt, None, torch.float64)

    def _oracle(self, case, wrt, cts, dtype) -> Evaluation:
        target = self.target
        try:
            if target.reference is not None:
                return torch_oracle(target.reference, case.args, wrt, cts, dtype)
            return self._run_jax(case, wrt, cts)
        except Exception as exc:  # noqa: BLE001 - outside the math's domain
            reason = f"reference raised {type(exc).__name__}"
            self.stats.discards[reason] += 1
            raise Discard(reason) from exc

    def _run_jax(self, case, wrt, cts) -> Evaluation:
        self.stats.jax_runs += 1
        return self.jax(self.target.jax_reference, case.args, wrt, cts)

    def _check_pair(self, prop, case, wrt, cts, outputs, grads, ref, calib, kind) -> None:
        dtype = case.dtype
        first = self._compare_all(kind, outputs, grads, ref, calib, dtype, wrt)
        run_jax = (
            self.jax is not None
            and self.target.reference is not None
            and (
                first is not None
                or self.jax.is_warm(self.target.jax_reference, case.args, wrt, cts)
                or self._may_compile()
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
        second = self._compare_all(kind, outputs, grads, jref, calib, dtype, wrt, record=False)
        if first is None and second is None:
            return
        if first is None or second is None:
            self.stats.ambiguous += 1  # the references disagree here; agreeing with one is enough
            return
        refs_agree = (
            self._compare_all(
                kind,
                ref.outputs if kind == "outputs" else None,
                ref.grads if kind == "grads" else None,
                jref,
                None,
                torch.float64,
                wrt,
                record=False,
            )
            is None
        )
        note = (
            "JAX agrees with the torch reference"
            if refs_agree
            else ("the torch and JAX references also disagree with each other")
        )
        self._fail(prop, f"{first} ({note})", case, first)

    def _may_compile(self) -> bool:
        spent = self.jax.compile_seconds - self._jax_compile0
        return spent <= self.jax_share * (time.perf_counter() - self.stats.started)

    def _compare_all(self, kind, outputs, grads, ref, calib, dtype, wrt, record=True):
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
                if want is None and isinstance(e, torch.Tensor) and not floating(e):
                    want = e.dtype
                m, r = compare(
                    f"output[{k}]",
                    o,
                    e,
                    calib=c,
                    dtype=None,
                    overrides=self.target.tolerances,
                    check_dtype=want,
                )
                worst = max(worst, r)
                found = found or m
        else:
            for i in wrt:
                c = calib.grads[i] if calib is not None else None
                g = grads[i]
                m, r = compare(
                    f"grad[input={i}]",
                    g,
                    ref.grads[i],
                    calib=c,
                    dtype=None,
                    overrides=self.target.tolerances,
                )
                worst = max(worst, r)
                found = found or m
        if record:
            self.stats.record_ratio(worst)
        return found

    def _fail(self, prop, message, case, mismatch=None):
        self.stats.first_failure.setdefault(prop, time.perf_counter() - self.stats.started)
        raise failure_type(prop)(message, mismatch=mismatch, case=case)


def materialise(case, outputs) -> list[torch.Tensor | None]:
    """The cotangents a case uses for these outputs (None for non-differentiable ones)."""
    return [
        case.cotangent_for(k, o)
        if isinstance(o, torch.Tensor) and floating(o) and o.requires_grad
        else None
        for k, o in enumerate(outputs)
    ]


__all__ = ["Checker", "Discard", "PropertyFailure", "PROPERTIES", "Stats", "upcast"]
