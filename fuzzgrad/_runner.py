"""Fuzzing one target: Hypothesis drives cases through the properties, shrinks, and we explain.

Each failure Hypothesis reports (one per property: they are distinct exception types) is
diagnosed on the shrunk case, written as a reproducer, and returned as a `FailureRecord`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.database import DirectoryBasedExampleDatabase

from fuzzgrad import _explore
from fuzzgrad._properties import Checker, Discard, PropertyFailure, Stats
from fuzzgrad.strategies import cases

if sys.version_info < (3, 11):  # Hypothesis depends on the backport there
    from exceptiongroup import BaseExceptionGroup

STATUSES = ("passed", "failed", "xfailed", "xpassed", "error")


class BudgetSpent(BaseException):
    """Raised before an example once ``stop_at`` has passed: ends generation, not a failure.

    A BaseException so that Hypothesis lets it through at once (no shrinking, no replay).
    """


class ExampleTimeout(BaseException):
    """One example ran longer than ``example_timeout`` (raised from a SIGALRM handler)."""

    def __init__(self, seconds: float):
        super().__init__(f"ran longer than {seconds:g}s")
        self.seconds = seconds


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
    #: Examples run (this call) when the property first failed: 1 means a database replay.
    examples_to_find: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "factors": self.factors,
            "reproducer": self.reproducer,
            "seconds_to_find": self.seconds_to_find,
            "examples_to_find": self.examples_to_find,
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
            "oracle_note": s.oracle_note if s else None,
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
    database: Any = None,
    stop_at: float | None = None,
    example_timeout: float | None = None,
    on_example: Callable[[Any], None] | None = None,
    on_finding: Callable[[str, dict[str, Any]], None] | None = None,
) -> TargetResult:
    """Fuzz one target and return its result; failures are shrunk, diagnosed and reproduced.

    For time-budgeted runs (see `fuzzgrad._workers`): ``database`` is a ready Hypothesis
    database (overrides ``database_dir``); ``stop_at`` (a `time.monotonic` instant) ends
    generation there unless a failure is being shrunk; ``example_timeout`` (seconds, main thread
    only) turns an example that runs too long into an ``error`` of kind ``timeout`` with a
    reproducer; ``on_example(case)`` is called before each example and ``on_finding(property,
    info)`` when a property first fails, before shrinking.
    """
    from fuzzgrad._diagnose import diagnose
    from fuzzgrad._repro import write_reproducer

    checker = Checker(target, properties)
    started = time.perf_counter()
    found: dict[str, int] = {}
    running: list[Any] = [None]

    def test(case):
        if stop_at is not None and not found and time.monotonic() >= stop_at:
            raise BudgetSpent
        running[0] = case
        if on_example is not None:
            on_example(case)
        try:
            with _alarm(example_timeout):
                checker.check(case)
        except Discard:
            return
        except PropertyFailure as e:
            note_finding(e, case)
            raise

    def note_finding(e: PropertyFailure, case) -> None:
        if e.property not in found:
            found[e.property] = checker.stats.examples
            if on_finding is not None:
                on_finding(e.property, {"message": e.message, "inputs": describe_inputs(case)})

    if database is None and database_dir is not None:
        database = DirectoryBasedExampleDatabase(Path(database_dir) / _db_key(target, checker))
    config = hyp_settings or hypothesis_settings(
        max_examples, database=database, derandomize=derandomize
    )
    strategy = cases(target)
    failures: list[FailureRecord] = []
    errors: list[dict[str, Any]] = []

    def hypothesis_run(cfg: settings, fixed: int | None = None) -> None:
        """Run Hypothesis with ``cfg``; sort what it raises into ``failures`` and ``errors``.
        ``fixed`` seeds its random choices and keeps the database (``hypothesis.seed`` drops
        it): for replaying and shrinking hand-offs."""
        run = cfg(given(strategy)(test))
        # A fixed database key: the default hashes this function's source, so any edit here
        # would orphan every stored failure (the database is already one namespace per target).
        run._hypothesis_internal_database_key = DATABASE_KEY
        if fixed is not None:
            run._hypothesis_internal_use_seed = fixed
        elif seed is not None:
            run = hypothesis_seed(seed)(run)
        try:
            with _alarm_handler(example_timeout):
                run()
        except BudgetSpent:
            pass
        except ExampleTimeout as exc:
            errors.append(_timeout_error(target, exc, running[0], checker.stats, report_dir))
        except BaseException as exc:  # noqa: BLE001 - sorted below; KeyboardInterrupt re-raised
            if isinstance(exc, KeyboardInterrupt):
                raise
            for e in _failures_of(exc):
                if isinstance(e, PropertyFailure) and e.case is not None:
                    failures.append(
                        _record(target, e, checker.stats, report_dir, diagnose, write_reproducer)
                    )
                    failures[-1].examples_to_find = found.get(e.property)
                else:
                    errors.append(_exception_error(e))

    if not _explorable(strategy, config):
        hypothesis_run(config)
    else:
        # Failures stored by earlier runs replay first, as Hypothesis always does.
        if Phase.reuse in config.phases and _explore.has_stored(config.database, DATABASE_KEY):
            hypothesis_run(settings(config, phases=_without(config.phases, Phase.generate)))
        if not failures and not errors:
            explored = _explore_cases(
                target,
                strategy,
                checker,
                config,
                seed,
                stop_at,
                example_timeout,
                on_example,
                note_finding,
                running,
            )
            if explored.timeout is not None:
                errors.append(
                    _timeout_error(target, explored.timeout, running[0], checker.stats, report_dir)
                )
            elif explored.found:
                handoff = _explore.HandOff(config.database)
                for data, _ in explored.found.values():
                    handoff.stored(DATABASE_KEY, data.to_bytes())
                phases = _without(config.phases, Phase.generate) + (Phase.reuse,)
                # A database rules out derandomize: a derandomized run's hand-off has a fixed seed.
                fixed = seed if seed is not None else 0 if config.derandomize else None
                hypothesis_run(
                    settings(
                        config,
                        database=handoff,
                        phases=phases,
                        derandomize=False,
                        max_examples=max(config.max_examples, len(explored.found)),
                    ),
                    fixed,
                )
                # A failure Hypothesis could not replay (a nondeterministic Function) is still
                # reported, as found and not shrunk.
                reported = {f.property for f in failures}
                if failures and not config.report_multiple_bugs:
                    explored.found.clear()  # one bug was asked for, and Hypothesis shrank one
                for key, (_, exc) in explored.found.items():
                    if isinstance(exc, PropertyFailure) and key not in reported and not errors:
                        exc.message += (
                            " (found while exploring; Hypothesis's replay of it passed, so it is "
                            "not shrunk: does the Function give different results on the same "
                            "inputs?)"
                        )
                        failures.append(
                            _record(
                                target, exc, checker.stats, report_dir, diagnose, write_reproducer
                            )
                        )
                        failures[-1].examples_to_find = found.get(exc.property)
                    elif not isinstance(exc, PropertyFailure) and not errors:
                        errors.append(_exception_error(exc))
    error = errors[0] if errors else None
    seconds = time.perf_counter() - started
    return TargetResult(
        target.name,
        target.module,
        verdict(target, failures, error),
        checker.stats.examples,
        seconds,
        failures,
        error,
        target.xfail,
        checker.stats,
    )


#: The key of a target's failures in its example database (one database namespace per target).
DATABASE_KEY = b"fuzzgrad.case.v1"
#: After the first failure, exploration looks for failures of other properties for as long as
#: it took to find the last one, at least `MIN_MORE` and at most `MAX_MORE` more cases or
#: `MAX_MORE_SECONDS` (Hypothesis's own rule after a first bug, counted in cases).
MIN_MORE, MAX_MORE, MAX_MORE_SECONDS = 10, 1000, 10.0


def _without(phases, phase) -> tuple:
    return tuple(p for p in phases if p != phase)


def _explorable(strategy, config: settings) -> bool:
    from fuzzgrad.strategies._cases import _SpecCases

    return (
        _explore.available()
        and isinstance(strategy, _SpecCases)
        and Phase.generate in config.phases
    )


@dataclass
class _Explored:
    #: Per property (or ``"error"``): the failing case's choices and what it raised.
    found: dict[str, tuple[Any, BaseException]] = field(default_factory=dict)
    timeout: ExampleTimeout | None = None


def _explore_cases(
    target,
    strategy,
    checker,
    config,
    seed,
    stop_at,
    example_timeout,
    on_example,
    note_finding,
    running,
) -> _Explored:
    """Draw and check cases with `fuzzgrad._explore.FastData` until the budget is spent or,
    after a failure, the search for other properties' failures ends (see `MIN_MORE`)."""
    out = _Explored()
    rng = _explore.rng_for(seed, config.derandomize, f"{target.module}.{target.name}")
    first = last = None
    first_time = 0.0
    drawn = 0
    with _alarm_handler(example_timeout):
        while checker.stats.examples < config.max_examples:
            n = checker.stats.examples
            if first is None:
                if stop_at is not None and time.monotonic() >= stop_at:
                    break
            elif (
                not config.report_multiple_bugs
                or n >= max(first + MIN_MORE, min(first + MAX_MORE, 2 * last))
                or time.monotonic() - first_time > MAX_MORE_SECONDS
            ):
                break
            data = _explore.FastData(rng, rng.choice(_explore.SIMPLICITY) if drawn else 1.0)
            drawn += 1
            try:
                case = strategy.do_draw(data)
            except _explore.Unsupported:
                break  # pragma: no cover - _explorable admits only strategies FastData draws
            running[0] = case
            if on_example is not None:
                on_example(case)
            try:
                with _alarm(example_timeout):
                    checker.check(case)
            except Discard:
                continue
            except ExampleTimeout as exc:
                out.timeout = exc
                break
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - a failure, or a crash Hypothesis replays
                key = exc.property if isinstance(exc, PropertyFailure) else "error"
                if isinstance(exc, PropertyFailure):
                    note_finding(exc, case)
                if key not in out.found:
                    out.found[key] = (data, exc)
                    last = checker.stats.examples
                    if first is None:
                        first, first_time = last, time.monotonic()
    return out


def _exception_error(e: BaseException) -> dict[str, Any]:
    return {
        "kind": "exception",
        "message": f"{type(e).__name__}: {e}",
        "traceback": "".join(traceback.format_exception(e))[-4000:],
    }


def verdict(target, failures, error) -> str:
    """A target's status from what its run found (see `STATUSES`)."""
    if error is not None:
        return "error"
    if failures:
        return "xfailed" if target.xfail else "failed"
    return "xpassed" if target.xfail else "passed"


def _db_key(target, checker) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{target.module}.{target.name}")


def _record(target, exc: PropertyFailure, stats: Stats, report_dir, diagnose, write_reproducer):
    from fuzzgrad._diagnose import reduce_to_element

    prop = exc.property
    try:
        case, reduced = reduce_to_element(target, prop, exc.case, exc.mismatch)
    except Exception:  # noqa: BLE001 - keep Hypothesis's shrunk case
        case, reduced = exc.case, None
    if reduced is not None:
        exc = reduced  # its message describes the one-element case
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


def _timeout_error(target, exc: ExampleTimeout, case, stats: Stats, report_dir) -> dict[str, Any]:
    """The ``error`` record of a target whose example hung, with a reproducer of that example."""
    from fuzzgrad._repro import write_reproducer

    error: dict[str, Any] = {
        "kind": "timeout",
        "message": f"example {stats.examples} {exc}",
        "traceback": "".join(traceback.format_exception(exc))[-4000:],
        "reproducer": None,
    }
    if case is not None:
        error["inputs"] = describe_inputs(case)
        if report_dir is not None:
            try:
                error["reproducer"] = str(
                    write_reproducer(
                        Path(report_dir),
                        target,
                        "timeout",
                        case,
                        message=error["message"],
                        diagnosis="hangs",
                    )
                )
            except Exception as e:  # noqa: BLE001 - the timeout itself must not be lost
                error["message"] += f" (no reproducer: {type(e).__name__}: {e})"
    return error


def _alarm_usable(seconds: float | None) -> bool:
    return bool(seconds) and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _alarm_handler(seconds: float | None):
    """Install the SIGALRM handler that raises `ExampleTimeout` for the duration of a run."""
    if not _alarm_usable(seconds):
        yield
        return

    def fire(signum, frame):
        raise ExampleTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, fire)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _alarm(seconds: float | None):
    """Arm the per-example timer (a Python-level hang raises; a hang in C code does not, which
    is why the nightly parent also kills a worker whose example overruns)."""
    if not _alarm_usable(seconds):
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
