"""Turn a run's ``results.json`` into what people read: JUnit XML, Markdown, HTML, run-to-run diffs.

Standard library only, so a CI step or a laptop can render a report in milliseconds without torch
or JAX installed. Every record field other than ``name``, ``status``, ``examples``, ``seconds`` and
``failures`` may be missing (older or partial records); renderers show what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fuzzgrad.errors import ReproducerError

RESULTS_FORMAT = "fuzzgrad-results"
#: The newest ``format_version`` this module can read.
RESULTS_FORMAT_VERSION = 1

#: Most alarming first: tables and lists are ordered by this, then by run order.
STATUS_ORDER = ("error", "failed", "xpassed", "xfailed", "passed")


class ResultsFormatError(ReproducerError):
    """A ``results.json`` is missing, unreadable, or not in a format this fuzzgrad understands."""


# --- reading -------------------------------------------------------------------------------------


def load_results(path_or_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run's results, from a ``results.json`` path or its report directory.

    Validation is shallow on purpose (format tag, version, the shape of ``targets``) so that
    renderers can rely on the structure while tolerating missing optional fields.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ResultsFormatError(
            f"no results file at {str(path)!r}; pass a results.json path or the report directory "
            "that a `fuzzgrad fuzz` run wrote"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"cannot read {str(path)!r} as JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ResultsFormatError(
            f"{str(path)!r} is not a fuzzgrad results file (format={found!r}, expected "
            f"{RESULTS_FORMAT!r})"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsFormatError(f"{str(path)!r} has no integer format_version (got {version!r})")
    if version > RESULTS_FORMAT_VERSION:
        raise ResultsFormatError(
            f"{str(path)!r} has format_version {version}, but this fuzzgrad reads versions up to "
            f"{RESULTS_FORMAT_VERSION}; upgrade fuzzgrad to render it"
        )
    if version < 1:
        raise ResultsFormatError(f"{str(path)!r} has invalid format_version {version}")
    targets = data.get("targets")
    if not isinstance(targets, list):
        raise ResultsFormatError(f"{str(path)!r}: 'targets' must be a list, got {targets!r:.60}")
    for i, record in enumerate(targets):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise ResultsFormatError(f"{str(path)!r}: targets[{i}] has no string 'name'")
        if not isinstance(record.get("status"), str):
            raise ResultsFormatError(
                f"{str(path)!r}: target {record['name']!r} has no string 'status'"
            )
    return data


# --- shared helpers (also used by _render_html) --------------------------------------------------


def failure_signature(target_name: str, failure: Mapping[str, Any]) -> str:
    """A short stable id of one bug: (target, property, diagnosis), not the example that found it.

    Messages and inputs change from run to run as shrinking lands on different minimal cases; the
    property that broke and the ablation diagnosis do not, so a bug found 100 times is one id.
    Renderers recompute it rather than trust a stored ``signature`` field, so records written by
    older versions, or edited by hand, still group and compare the same way.
    """
    prop = " ".join(str(failure.get("property") or "").split())
    diagnosis = " ".join(str(failure.get("diagnosis") or "").split())
    key = "\x1f".join((target_name, prop, diagnosis))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def ordered_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Target records, most alarming status first, run order within a status."""
    records = [t for t in results.get("targets") or [] if isinstance(t, dict)]

    def rank(record: dict[str, Any]) -> int:
        status = record.get("status")
        return STATUS_ORDER.index(status) if status in STATUS_ORDER else 0

    return sorted(records, key=rank)


def status_counts(results: Mapping[str, Any]) -> dict[str, int]:
    """How many targets ended in each status, in `STATUS_ORDER` (zeros left out)."""
    counts: dict[str, int] = {}
    for record in ordered_targets(results):
        status = str(record.get("status"))
        counts[status] = counts.get(status, 0) + 1
    order = {s: i for i, s in enumerate(STATUS_ORDER)}
    return dict(sorted(counts.items(), key=lambda kv: order.get(kv[0], -1)))


def grouped_failures(record: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], int]]:
    """A target's failures as (signature, first failure, times found), first-found order."""
    groups: dict[str, list[Any]] = {}
    for failure in record.get("failures") or []:
        if not isinstance(failure, dict):
            continue
        sig = failure_signature(str(record.get("name")), failure)
        if sig in groups:
            groups[sig][1] += 1
        else:
            groups[sig] = [failure, 1]
    return [(sig, f, n) for sig, (f, n) in groups.items()]


def failures_of(
    records: list[dict[str, Any]], *, known: bool
) -> list[tuple[dict[str, Any], tuple[str, dict[str, Any], int]]]:
    """(record, group) for each distinct bug: of xfailed targets if ``known``, else of the rest."""
    return [
        (r, g)
        for r in records
        if (r.get("status") == "xfailed") == known
        for g in grouped_failures(r)
    ]


def repro_command(reproducer: str) -> str:
    """The shell command that replays a reproducer file."""
    return f"fuzzgrad repro {shlex.quote(reproducer)}"


def describe_input(arg: Mapping[str, Any]) -> str:
    """One line per tensor argument: ``x: float32 shape (3, 4) stride (1, 3) offset 0 cpu``."""
    parts = [f"{arg.get('name', '?')}:", str(arg.get("dtype", "?"))]
    if "shape" in arg:
        parts.append(f"shape {fmt_tuple(arg['shape'])}")
    if "stride" in arg:
        parts.append(f"stride {fmt_tuple(arg['stride'])}")
    if arg.get("storage_offset"):
        parts.append(f"offset {arg['storage_offset']}")
    if "device" in arg:
        parts.append(str(arg["device"]))
    if arg.get("requires_grad") is False:
        parts.append("no grad")
    return " ".join(parts)


def fmt_tuple(values: Any) -> str:
    """A shape or stride list written the way Python writes tuples: ``()``, ``(3,)``, ``(2, 3)``."""
    if not isinstance(values, (list, tuple)):
        return str(values)
    return "(" + ", ".join(map(str, values)) + ("," if len(values) == 1 else "") + ")"


def fmt_seconds(value: Any) -> str:
    """Seconds for a table cell: two decimals (none past 100 s), or a dash when unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def error_line(record: Mapping[str, Any]) -> str:
    """``kind: message`` of an errored target, or an empty string."""
    error = record.get("error")
    if not isinstance(error, dict):
        return ""
    kind, message = error.get("kind"), error.get("message")
    return ": ".join(str(x) for x in (kind, message) if x)


# --- comparison ----------------------------------------------------------------------------------


def _failure_index(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    index: dict[str, dict[str, Any]] = {}
    for record in results.get("targets") or []:
        for sig, failure, count in grouped_failures(record):
            index.setdefault(
                sig,
                {
                    "signature": sig,
                    "target": record.get("name"),
                    "property": failure.get("property"),
                    "diagnosis": failure.get("diagnosis"),
                    "reproducer": failure.get("reproducer"),
                    "status": record.get("status"),
                    "count": count,
                },
            )
    return index


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two runs, bug by bug (by `failure_signature`).

    Returns ``new``, ``fixed`` and ``still_failing`` (lists of dicts with ``signature``,
    ``target``, ``property``, ``diagnosis``, ``reproducer``, ``status``, ``count``), ``new_errors``
    (targets that errored now but not before: ``target``, ``kind``, ``message``), and the target
    names only one run has (``targets_added``, ``targets_removed``). An old failure is "fixed" only
    if its target ran again without erroring; otherwise it is listed in ``unverified``, since a
    target that did not run, or crashed, says nothing about whether its bug is gone.
    """
    old_f, new_f = _failure_index(old), _failure_index(new)
    old_t = {t.get("name"): t for t in old.get("targets") or []}
    new_t = {t.get("name"): t for t in new.get("targets") or []}
    fixed, unverified = [], []
    for sig, entry in old_f.items():
        if sig in new_f:
            continue
        record = new_t.get(entry["target"])
        (fixed if record and record.get("status") != "error" else unverified).append(entry)
    new_errors = []
    for name, record in new_t.items():
        if record.get("status") != "error":
            continue
        error = record.get("error") if isinstance(record.get("error"), dict) else {}
        before = old_t.get(name)
        before_error = before.get("error") if before and before.get("status") == "error" else None
        if isinstance(before_error, dict) and before_error.get("kind") == error.get("kind"):
            continue
        new_errors.append(
            {"target": name, "kind": error.get("kind"), "message": error.get("message")}
        )
    return {
        "new": [e for s, e in new_f.items() if s not in old_f],
        "fixed": fixed,
        "still_failing": [e for s, e in new_f.items() if s in old_f],
        "new_errors": new_errors,
        "unverified": unverified,
        "targets_added": [n for n in new_t if n not in old_t],
        "targets_removed": [n for n in old_t if n not in new_t],
    }


def format_comparison(cmp: Mapping[str, Any]) -> str:
    """The comparison as plain text for a terminal, one bug per line."""
    new, fixed, still = cmp.get("new", []), cmp.get("fixed", []), cmp.get("still_failing", [])
    errors = cmp.get("new_errors", [])
    lines = [
        f"{len(new)} new, {len(fixed)} fixed, {len(still)} still failing, "
        f"{len(errors)} new error{'' if len(errors) == 1 else 's'}"
    ]
    for title, entries in (
        ("New", new),
        ("Fixed", fixed),
        ("Still failing", still),
        ("Not re-run (cannot tell if fixed)", cmp.get("unverified", [])),
    ):
        if entries:
            lines += ["", f"{title}:"] + [f"  {_entry_line(e)}" for e in entries]
    if errors:
        lines += ["", "New errors:"]
        lines += [
            f"  {e['target']} ({e.get('kind') or 'error'}): {e.get('message')}" for e in errors
        ]
    for title, key in (("Targets added", "targets_added"), ("Targets removed", "targets_removed")):
        if cmp.get(key):
            lines += ["", f"{title}: {', '.join(map(str, cmp[key]))}"]
    return "\n".join(lines) + "\n"


def _entry_line(entry: Mapping[str, Any]) -> str:
    xfail = " (xfail)" if entry.get("status") == "xfailed" else ""
    text = f"{entry['signature']}  {entry['target']}  {entry.get('property')}{xfail}"
    if entry.get("diagnosis"):
        text += f": {entry['diagnosis']}"
    if entry.get("reproducer"):
        text += f"\n      {repro_command(str(entry['reproducer']))}"
    return text


# --- JUnit XML -----------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(value: Any) -> str:
    """Text that XML 1.0 can hold: control characters from tracebacks would make it unparseable."""
    return _XML_INVALID.sub("?", "" if value is None else str(value))


def _failure_text(sig: str, failure: Mapping[str, Any], count: int) -> str:
    lines = [
        f"property: {failure.get('property')}",
        f"diagnosis: {failure.get('diagnosis')}",
        f"message: {failure.get('message')}",
    ]
    lines += [f"input {describe_input(a)}" for a in failure.get("inputs") or []]
    if failure.get("reproducer"):
        lines.append(f"reproducer: {failure['reproducer']}")
        lines.append(f"replay: {repro_command(str(failure['reproducer']))}")
    lines.append(f"signature: {sig}" + (f" (found {count} times)" if count > 1 else ""))
    return "\n".join(lines)


def write_junit(results: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write JUnit XML so CI systems show one test per target, with the shrunk failure inline.

    xfailed targets are skipped tests; an xpassed target is a failure, because the known bug it
    was marked with no longer reproduces and the mark should go.
    """
    run = results.get("run") or {}
    targets = list(results.get("targets") or [])
    counts = status_counts(results)
    suite = ET.Element(
        "testsuite",
        name="fuzzgrad",
        tests=str(len(targets)),
        failures=str(counts.get("failed", 0) + counts.get("xpassed", 0)),
        errors=str(counts.get("error", 0)),
        skipped=str(counts.get("xfailed", 0)),
        time=f"{_num(run.get('seconds')) or sum(_num(t.get('seconds')) for t in targets):.3f}",
    )
    if run.get("started"):
        suite.set("timestamp", _x(run["started"]))
    if run.get("hostname"):
        suite.set("hostname", _x(run["hostname"]))
    props = ET.SubElement(suite, "properties")
    for key in ("seed", "max_examples", "budget_seconds", "torch_version", "jax_version", "shard"):
        if run.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=_x(run[key]))
    if results.get("fuzzgrad_version"):
        ET.SubElement(
            props, "property", name="fuzzgrad_version", value=_x(results["fuzzgrad_version"])
        )
    for record in targets:
        _junit_case(suite, record)
    root = ET.Element("testsuites", name="fuzzgrad")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _junit_case(suite: ET.Element, record: Mapping[str, Any]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_x(record.get("module") or "fuzzgrad"),
        name=_x(record.get("name")),
        time=f"{_num(record.get('seconds')):.3f}",
    )
    status = record.get("status")
    groups = grouped_failures(record)
    if status == "failed" or (status not in STATUS_ORDER and groups):
        first = groups[0][1] if groups else {}
        message = (
            ": ".join(
                str(x)
                for x in (first.get("property"), first.get("diagnosis") or first.get("message"))
                if x
            )
            or f"{status} (no failure recorded)"
        )
        if len(groups) > 1:
            message += f" (+{len(groups) - 1} more)"
        element = ET.SubElement(
            case, "failure", message=_x(message), type=_x(first.get("property"))
        )
        element.text = _x("\n\n".join(_failure_text(*g) for g in groups))
    elif status == "error":
        error = record.get("error") if isinstance(record.get("error"), dict) else {}
        element = ET.SubElement(
            case, "error", message=_x(error_line(record) or "error"), type=_x(error.get("kind"))
        )
        element.text = _x(error.get("traceback") or error.get("message"))
    elif status == "xfailed":
        ET.SubElement(case, "skipped", message=_x(f"xfail: {record.get('xfail_reason') or ''}"))
    elif status == "xpassed":
        reason = record.get("xfail_reason")
        ET.SubElement(
            case,
            "failure",
            type="xpassed",
            message=_x(
                "xpassed: the known bug no longer reproduces; remove the xfail mark"
                + (f" (xfail reason: {reason})" if reason else "")
            ),
        )
    out = [f"examples: {record.get('examples')}"]
    if record.get("discards"):
        out.append(f"discards: {json.dumps(record['discards'], sort_keys=True)}")
    if record.get("jax_share") is not None:
        out.append(f"jax_share: {record['jax_share']}")
    ET.SubElement(case, "system-out").text = _x("\n".join(out))


# --- Markdown ------------------------------------------------------------------------------------

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
    Path(path).write_text(summary_markdown(results, comparison), encoding="utf-8")


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
    if facts:
        lines += [_md(", ".join(facts)), ""]
    lines += ["| target | status | examples | seconds | failures |", "|---|---|--:|--:|--:|"]
    records = ordered_targets(results)
    for r in records:
        lines.append(
            f"| {_code(r.get('name'))} | {_md(r.get('status'))} | {_md(r.get('examples', '-'))} "
            f"| {fmt_seconds(r.get('seconds'))} | {len(grouped_failures(r))} |"
        )
    for title, known in (("Failures", False), ("Known bugs (xfailed)", True)):
        found = failures_of(records, known=known)
        lines += ["", f"### {title}"] if found else []
        for record, (sig, failure, count) in found:
            lines += ["", *_md_failure(record, sig, failure, count)]
    errored = [r for r in records if r.get("status") == "error"]
    if errored:
        lines += ["", "### Errors", ""]
        lines += [f"- {_code(r.get('name'))}: {_md(error_line(r) or 'error')}" for r in errored]
    xpassed = [r for r in records if r.get("status") == "xpassed"]
    if xpassed:
        lines += ["", "### Known bugs that no longer reproduce (xpassed)", ""]
        lines += [
            f"- {_code(r.get('name'))}: {_md(r.get('xfail_reason') or 'xfail')}; remove the mark"
            for r in xpassed
        ]
    if comparison is not None:
        lines += ["", *_md_comparison(comparison)]
    return "\n".join(lines) + "\n"


def _md_failure(record: Mapping[str, Any], sig: str, failure: Mapping[str, Any], n: int) -> list:
    lines = [f"#### {_code(record.get('name'))}: {_md(failure.get('property'))}", ""]
    if failure.get("diagnosis"):
        lines.append(f"- diagnosis: {_md(failure['diagnosis'])}")
    if failure.get("message"):
        lines.append(f"- message: {_code(failure['message'])}")
    lines += [f"- input {_code(describe_input(a))}" for a in failure.get("inputs") or []]
    if failure.get("reproducer"):
        reproducer = str(failure["reproducer"])
        lines.append(
            f"- reproducer: {_code(reproducer)}, replay with {_code(repro_command(reproducer))}"
        )
    lines.append(f"- signature {_code(sig)}" + (f", found {n} times" if n > 1 else ""))
    return lines


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


# --- HTML (lives in _render_html; imported lazily to keep this module small) --------------------


def write_html(
    results: Mapping[str, Any],
    path: str | os.PathLike[str],
    comparison: Mapping[str, Any] | None = None,
) -> None:
    """Write a single self-contained static ``index.html`` (inline CSS and SVG, no scripts)."""
    from fuzzgrad.report.html import write_html as _write_html

    _write_html(results, path, comparison)
