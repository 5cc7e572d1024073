"""``summary.md``: the run in Markdown, for a pull request comment or a chat message."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from fuzzgrad.report.common import (
    INTERNAL_ADVICE,
    describe_cotangent,
    describe_input,
    error_line,
    excused_line,
    failure_title,
    failures_of,
    fmt_seconds,
    grouped_failures,
    ordered_targets,
    repro_command,
    status_counts,
    terminal_safe,
    write_atomically,
)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _md(text: Any) -> str:
    """Plain text safe in Markdown prose and table cells: no markup, no raw HTML, one line."""
    one_line = " ".join(str(text).split())
    escaped = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def _code(text: Any) -> str:
    """An inline code span that survives backticks, pipes (in tables) and newlines."""
    one_line = " ".join(str(text).split()).replace("|", "\\|")
    runs = [len(m) for m in re.findall(r"`+", one_line)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


def write_summary(
    results: Mapping[str, Any],
    path: str | os.PathLike[str],
    comparison: Mapping[str, Any] | None = None,
) -> None:
    """Write a Markdown summary for a pull request comment or a chat message."""
    write_atomically(path, summary_markdown(results, comparison))


def summary_markdown(
    results: Mapping[str, Any], comparison: Mapping[str, Any] | None = None
) -> str:
    """The Markdown `write_summary` writes, as a string (CI steps may print it instead)."""
    run = results.get("run") or {}
    counts = ", ".join(f"{n} {s}" for s, n in status_counts(results).items()) or "no targets"
    facts = [
        f"{label} {run[key]}"
        for label, key in (("seed", "seed"), ("max examples", "max_examples"), ("shard", "shard"))
        if run.get(key) is not None
    ]
    if run.get("seconds") is not None:
        facts.insert(0, f"{fmt_seconds(run['seconds'])} s")
    lines = [f"## fuzzgrad: {_md(counts)}", ""]
    if run.get("incomplete"):
        lines += [f"> **Incomplete run:** {_md(run['incomplete'])}", ""]
    if facts:
        lines += [_md(", ".join(facts)), ""]
    lines += ["| target | status | examples | seconds | failures |", "|---|---|--:|--:|--:|"]
    records = ordered_targets(results)
    for r in records:
        lines.append(
            f"| {_code(r.get('name'))} | {_md(r.get('status'))} | {_md(r.get('examples', '-'))} "
            f"| {fmt_seconds(r.get('seconds'))} | {len(grouped_failures(r))} |"
        )
    excused = [
        f"{_code(r.get('name'))}: {_md(excused_line(r))}" for r in records if excused_line(r)
    ]
    if excused:
        lines += [
            "",
            "Excused by the verdict's rules (`fuzzgrad/verdict/rules.py`): " + "; ".join(excused),
        ]
    for title, known in (("Failures", False), ("Known bugs (xfailed)", True)):
        found = failures_of(records, known=known)
        lines += ["", f"### {title}"] if found else []
        for record, (sig, failure, count) in found:
            lines += ["", *_md_failure(record, sig, failure, count)]
    errored = [r for r in records if r.get("status") == "error"]
    if errored:
        lines += ["", "### Errors"]
        for r in errored:
            lines += ["", *_md_error(r)]
    internal = [
        (r, e) for r in records for e in r.get("internal_errors") or [] if isinstance(e, dict)
    ]
    if internal:
        lines += ["", "### Internal errors of fuzzgrad", "", _md(INTERNAL_ADVICE), ""]
        lines += [
            f"- {_code(r.get('name'))} while checking {_md(e.get('property'))} "
            f"({_md(e.get('count', 1))}x): {_md(e.get('message'))}"
            for r, e in internal
        ]
    xpassed = [r for r in records if r.get("status") == "xpassed"]
    if xpassed:
        lines += ["", "### Known bugs that no longer reproduce (xpassed)", ""]
        lines += [
            f"- {_code(r.get('name'))}: {_md(r.get('xfail_reason') or 'xfail')}; remove the mark"
            for r in xpassed
        ]
    if comparison is not None:
        lines += ["", *_md_comparison(comparison)]
    # Control characters and bidi overrides of a target's name or message, as on the terminal.
    return terminal_safe("\n".join(lines) + "\n")


def _md_failure(record: Mapping[str, Any], sig: str, failure: Mapping[str, Any], n: int) -> list:
    lines = [f"#### {_code(record.get('name'))}: {_md(failure_title(failure))}", ""]
    if failure.get("diagnosis"):
        lines.append(f"- diagnosis: {_md(failure['diagnosis'])}")
    if failure.get("message"):
        lines.append(f"- message: {_code(failure['message'])}")
    lines += _md_example(failure)
    lines.append(f"- signature {_code(sig)}" + (f", found {n} times" if n > 1 else ""))
    return lines


def _md_example(record: Mapping[str, Any]) -> list[str]:
    """The inputs (values when small), cotangents and reproducer of a failure or an error."""
    lines = [
        f"- input {_code(describe_input(a))}"
        for a in record.get("inputs") or []
        if isinstance(a, dict)
    ]
    lines += [
        f"- {_code(describe_cotangent(c))}"
        for c in record.get("cotangents") or []
        if isinstance(c, dict)
    ]
    if record.get("reproducer"):
        reproducer = str(record["reproducer"])
        lines.append(
            f"- reproducer: {_code(reproducer)}, replay with {_code(repro_command(reproducer))}"
        )
    elif record.get("no_reproducer"):
        lines.append(f"- no reproducer: it could not be written ({_md(record['no_reproducer'])})")
    return lines


def _md_error(record: Mapping[str, Any]) -> list[str]:
    error = record.get("error")
    error = error if isinstance(error, dict) else {}
    lines = [
        f"#### {_code(record.get('name'))}: {_md(error.get('kind') or 'error')}",
        "",
        f"- {_md(error.get('message') or error_line(record) or 'error')}",
    ]
    if isinstance(error.get("example"), int):
        lines.append(f"- running example {error['example']}")
    return lines + _md_example(error)


def _md_comparison(cmp: Mapping[str, Any]) -> list[str]:
    lines = ["### Compared with the previous run"]
    for title, key in (("New", "new"), ("Fixed", "fixed"), ("Still failing", "still_failing")):
        entries = cmp.get(key) or []
        lines += ["", f"#### {title} ({len(entries)})", ""]
        lines += [_md_entry(e) for e in entries] or ["- none"]
    if cmp.get("new_errors"):
        lines += ["", f"#### New errors ({len(cmp['new_errors'])})", ""]
        lines += [
            f"- {_code(e.get('target'))} ({_md(e.get('kind') or 'error')}): {_md(e.get('message'))}"
            for e in cmp["new_errors"]
        ]
    if cmp.get("unverified"):
        lines += ["", "#### Not re-run, cannot tell if fixed", ""]
        lines += [_md_entry(e) for e in cmp["unverified"]]
    return lines


def _md_entry(entry: Mapping[str, Any]) -> str:
    xfail = " (xfail)" if entry.get("status") == "xfailed" else ""
    text = f"- {_code(entry.get('target'))} {_md(entry.get('property'))}{xfail}"
    if entry.get("diagnosis"):
        text += f": {_md(entry['diagnosis'])}"
    if entry.get("reproducer"):
        text += f" ({_code(repro_command(str(entry['reproducer'])))})"
    return text + f" {_code(entry.get('signature'))}"
