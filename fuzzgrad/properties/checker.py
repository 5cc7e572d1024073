"""The Checker: runs the properties selected for a target on each case, every one of them.

A case passes a property when the custom Function agrees with the torch reference, or (when they
differ) with the JAX reference (`fuzzgrad.verdict.judge`). Every selected property runs on every
case, whatever another found on it, so a forward failure never hides a gradient failure: `run`
returns each failing property's failure. A case outside the math's domain (a reference raised)
is discarded and counted.
"""

from __future__ import annotations

import math
import time

import torch

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.oracles.evaluation import floating
from fuzzgrad.oracles.torch_ref import torch_oracle
from fuzzgrad.properties.base import Discard, PropertyFailure, Skip, failure_type
from fuzzgrad.properties.case import CaseRun, materialise
from fuzzgrad.registry.target import argument_names
from fuzzgrad.strategies import describe_layout
from fuzzgrad.verdict.compare import tolerance
from fuzzgrad.verdict.judge import JAX_COMPILE_SHARE, Judge
from fuzzgrad.verdict.stats import Stats

#: Tensors with at most this many elements have their values in reports (as reproducers do).
MAX_SHOWN_VALUES = 16


def describe_inputs(case, target=None) -> list[dict]:
    """Per argument: its name in the Function's signature (when ``target`` is given), then
    shape, dtype, stride, storage offset, layout, device, requires_grad and, for a tensor of at
    most `MAX_SHOWN_VALUES` elements, its values; or the ``value`` of a non-tensor argument."""
    names = argument_names(target, len(case.args)) if target is not None else None
    out = []
    for i, a in enumerate(case.args):
        entry: dict = {"index": i}
        if names is not None:
            entry["name"] = names[i]
        if isinstance(a, torch.Tensor):
            entry.update(describe_tensor(a))
            entry["requires_grad"] = bool(case.requires_grad[i])
        else:
            entry["value"] = repr(a)[:200]
        out.append(entry)
    return out


def describe_cotangents(case) -> list[dict]:
    """The cotangents (``grad_output``) the case used, one per output that got one: its index,
    then what `describe_tensor` says."""
    return [
        {"output": k, **describe_tensor(c)}
        for k, c in enumerate(case.notes.get("cotangents") or ())
        if isinstance(c, torch.Tensor)
    ]


def describe_tensor(t: torch.Tensor) -> dict:
    """Shape, dtype, stride, storage offset, layout kind, device and (when small) values."""
    out = {
        "shape": list(t.shape),
        "dtype": str(t.dtype).replace("torch.", ""),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "layout": describe_layout(t),
        "device": str(t.device),
    }
    if t.numel() <= MAX_SHOWN_VALUES:
        out["values"] = [_json_number(v) for v in t.detach().cpu().reshape(-1).tolist()]
    return out


def _json_number(v) -> int | float | bool | str:
    """A tensor element as JSON holds it: non-finite floats and complex numbers as text."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan", "inf", "-inf"
    if isinstance(v, complex):
        return str(v)
    return v


class Checker:
    """Runs the selected properties on cases of one target, keeping oracles and stats."""

    def __init__(
        self, target, properties=None, *, jax_share: float = JAX_COMPILE_SHARE, reported=()
    ):
        from fuzzgrad.properties import select

        self.target = target
        #: Properties already reported failing (by an earlier round): what only they check is
        #: skipped and counted here, not found again.
        self.reported = frozenset(reported)
        self.selected = select(target, properties)
        self.properties = tuple(p.name for p in self.selected)
        self.stats = Stats()
        self.fused = target.options.get("precision") == "fused"
        # Call the Function on copies of the inputs: declared (``mutates_inputs``), or found
        # out afresh on each case (see `CaseRun.call`), so no case's verdict depends on another.
        self.declared_nonleaf = bool(target.options.get("mutates_inputs", False))
        reference = target.reference
        self.numerical = False  # no reference at all: finite differences of the Function itself
        self._auto = reference is None and target.jax_reference is None
        if self._auto and target.options.get("oracle") == "differences":
            # Autograd of the forward is known not to be its derivative (`fuzzgrad scan` found
            # it disagreeing with finite differences: an iterative forward, say).
            self._auto, self.numerical = False, True
            self.stats.oracle_note = "numerical oracle (finite differences): oracle='differences'"
        if self._auto:
            from fuzzgrad.oracles.autoref import auto_reference

            reference = auto_reference(target)
        jax = None
        if target.jax_reference is not None:
            from fuzzgrad.oracles.jax_ref import shared_jax

            jax = shared_jax()
        self.judge = Judge(target, reference, jax, self.stats, jax_share=jax_share)
        specs = target.inputs if isinstance(target.inputs, tuple) else None
        self._grad_allowed = None if specs is None else [s.requires_grad for s in specs]
        self._needs = frozenset().union(*(p.needs for p in self.selected))
        self._structure_checked = False
        #: Per-target state properties keep between cases (compiled programs, say).
        self.cache: dict[str, dict] = {}

    def only(self, names) -> Checker:
        """This checker restricted to the properties ``names`` (sharing its oracles, its
        verdicts and its stats)."""
        import copy

        narrowed = copy.copy(self)
        narrowed.selected = tuple(p for p in self.selected if p.name in set(names))
        narrowed.properties = tuple(p.name for p in narrowed.selected)
        narrowed._needs = frozenset().union(*(p.needs for p in narrowed.selected))
        return narrowed

    @property
    def reference(self):
        """The torch reference the verdicts use (None: JAX only, or finite differences)."""
        return self.judge.reference

    @property
    def jax(self):
        return self.judge.jax

    def wants(self, prop: str) -> bool:
        return prop in self.properties

    def needs(self, what: str) -> bool:
        """Whether a selected property needs ``what`` (``"grads"``, ``"retain"``)."""
        return what in self._needs

    def describe(self, case) -> list[dict]:
        return describe_inputs(case, self.target)

    def differentiable(self, case) -> list[int]:
        """Indices of the floating inputs that may require grad (the "all" in subsets)."""
        allowed = self._grad_allowed
        return [
            i for i, a in enumerate(case.args) if floating(a) and (allowed is None or allowed[i])
        ]

    # -- one case -------------------------------------------------------------------------------
    def check(self, case) -> None:
        """Raise the first failure of a selected property on ``case`` (`Discard` if a
        reference raised)."""
        failures = self.run(case)
        if failures:
            raise next(iter(failures.values()))

    def run(self, case) -> dict[str, PropertyFailure]:
        """Every selected property's failure on ``case``, in run order (`Discard` if a
        reference raised: the case is outside the math's domain)."""
        self.stats.record_case(case)
        full = self.differentiable(case)
        case.notes["wrt"] = full
        self.judge.start(case, self.declared_nonleaf)
        try:
            if self._auto:
                self._probe_auto_reference(case, full)
            if self.numerical:
                return self._run_numerical(case, full)
            return self._run(case, full)
        finally:
            self.judge.finish()

    def _run(self, case, full) -> dict[str, PropertyFailure]:
        run = CaseRun(self, case, full)
        failures: dict[str, PropertyFailure] = {}
        try:
            run.start()
        except Discard:  # the case is outside the Function's contract (counted by `start`)
            raise
        except Exception as exc:  # noqa: BLE001 - a crash of the Function is a finding
            run.judge.oracle(case, full, None, torch.float64, self.describe)  # else: discard
            owner = "forward" if self.wants("forward") else self.properties[0]
            if "forward" in self.reported or not self.selected:
                # reported once, under forward (which found it before it was left out)
                self.stats.skipped["the Function raised (reported under forward)"] += 1
                return failures
            message = f"the Function raised {raised(exc)}"
            self.stats.checked[owner] += 1
            self._found(failures, failure_type(owner)(message, case=case))
            return failures
        run.reference  # noqa: B018 - outside the math's domain: Discard before any verdict
        if not self._structure_checked:
            self._check_structure(run)
        for prop in self.selected:
            try:
                self.stats.checked[prop.name] += 1
                self.judge.property = prop.name
                prop.check(run)
            except PropertyFailure as exc:
                self._found(failures, exc)
            except Skip as why:
                self.stats.checked[prop.name] -= 1
                self.stats.skipped[f"{prop.name}: {why}"] += 1
            except (Discard, InvalidRegistration):
                raise
            except Exception as exc:  # noqa: BLE001 - sorted by who raised it
                self._escaped(prop.name, exc, case, failures)
        return failures

    def _escaped(self, prop: str, exc: Exception, case, failures: dict) -> None:
        """An exception that escaped property ``prop``'s check. Raised in the user's code (a
        call the property made without guarding it), it is that property's finding. Raised in
        fuzzgrad's own code it is an internal error, counted with its traceback
        (`Stats.record_internal`), and never costs a finding: a failure it interrupted (found
        in its context, as when building the failure's message raised) is kept, and the other
        properties of the case still run."""
        from fuzzgrad.verdict.identity import raised_by_user

        if raised_by_user(exc):
            message = f"{prop}: the Function raised {raised(exc)}"
            self._found(failures, failure_type(prop)(message, case=case, cause=exc))
            return
        self.stats.record_internal(prop, exc)
        context = exc.__context__
        while context is not None and not isinstance(context, PropertyFailure):
            context = context.__context__
        if isinstance(context, PropertyFailure):
            self._found(failures, context)

    def _check_structure(self, run) -> None:
        """On the first case both references judge, what each returns must be what the
        Function returns: as many outputs, of the same kind (floating, complex, integer, bool),
        and the references must agree with each other on their shapes too; otherwise the
        registration is wrong (`InvalidRegistration`, naming the argument shapes and every
        output structure). A shape the Function alone gets wrong is its bug: ``forward``
        reports it."""
        target, case = self.target, run.case
        refs = []
        if self.judge.reference is not None and target.reference is not None:
            refs.append(("reference", run.reference.outputs))
        if target.jax_reference is not None:
            try:  # the evaluation the verdicts share, else outputs only (a cotangent shaped
                # like the Function's output need not fit a wrong reference's output)
                try:
                    jref = self.judge.run_jax(case, run.wrt, run.ref_cotangents)
                except Exception:  # noqa: BLE001
                    jref = self.judge.run_jax(case, [], None)
                refs.append(("jax_reference", jref.outputs))
            except Exception:  # noqa: BLE001 - outside its domain here: check on another case
                if target.reference is not None:
                    return
        self._structure_checked = True
        mine = _structure(run.outputs)
        shapes = ", ".join(
            str(tuple(a.shape)) if isinstance(a, torch.Tensor) else repr(a)[:40] for a in case.args
        )
        seen = {name: _structure(outs) for name, outs in refs}
        problems = []
        if len(seen) == 2 and not _same_structure(seen["reference"], seen["jax_reference"]):
            problems.append("the reference and jax_reference disagree")
        for name, theirs in seen.items():
            if len(theirs) != len(mine):
                problems.append(f"{name} returns {len(theirs)} output(s), the Function {len(mine)}")
            elif [k for k, _ in theirs] != [k for k, _ in mine]:
                problems.append(f"{name}'s outputs are of another kind than the Function's")
        if problems:
            described = "; ".join(
                f"{who}: {_show(structure)}"
                for who, structure in [("Function", mine), *seen.items()]
            )
            raise InvalidRegistration(
                f"fuzzgrad: target {target.name!r}: {', and '.join(problems)} on arguments of "
                f"shapes {shapes} ({described}). Make the references return what the Function "
                "returns, in the same order."
            )

    def _found(self, failures: dict, exc: PropertyFailure) -> None:
        self.stats.first_failure.setdefault(exc.property, time.perf_counter() - self.stats.started)
        failures.setdefault(exc.property, exc)

    def _probe_auto_reference(self, case, full) -> None:
        """On the first case, find out whether forward can serve as its own reference."""
        from fuzzgrad.oracles.autoref import AutoReferenceImpossible

        try:
            torch_oracle(self.judge.reference, case.args, full, None)
        except AutoReferenceImpossible as exc:
            self.numerical, self.judge.reference = True, None
            self.stats.oracle_note = f"numerical oracle (finite differences): {exc}"
        except Exception:  # noqa: BLE001 - outside the domain; probe again on the next case
            return
        self._auto = False

    def _run_numerical(self, case, full) -> dict[str, PropertyFailure]:
        """VJP against central finite differences of the Function's own forward, in float64
        (the only property such a target gets: nothing else has a reference)."""
        from fuzzgrad.oracles.numerical import numerical_vjp
        from fuzzgrad.verdict.differences import AMBIGUOUS, FAIL, KINK, by_differences
        from fuzzgrad.verdict.rules import FINITE_DIFFERENCES

        run = CaseRun(self, case, full)
        failures: dict[str, PropertyFailure] = {}
        try:
            outs, leaves, _ = run.call(case.args, full)
        except Exception as exc:  # noqa: BLE001
            if not self.wants("forward"):
                # The forward is the only oracle and forward is not checked (a scan's inferred
                # contract): a case it rejects is outside the Function's domain.
                reason = f"forward raised {type(exc).__name__}"
                self.stats.record_discard(reason, self.describe(case))
                raise Discard(reason) from exc
            message = f"the Function raised {raised(exc)}"
            self._found(failures, failure_type("forward")(message, case=case))
            return failures
        cts = materialise(case, outs)
        case.notes["cotangents"] = cts
        if not self.wants("vjp") or not full or all(c is None for c in cts):
            return failures
        self.stats.checked["vjp"] += 1
        try:
            grads = run.backward(outs, leaves, full, cts, retain=False, prop="vjp")
            rtol, atol = tolerance(case.dtype or torch.float64, self.target.tolerances)
            for dirs, est, scale in numerical_vjp(self.target.fn, case.args, full, cts):
                dot = sum(
                    float((grads[i].to(torch.float64) * d).sum())
                    for i, d in dirs.items()
                    if grads[i] is not None
                )
                if est is None or not est.finite:  # not finite nearby: cannot judge
                    self.judge.excuse(FINITE_DIFFERENCES, ambiguous=True)
                    continue
                allowed = 1e-4 * scale + max(rtol, 1e-5) * abs(est.value) + atol
                verdict = by_differences(dot, est, allowed)
                if verdict == FAIL and not est.smooth:
                    # Estimates at several steps that disagree with each other vouch for
                    # nothing: the step outran the function's variation (sin at 1e6).
                    verdict = AMBIGUOUS
                if verdict in (AMBIGUOUS, KINK):
                    self.judge.excuse(KINK if verdict == KINK else FINITE_DIFFERENCES, True)
                elif verdict == FAIL:
                    run.fail(
                        "vjp",
                        f"<grad, direction> = {dot:.6g} but finite differences of the "
                        f"Function's own forward give {est.describe()} (no reference "
                        "registered; numerical oracle)",
                    )
        except PropertyFailure as exc:
            self._found(failures, exc)
        return failures


def _structure(outputs) -> list[tuple[str, tuple | None]]:
    """Per output: its kind (float, complex, int, bool, or the Python type) and shape."""
    out: list[tuple[str, tuple | None]] = []
    for o in outputs:
        if isinstance(o, torch.Tensor):
            kind = (
                "complex"
                if o.dtype.is_complex
                else "float"
                if o.dtype.is_floating_point
                else "bool"
                if o.dtype == torch.bool
                else "int"
            )
            out.append((kind, tuple(o.shape)))
        else:
            out.append((type(o).__name__, None))
    return out


def _same_structure(a, b) -> bool:
    """Same count and kinds, and the same shapes where both sides are tensors."""
    return len(a) == len(b) and all(
        ka == kb and (sa is None or sb is None or sa == sb) for (ka, sa), (kb, sb) in zip(a, b)
    )


def _show(structure) -> str:
    return "(" + ", ".join(f"{k}{list(s) if s is not None else ''}" for k, s in structure) + ")"


__all__ = [
    "Checker",
    "Discard",
    "PropertyFailure",
    "Stats",
    "describe_cotangents",
    "describe_inputs",
    "describe_tensor",
]


def raised(exc: BaseException) -> str:
    """``Type: message`` of an exception the Function raised, and where it was raised from
    another (``raise ... from``, or while handling one) the last line of the innermost one:
    a wrapper's message (TorchScript's "The following operation failed in the TorchScript
    interpreter.") often says nothing of the cause."""
    text = f"{type(exc).__name__}: {exc}"
    root, seen = exc, {id(exc)}
    while True:
        nxt = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if nxt is None or id(nxt) in seen:
            break
        root = nxt
        seen.add(id(root))
    if root is exc:
        return text
    lines = [line.strip() for line in f"{type(root).__name__}: {root}".splitlines()]
    return f"{text} (from {[line for line in lines if line][-1]})"
