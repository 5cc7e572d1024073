"""Where a nightly run's findings go as they happen: events, results.json, the progress display.

`Recorder` is the single writer of the report directory during a run. Workers (or the inline
runner) report started / finding / failure / segment / done; each is appended to ``events.jsonl``
at once, and ``results.json`` is rewritten (atomically) whenever a target finishes, so a run
killed at any moment keeps what it found (`fuzzgrad report` rebuilds the rest from the log).
`finish` writes the human-facing artefacts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from fuzzgrad.engine.records import xfail_info
from fuzzgrad.nightly.plan import Plan
from fuzzgrad.report.events import EVENTS, EventLog

#: ``unit=ALL``: every running slice of a target.
ALL = object()


def _unit(unit: Any) -> dict[str, Any]:
    return {} if unit is None else {"unit": unit}


class Recorder:
    """Collects one run's records and keeps the report directory current."""

    def __init__(self, plan: Plan, run: dict[str, Any], *, live: bool | None = None):
        self.plan = plan
        self.run = run
        self.records: dict[str, dict[str, Any]] = {}
        #: Per target: records of its slices that ended with more to come.
        self.segments: dict[str, list[dict[str, Any]]] = {}
        #: Per target and running unit (None: the target's one running slice): shrunk
        #: failures, and findings (before shrinking).
        self.partial: dict[str, dict[Any, list[dict[str, Any]]]] = {}
        self.findings: dict[str, dict[Any, list[dict[str, Any]]]] = {}
        self.running: dict[str, float] = {}
        self.examples_done = 0
        self.inline_examples: dict[str, int] = {}
        self.workers: list[Any] = []
        self.warned: set[str] = set()
        self.log_end: int | None = None
        self.events = EventLog(plan.report_dir / EVENTS)
        info = {t.name: xfail_info(t, module=t.display_module) for t in plan.targets}
        self.events.write(
            "run_started", run=run, targets=[t.name for t in plan.targets], target_info=info
        )
        live = sys.stdout.isatty() if live is None else live
        self.display = _Live(self) if live else None

    # -- events from the runners ----------------------------------------------------------------
    # ``unit``: which of a target's slices running at once (``--executor ray``) an event is
    # of; None where a target runs one slice at a time.
    def started(self, name: str, task: dict[str, Any], unit: Any = None) -> None:
        self.running.setdefault(name, time.monotonic())
        seconds, left = task.get("seconds"), task.get("left")
        self.events.write(
            "target_started",
            target=name,
            seed=task.get("seed"),
            round=task.get("round", 1),
            seconds=None if seconds is None else round(seconds, 3),  # its slice of the budget
            left=None if left is None else round(left, 3),  # the budget left when it started
            **_unit(unit),
            # its seed stream, and the seeded round it starts at (seed + that round)
            **({k: task[k] for k in ("stream", "first_round")} if "stream" in task else {}),
        )

    def example(self, name: str) -> None:
        self.inline_examples[name] = self.inline_examples.get(name, 0) + 1

    def finding(self, name: str, prop: str, info: dict[str, Any], unit: Any = None) -> None:
        """A property failed for the first time (before shrinking)."""
        self.findings.setdefault(name, {}).setdefault(unit, []).append({"property": prop, **info})
        self.events.write("finding", target=name, property=prop, **info, **_unit(unit))

    def failure(self, name: str, record: dict[str, Any], unit: Any = None) -> None:
        """A shrunk, diagnosed failure with its reproducer."""
        from fuzzgrad.report.common import failure_signature
        from fuzzgrad.report.reproducer import drop_unshrunk

        record = {**record, "signature": failure_signature(name, record)}
        self.partial.setdefault(name, {}).setdefault(unit, []).append(record)
        self.events.write("failure", target=name, failure=record, **_unit(unit))
        # only now: a run killed before this line keeps the reproducer its log's finding names
        drop_unshrunk(self.plan.report_dir, name, record["property"], record.get("reproducer"))

    def failures_of(self, name: str, unit: Any = ALL) -> list[dict[str, Any]]:
        """The running slices' failures (or one ``unit``'s): shrunk ones, and the findings not
        shrunk yet."""
        from fuzzgrad.report.events import unshrunk

        out: list[dict[str, Any]] = []
        partial, findings = self.partial.get(name, {}), self.findings.get(name, {})
        for key in dict.fromkeys([*partial, *findings]):
            if unit is ALL or key == unit:
                shrunk = list(partial.get(key, []))
                out += shrunk + unshrunk(findings.get(key, []), shrunk)
        return out

    def has_unshrunk(self, name: str, unit: Any = ALL) -> bool:
        shrunk = sum(len(v) for k, v in self.partial.get(name, {}).items() if unit in (ALL, k))
        return len(self.failures_of(name, unit)) > shrunk

    def warn(self, key: str, message: str) -> None:
        """Say ``message`` once per run and ``key`` (workers may each hit the same problem)."""
        if key in self.warned:
            return
        self.warned.add(key)
        self.events.write("warning", key=key, message=message)
        if self.display is not None:
            self.display.live.console.print(f"warning: {message}", style="yellow")
        else:
            print(f"warning: {message}", file=sys.stderr, flush=True)

    def segment(self, name: str, record: dict[str, Any], unit: Any = None) -> None:
        """A slice of the target ended, and it will run again: keep the slice's record."""
        self._sign(name, record)
        self.segments.setdefault(name, []).append(record)
        self._new_slice(name, unit)
        self.events.write("target_segment", target=name, record=record, **_unit(unit))

    def done(self, name: str, record: dict[str, Any] | None, unit: Any = None) -> None:
        """The target is finished: ``record`` is its last slice's (None: the slices kept)."""
        from fuzzgrad.report.events import merge_records

        slices = self.segments.pop(name, []) + ([record] if record is not None else [])
        final = (
            merge_records(slices)
            if slices
            else _error_record(
                self.plan, name, "budget", "not run: the budget ran out before it started"
            )
        )
        if final.get("status") in ("passed", "xpassed") and not final.get("examples"):
            # slices that ran no example (a slice spent starting up) judged nothing: not a pass
            budget = self.plan.budget is not None
            why = "the budget ran out before an example ran" if budget else "no example ran"
            final = _error_record(self.plan, name, "budget" if budget else "no_examples", why)
        self._sign(name, final)
        self._note_missing_reproducers(name, final)
        self._new_slice(name, ALL)
        self.records[name] = final
        self.examples_done += int(final.get("examples") or 0)
        self.events.write("target_finished", target=name, record=final, **_unit(unit))
        self.write_results()
        if self.display is None:
            print_record(final)

    def _new_slice(self, name: str, unit: Any) -> None:
        """Forget what a slice that ended kept (``unit``'s, or every running one's: ``ALL``)."""
        self.inline_examples.pop(name, None)
        for kept in (self.partial, self.findings):
            if unit is ALL or unit is None:
                kept.pop(name, None)
            else:
                kept.get(name, {}).pop(unit, None)
        if unit is ALL or unit is None:
            self.running.pop(name, None)

    def _note_missing_reproducers(self, name: str, record: dict[str, Any]) -> None:
        """A finding or error whose reproducer could not be written (a worker's full disk)
        makes the run incomplete: the report names a finding it cannot replay."""
        entries = [*(record.get("failures") or []), record.get("error") or {}]
        why = next((e["no_reproducer"] for e in entries if e.get("no_reproducer")), None)
        if why is None:
            return
        self.run["incomplete"] = (
            f"the reproducer of a finding of {name} could not be written ({why}); "
            "free space in the report folder and run again to get it"
        )

    @staticmethod
    def _sign(name: str, record: dict[str, Any]) -> None:
        from fuzzgrad.report.common import failure_signature

        for failure in record.get("failures") or []:
            failure["signature"] = failure_signature(name, failure)

    def not_started(
        self, name: str, why: str = "the budget ran out before it started", kind: str = "budget"
    ) -> None:
        self.done(name, _error_record(self.plan, name, kind, f"not run: {why}"))

    def log(self, event: str, **fields: Any) -> None:
        self.events.write(event, **fields)

    def interrupted(self, reason: str) -> None:
        """Mark every unfinished target, and the run, as interrupted."""
        self.run["interrupted"] = reason
        examples = self.running_examples()
        for t in self.plan.targets:
            if t.name not in self.records:
                self.done(t.name, self._cut_short(t, reason, examples.get(t.name, 0)))
        self.events.write("run_interrupted", reason=reason)

    def _cut_short(self, target: Any, reason: str, examples: int) -> dict[str, Any]:
        """The record of a target the run stopped: the examples, time and failures it got to
        (a target that had found something is ``failed``, not an error that ran nothing), and
        ``interrupted`` saying why it stopped."""
        from fuzzgrad.report.common import status

        record = _error_record(
            self.plan, target.name, "interrupted", f"the run was stopped ({reason})"
        )
        failures = self.failures_of(target.name)
        record["failures"] = failures
        record["interrupted"] = reason
        if target.name in self.running:
            record["examples"] = examples
            record["seconds"] = round(time.monotonic() - self.running[target.name], 3)
        if failures:
            failing = {str(f.get("property")) for f in failures}
            record["status"] = status(False, failing, target.xfail, target.xfail_properties)
            record["error"] = None
        return record

    # -- files ----------------------------------------------------------------------------------
    def ordered(self) -> list[dict[str, Any]]:
        names = [t.name for t in self.plan.targets]
        return sorted(self.records.values(), key=lambda r: names.index(r["name"]))

    def write_results(self) -> None:
        from fuzzgrad.report.results import results_document, write_results

        self.run["seconds"] = round(time.monotonic() - self.plan.started, 3)
        document = results_document(self.run, self.ordered())
        write_results(self.plan.report_dir / "results.json", document)

    def finish(self, baseline: Path | None) -> dict[str, Any] | None:
        """Write results.json, junit.xml, summary.md and index.html; return the comparison."""
        from fuzzgrad.report.results import now

        if self.display is not None:
            self.display.stop()
            for record in self.ordered():
                if record["status"] not in ("passed", "xfailed"):
                    print_record(record)
        self.run["finished"] = now()
        self.run["seconds"] = round(time.monotonic() - self.plan.started, 3)
        # The log's last line first: results.json is then newer than the log, which is how
        # `fuzzgrad report` tells a finished run from one killed after its last results.json.
        self.log_end = self.events.file.tell()  # where that line starts (see `abandon`)
        self.events.write("run_finished", seconds=self.run["seconds"])
        self.events.close()
        self.write_results()
        return render_reports(self.plan.report_dir, baseline)

    def abandon(self, exc: OSError) -> None:
        """Writing the report failed (a full disk, a folder turned read-only): mark the run
        incomplete in results.json, or where even that cannot be written, leave what `fuzzgrad
        report` rebuilds from as a run that did not finish (no ``run_finished`` in the log, no
        results.json claiming to be final). Never raises."""
        reason = exc.strerror or str(exc)
        self.run["incomplete"] = f"writing the report failed ({reason}); it lacks what came after"
        with contextlib.suppress(OSError):
            self.events.close()
        try:
            self.write_results()
            return
        except OSError:
            pass
        log = self.plan.report_dir / EVENTS
        with contextlib.suppress(OSError):
            if self.log_end is not None:
                os.truncate(log, self.log_end)  # frees space; needs none
            (self.plan.report_dir / "results.json").unlink(missing_ok=True)

    # -- progress -------------------------------------------------------------------------------
    def running_examples(self) -> dict[str, int]:
        out = dict(self.inline_examples)
        for w in self.workers:
            if w.task is not None:
                out[w.task["name"]] = w.examples
        return out

    def refresh(self) -> None:
        if self.display is not None:
            self.display.live.refresh()


def render_reports(report_dir: Path, baseline: Path | None) -> dict[str, Any] | None:
    """(Re)write junit.xml, summary.md and index.html from results.json (diffed to baseline)."""
    from fuzzgrad.report import render_all

    return render_all(report_dir, baseline)


def _error_record(plan: Plan, name: str, kind: str, message: str) -> dict[str, Any]:
    target = next(t for t in plan.targets if t.name == name)
    return {
        "name": name,
        "module": target.display_module,
        "status": "error",
        **xfail_info(target),
        "examples": 0,
        "seconds": 0.0,
        "error": {"kind": kind, "message": message},
        "failures": [],
    }


def print_record(record: dict[str, Any]) -> None:
    """One plain line per finished target (and a few for its failures or error); what came
    from the target (its name, messages) cannot restyle the terminal or fake lines."""
    from fuzzgrad.report.common import (
        INTERNAL_ADVICE,
        describe_input,
        failure_title,
        terminal_safe,
    )

    def say(text: str) -> None:
        print(terminal_safe(text, newlines=False))

    say(
        f"{record['name']:28s} {record['status'].upper():8s} {record.get('examples', 0):5d} "
        f"examples {record.get('seconds') or 0:6.1f}s{unjudged(record)}"
        + ("  (interrupted)" if record.get("interrupted") and not record.get("error") else "")
    )
    listed = record.get("xfail_properties")  # an xfail naming properties: say which bug is new
    for f in record.get("failures") or []:
        tag = "" if listed is None else " (xfail)" if f.get("property") in listed else " (new)"
        say(f"    {f.get('property')}{tag}: {one_line(f.get('message'))}")
        inputs = [describe_input(a) for a in f.get("inputs") or [] if isinstance(a, dict)]
        if inputs:
            say(f"    input: {'; '.join(inputs)}")
        if f.get("kind"):
            say(f"    finding: {failure_title(f)}")
        say(f"    diagnosis: {f.get('diagnosis')}")
        if f.get("reproducer"):
            say(f"    reproducer: fuzzgrad repro {os.path.relpath(f['reproducer'])}")
    for e in record.get("internal_errors") or []:
        say(f"    INTERNAL ERROR checking {e.get('property')!r}: {e.get('message')}")
        say(f"      ({INTERNAL_ADVICE})")
    error = record.get("error")
    if error:
        say(f"    error ({error.get('kind')}): {one_line(error.get('message'))}")
        if error.get("reproducer"):
            say(f"    reproducer: fuzzgrad repro {os.path.relpath(error['reproducer'])}")
    sys.stdout.flush()


def one_line(message: Any) -> str:
    """A message for one terminal line: a message of several lines (a TorchScript error, whose
    first says only that an operation failed) is its first and last, where the cause is."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0]} ... {lines[-1]}"


def unjudged(record: dict[str, Any]) -> str:
    """What a target's line adds about the cases it did not judge, whenever there are any:
    discards (and their top reason) and ambiguous cases (the references disagreed)."""
    parts = []
    discards = record.get("discards") or {}
    if isinstance(discards, dict) and discards:
        reason, count = max(discards.items(), key=lambda kv: kv[1])
        parts.append(f"{sum(discards.values())} discarded ({count}: {reason})")
    if record.get("ambiguous"):
        parts.append(f"{record['ambiguous']} ambiguous")
    return f"  [{'; '.join(parts)}]" if parts else ""


class _Live:
    """A rich live display: targets done, examples run, failures found, time left."""

    def __init__(self, recorder: Recorder):
        from rich.live import Live

        self.recorder = recorder
        self.live = Live(get_renderable=self.render, refresh_per_second=4, transient=False)
        self.live.start()

    def render(self):
        from rich.table import Table
        from rich.text import Text

        from fuzzgrad.report.common import terminal_safe

        def safe(name: str) -> str:
            return terminal_safe(name, newlines=False)

        r = self.recorder
        plan = r.plan
        running = r.running_examples()
        failures = sum(len(x.get("failures") or []) for x in r.records.values())
        failures += sum(
            len(x) for k, v in r.partial.items() if k not in r.records for x in v.values()
        )
        errors = sum(x["status"] == "error" for x in r.records.values())
        examples = r.examples_done + sum(running.values())
        if plan.end is not None:
            left = max(0, int(plan.end - time.monotonic()))
            clock = f"{left // 60}:{left % 60:02d} left"
        else:
            clock = f"{int(time.monotonic() - plan.started)}s"
        head = Text.assemble(
            ("fuzzgrad ", "bold"),
            f"{len(r.records)}/{len(plan.targets)} targets done  ",
            f"{examples} examples  ",
            (f"{failures} failures", "bold red" if failures else "green"),
            "  ",
            (f"{errors} errors  ", "bold magenta") if errors else "",
            (clock, "cyan"),
        )
        table = Table.grid(padding=(0, 2))
        table.add_row(head)
        for name, n in running.items():
            since = r.running.get(name, time.monotonic())
            line = f"  > {safe(name):28s} {n:6d} examples {time.monotonic() - since:6.1f}s"
            table.add_row(Text(line))
        for record in r.ordered()[-8:]:
            style = {"passed": "green", "xfailed": "yellow"}.get(record["status"], "bold red")
            table.add_row(
                Text.assemble(
                    f"    {safe(record['name']):28s} ",
                    (f"{record['status'].upper():8s}", style),
                    f" {record.get('examples', 0):6d} examples {record.get('seconds') or 0:6.1f}s"
                    + safe(unjudged(record)),
                )
            )
        return table

    def stop(self) -> None:
        self.live.stop()
