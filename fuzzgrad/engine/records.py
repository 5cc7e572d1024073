"""What fuzzing one target produces: a `TargetResult` with its shrunk `FailureRecord`s, and the
JSON records of ``results.json`` they become (see ``reports/README.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fuzzgrad.report.common import status
from fuzzgrad.verdict.stats import Stats

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
    #: Examples run (this call) when the property first failed: 1 means a database replay.
    examples_to_find: int | None = None
    #: Whether Hypothesis shrank it (False: found while exploring, its replay passed).
    shrunk: bool = True
    #: The cotangents' layouts (``grad_output``), one per output that gets one.
    cotangents: list[dict[str, Any]] = field(default_factory=list)
    #: The finding's identity (`fuzzgrad.verdict.identity.final_kind`): its signature's source.
    kind: str | None = None
    #: Every property the finding breaks (``property`` first).
    properties: list[str] = field(default_factory=list)
    #: The search keys of the candidates merged into this finding (not written out).
    search_keys: set = field(default_factory=set, repr=False)
    #: The root of its identity (what its reproducer asks of a failure; not written out).
    root: str | None = field(default=None, repr=False)
    #: Why its reproducer could not be written (a full disk): the run is then incomplete.
    no_reproducer: str | None = None

    def __post_init__(self) -> None:
        if not self.properties:
            self.properties = [self.property]

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.property,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "factors": self.factors,
            "reproducer": self.reproducer,
            "seconds_to_find": self.seconds_to_find,
            "examples_to_find": self.examples_to_find,
            "shrunk": self.shrunk,
            "inputs": self.inputs,
            "cotangents": self.cotangents,
            "kind": self.kind,
            "properties": self.properties,
            **({"no_reproducer": self.no_reproducer} if self.no_reproducer else {}),
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
    #: The properties the known bug shows in (None: any property; see `register`'s ``xfail``).
    xfail_properties: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "name": self.name,
            "module": self.module,
            "status": self.status,
            "xfail_reason": self.xfail_reason,
            "xfail_properties": _listed(self.xfail_properties),
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "discards": dict(s.discards) if s else {},
            "ambiguous": s.ambiguous if s else 0,
            "excused": dict(sorted(s.excused.items())) if s else {},
            "checked": dict(s.checked) if s else {},
            "skipped": dict(s.skipped) if s else {},
            "oracle_note": s.oracle_note if s else None,
            "jax_share": round(s.jax_runs / max(1, s.examples), 3) if s else 0.0,
            "coverage": {k: dict(v) for k, v in s.coverage.items()} if s else {},
            "error_ratio_hist": s.histogram() if s else None,
            "error": self.error,
            "internal_errors": list(s.internal.values()) if s else [],
            "failures": [f.to_json() for f in self.failures],
        }


def verdict(target, failures, error) -> str:
    """A target's status from what its run found (see `STATUSES`)."""
    failing = {f.property for f in failures}
    return status(error is not None, failing, target.xfail, target.xfail_properties)


def _listed(properties) -> list[str] | None:
    return None if properties is None else list(properties)


def xfail_info(target, **extra: Any) -> dict[str, Any]:
    """A record's keys for the target's known bug: its reason, the properties it shows in."""
    return {
        **extra,
        "xfail_reason": target.xfail,
        "xfail_properties": _listed(target.xfail_properties),
    }
