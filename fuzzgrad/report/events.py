"""``events.jsonl``: a run's findings as they happen, one JSON object per line, fsync'd at once,
so that a run killed at any moment (SIGKILL included) keeps what it found, and what rebuilds a
run's results from it when the run could not write them (`recover`).

The events a run writes, in order: ``run_started`` (the run's record and its targets),
``target_started`` (a slice of the budget: ``round``, ``seconds``), ``finding`` (a property
failed, before shrinking), ``failure`` (shrunk, with its record), ``target_segment`` (a slice
ended and the target will run again: the slice's record), ``target_finished`` (the target's final
record), and ``run_finished`` or ``run_interrupted``. Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fuzzgrad.report.common import status

EVENTS = "events.jsonl"
#: What the run's start says of each target (``target_info``), kept in its rebuilt record.
INFO_KEYS = ("module", "xfail_reason", "xfail_properties")
#: ``run.incomplete`` of a results.json rebuilt from the event log of a run that did not finish.
INCOMPLETE = "the run ended without writing its results (killed?); rebuilt from events.jsonl"


class EventLog:
    """``events.jsonl``: one JSON object per line, flushed and fsync'd as each event happens."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def write(self, event: str, **fields: Any) -> None:
        from fuzzgrad.report.common import redact
        from fuzzgrad.report.results import now

        line = json.dumps({"event": event, "time": now(), **fields}, sort_keys=True, default=str)
        line = redact(line)  # no credential reaches the log (a database URL in a message)
        self.file.write(line + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a log; a line cut short by a kill (the last one) is left out."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                out.append(event)
    return out


# -- records --------------------------------------------------------------------------------------
def finding_as_failure(finding: Mapping[str, Any]) -> dict[str, Any]:
    """A failure record for a finding that was never shrunk (the run or its worker ended first):
    its first failing example, with the reproducer written when it was found, if any."""
    return {
        "property": finding.get("property"),
        "message": finding.get("message"),
        "diagnosis": "not shrunk: the run ended before shrinking finished",
        "factors": [],
        "reproducer": finding.get("reproducer"),
        "seconds_to_find": None,
        "examples_to_find": None,
        "shrunk": False,
        "inputs": finding.get("inputs") or [],
        "cotangents": [],
    }


def unshrunk(
    findings: Iterable[Mapping[str, Any]], failures: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Failure records for the ``findings`` whose property has no shrunk failure in
    ``failures`` (first finding per property)."""
    done = {f.get("property") for f in failures}
    out = []
    for finding in findings:
        if finding.get("property") not in done:
            done.add(finding.get("property"))
            out.append(finding_as_failure(finding))
    return out


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One target record from the records of its slices (a crash, then a resumed run; or a
    second round; or slices that ran at once, or on other machines): counts add up, failures
    are kept in order, once per signature (slices that ran at once may find the same bug), the
    last error stays (with how many slices ended in one), and the status follows from the
    whole."""
    from fuzzgrad.report.common import failure_signature

    if len(records) == 1:
        return records[0]
    out = _merge_counts(records)
    name = str(out.get("name"))
    failures: dict[str, dict[str, Any]] = {}
    for record in records:
        for f in record.get("failures") or []:
            failures.setdefault(failure_signature(name, f), f)
    out["failures"] = list(failures.values())
    errors = [r["error"] for r in records if r.get("error")]
    out["error"] = dict(errors[-1]) if errors else None  # the one that ended it
    if len(errors) > 1:
        out["error"]["count"] = len(errors)
    out["status"] = record_status(out)
    return out


def _merge_counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers and dicts of numbers add up; anything else is the last slice's."""
    out: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            old = out.get(key)
            if key in out and _numeric(value) and _numeric(old):
                out[key] = old + value
            elif isinstance(value, dict) and isinstance(old, dict) and key != "error":
                out[key] = _merge_counts([old, value])
            elif value is not None or key not in out:
                out[key] = value
    for key in ("seconds", "jax_share"):
        if _numeric(out.get(key)):
            out[key] = round(out[key], 3)
    if _numeric(out.get("jax_share")):
        total = sum(int(r.get("examples") or 0) for r in records) or 1
        share = sum(float(r.get("jax_share") or 0) * int(r.get("examples") or 0) for r in records)
        out["jax_share"] = round(share / total, 3)
    return out


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_status(record: Mapping[str, Any]) -> str:
    """A target's status from its error, failures and xfail reason (as the runner decides)."""
    failing = {f.get("property") for f in record.get("failures") or []}
    xfail, properties = record.get("xfail_reason"), record.get("xfail_properties")
    return status(bool(record.get("error")), failing, xfail, properties)


# -- recovery ---------------------------------------------------------------------------------
def stale(report_dir: Path) -> bool:
    """Whether the report's results.json is missing, older than its event log, or from a run
    that never finished (it is rewritten as targets finish), so the log has more."""
    log, results = report_dir / EVENTS, report_dir / "results.json"
    if not log.is_file():
        return False
    if not results.is_file() or results.stat().st_mtime_ns < log.stat().st_mtime_ns:
        return True
    try:
        run = json.loads(results.read_text(encoding="utf-8")).get("run")
    except (OSError, ValueError, AttributeError):
        return False  # a malformed file is reported as such by whoever loads it
    return isinstance(run, dict) and not ({"finished", "incomplete"} & set(run))


def rebuild(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The results document the events of a run describe (None: the run never started).

    Targets that finished keep their final record. One that was running when the run ended is
    an ``error`` of kind ``interrupted`` holding its finished slices, its shrunk failures and
    every finding not yet shrunk; one that never started says so. Without ``run_finished`` the
    run is marked ``incomplete``.
    """
    from fuzzgrad.report.common import failure_signature
    from fuzzgrad.report.results import results_document

    start = next((e for e in events if e["event"] == "run_started"), None)
    if start is None:
        return None
    run = dict(start.get("run") or {})
    names = [n for n in start.get("targets") or [] if isinstance(n, str)]
    info = start.get("target_info") or {}
    state: dict[str, _Target] = {n: _Target(n, info.get(n) or {}) for n in names}
    finished = False
    for e in events:
        kind, name = e["event"], e.get("target")
        if kind == "run_finished":
            finished = True
        if kind == "run_interrupted":
            run.setdefault("interrupted", e.get("reason"))
        if not isinstance(name, str):
            continue
        target = state.setdefault(name, _Target(name, {}))
        if kind not in target.handlers:
            continue
        target.handlers[kind](e)
        if names and name not in names:
            names.append(name)
    if not finished:
        run["incomplete"] = INCOMPLETE
        run.setdefault("finished", None)
    last = events[-1].get("time")
    if isinstance(last, str) and isinstance(run.get("started"), str):
        run["seconds"] = _seconds_between(run["started"], last)
    records = [state[n].record() for n in names or state]
    for record in records:
        for failure in record.get("failures") or []:
            failure["signature"] = failure_signature(record["name"], failure)
    return results_document(run, records)


class _Target:
    """What the log says of one target so far."""

    def __init__(self, name: str, info: Mapping[str, Any]):
        self.name, self.info = name, info
        self.segments: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.started = False
        #: Per running slice (``unit``; None where a target runs one slice at a time): shrunk
        #: failures and findings.
        self.failures: dict[Any, list[dict[str, Any]]] = {}
        self.findings: dict[Any, list[dict[str, Any]]] = {}
        self.handlers = {
            "target_started": self._started,
            "finding": lambda e: self.findings.setdefault(_key(e), []).append(e),
            "failure": lambda e: self.failures.setdefault(_key(e), []).append(
                e.get("failure") or {}
            ),
            "target_segment": self._segment,
            "target_finished": self._finished,
        }

    def _started(self, e: dict[str, Any]) -> None:
        self.started = True
        self.info = {**self.info, **{k: e[k] for k in INFO_KEYS if k in e}}

    def _segment(self, e: dict[str, Any]) -> None:
        self.segments.append(e.get("record") or {})
        if _key(e) is None:
            self.failures, self.findings = {}, {}
        else:
            self.failures.pop(_key(e), None)
            self.findings.pop(_key(e), None)

    def _finished(self, e: dict[str, Any]) -> None:
        self.final = e.get("record") or {}

    def record(self) -> dict[str, Any]:
        if self.final is not None:
            return self.final
        what = "was running" if self.started else "had not started"
        partial = {
            "name": self.name,
            "module": self.info.get("module"),
            "xfail_reason": self.info.get("xfail_reason"),
            "xfail_properties": self.info.get("xfail_properties"),
            "examples": 0,
            "seconds": 0.0,
            "error": {"kind": "interrupted", "message": f"the run ended while this target {what}"},
            "failures": [
                f
                for key in dict.fromkeys([*self.failures, *self.findings])
                for f in self.failures.get(key, [])
                + unshrunk(self.findings.get(key, []), self.failures.get(key, []))
            ],
        }
        record = merge_records([*self.segments, partial])
        record["status"] = "error"
        return record


def _key(event: Mapping[str, Any]) -> Any:
    """The running slice an event is of (its ``unit``), hashable."""
    unit = event.get("unit")
    return unit if unit is None or isinstance(unit, (int, str)) else str(unit)


def _seconds_between(start: str, end: str) -> float | None:
    import datetime as dt

    try:
        a, b = (dt.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ") for t in (start, end))
    except ValueError:
        return None
    return float((b - a).total_seconds())


def recover(report_dir: Path) -> dict[str, Any] | None:
    """Rebuild a report's results from its event log when results.json is stale (see `stale`),
    writing it back when the folder is writable; None when it is not stale."""
    from fuzzgrad.report.results import write_results

    report_dir = Path(report_dir)
    if not stale(report_dir):
        return None
    document = rebuild(read_events(report_dir / EVENTS))
    if document is None:
        return None
    try:
        write_results(report_dir / "results.json", document)
    except OSError:  # a read-only artefact: the rebuilt document is still used
        pass
    return document
