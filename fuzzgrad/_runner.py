"""Fuzzing one target: Hypothesis drives cases through the properties, shrinks, and we explain.

Each failure Hypothesis reports (one per property: they are distinct exception types) is
diagnosed on the shrunk case, written as a reproducer, and returned as a `FailureRecord`.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase

from fuzzgrad._properties import Checker, Discard, PropertyFailure, Stats
from fuzzgrad.strategies import cases

if sys.version_info < (3, 11):  # Hypothesis depends on the backport there
    from exceptiongroup import BaseExceptionGroup

STATUSES = ("passed", "failed", "xfailed", "xpassed", "error")


@dataclass
class FailureRecord:
    """One shrunk, explained failure."""

    property: str
    message: str
    diagnosis: str
    factors: list[str]
    reproducer: str | None
    seconds_to_find: float | None
    inputs: list[dict[str, Any]]
    case: Any = field(repr=False, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "factors": self.factors,
            "reproducer": self.reproducer,
            "seconds_to_find": self.seconds_to_find,
            "inputs": self.inputs,
        }


@dataclass
class TargetResult:
    """The outcome of fuzzing one target."""

    name: str
    module: str
    status: str
    examples: int
    seconds: float
    failures: list[FailureRecord] = field(default_factory=list)
    error: dict[str, Any] | None = None
    xfail_reason: str | None = None
    stats: Stats | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.name,
            "module": self.module,
            "status": self.status,
            "xfail_reason": self.xfail_reason,
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "discards": dict(s.discards) if s else {},
            "ambiguous": s.ambiguous if s else 0,
            "jax_share": round(s.jax_runs / max(1, s.examples), 3) if s else 0.0,
            "coverage": {k: dict(v) for k, v in s.coverage.items()} if s else {},
            "error_ratio_hist": s.histogram() if s else None,
            "error": self.error,
            "failures": [f.to_json() for f in self.failures],
        }


def describe_inputs(case) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(case.args):
        if isinstance(a, torch.Tensor):
            out.append(
                {
                    "index": i,
                    "shape": list(a.shape),
                    "dtype": str(a.dtype).replace("torch.", ""),
                    "stride": list(a.stride()),
                    "storage_offset": a.storage_offset(),
                    "device": str(a.device),
                    "requires_grad": bool(case.requires_grad[i]),
                }
            )
        else:
            out.append({"index": i, "value": repr(a)[:200]})
    return out


def hypothesis_settings(
    max_examples: int, *, database: Any = None, derandomize: bool = False, phases: Any = None
) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=database,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        verbosity=Verbosity.quiet,
        phases=phases or tuple(Phase),
        print_blob=False,
    )


def _failures_of(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out = []
        for e in exc.exceptions:
            out.extend(_failures_of(e))
        return out
    return [exc]


def fuzz_target(
    target,
    *,
    max_examples: int = 100,
    seed: int | None = None,
    properties: list[str] | None = None,
    report_dir: str | Path | None = None,
    database_dir: str | Path | None = None,
    derandomize: bool = False,
    hyp_settings: settings | None = None,
) -> TargetResult:
    """Fuzz one target and return its result; failures are shrunk, diagnosed and reproduced."""
    from fuzzgrad._diagnose import diagnose
    from fuzzgrad._repro import write_reproducer

    checker = Checker(target, properties)
    started = time.perf_counter()

    def test(case):
        try:
            checker.check(case)
        except Discard:
            return

    database = None
    if database_dir is not None:
        database = DirectoryBasedExampleDatabase(Path(database_dir) / _db_key(target, checker))
    config = hyp_settings or hypothesis_settings(
        max_examples, database=database, derandomize=derandomize
    )
    run = config(given(cases(target))(test))
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    failures: list[FailureRecord] = []
    error = None
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - sorted below; KeyboardInterrupt re-raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        for e in _failures_of(exc):
            if isinstance(e, PropertyFailure) and e.case is not None:
                failures.append(
                    _record(target, e, checker.stats, report_dir, diagnose, write_reproducer)
                )
            elif error is None:
                error = {
                    "kind": "exception",
                    "message": f"{type(e).__name__}: {e}",
                    "traceback": "".join(traceback.format_exception(e))[-4000:],
                }
    seconds = time.perf_counter() - started
    if error is not None:
        status = "error"
    elif failures:
        status = "xfailed" if target.xfail else "failed"
    else:
        status = "xpassed" if target.xfail else "passed"
    return TargetResult(
        target.name,
        target.module,
        status,
        checker.stats.examples,
        seconds,
        failures,
        error,
        target.xfail,
        checker.stats,
    )


def _db_key(target, checker) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{target.module}.{target.name}")


def _record(target, exc: PropertyFailure, stats: Stats, report_dir, diagnose, write_reproducer):
    case = exc.case
    prop = exc.property
    try:
        diagnosis, factors = diagnose(target, prop, case)
    except Exception as e:  # noqa: BLE001 - a diagnosis must never lose the failure itself
        diagnosis, factors = f"(diagnosis failed: {type(e).__name__}: {e})", []
    path = None
    if report_dir is not None:
        try:
            path = str(
                write_reproducer(
                    Path(report_dir), target, prop, case, message=exc.message, diagnosis=diagnosis
                )
            )
        except Exception as e:  # noqa: BLE001
            diagnosis += f" (no reproducer: {type(e).__name__}: {e})"
    return FailureRecord(
        prop,
        exc.message,
        diagnosis,
        factors,
        path,
        stats.first_failure.get(prop),
        describe_inputs(case),
        case,
    )
