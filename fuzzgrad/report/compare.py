"""Run-to-run diffs: which bugs are new, fixed and still failing (by `failure_signature`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fuzzgrad.report.common import grouped_failures, repro_command


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
    fixed: list[dict[str, Any]] = []
    unverified: list[dict[str, Any]] = []
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
