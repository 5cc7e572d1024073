"""JUnit XML: one test per target, the shrunk failure inline, for CI systems."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from fuzzgrad.report.common import (
    STATUS_ORDER,
    describe_cotangent,
    describe_input,
    error_line,
    failure_title,
    grouped_failures,
    redact,
    repro_command,
    status_counts,
    terminal_safe,
    write_atomically,
)

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(value: Any) -> str:
    """Text that XML 1.0 can hold: control characters from tracebacks would make it unparseable."""
    return _XML_INVALID.sub("?", terminal_safe("" if value is None else str(value)))


def _failure_text(sig: str, failure: Mapping[str, Any], count: int) -> str:
    lines = [
        f"property: {failure.get('property')}",
        f"finding: {failure_title(failure)}",
        f"diagnosis: {failure.get('diagnosis')}",
        f"message: {failure.get('message')}",
    ]
    lines += _example_lines(failure)
    lines.append(f"signature: {sig}" + (f" (found {count} times)" if count > 1 else ""))
    return "\n".join(lines)


def _example_lines(record: Mapping[str, Any]) -> list[str]:
    """Inputs (values when small), cotangents and reproducer of a failure or an error."""
    lines = [
        f"input {describe_input(a)}" for a in record.get("inputs") or [] if isinstance(a, dict)
    ]
    lines += [describe_cotangent(c) for c in record.get("cotangents") or [] if isinstance(c, dict)]
    if record.get("reproducer"):
        lines.append(f"reproducer: {record['reproducer']}")
        lines.append(f"replay: {repro_command(str(record['reproducer']))}")
    return lines


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
            ET.SubElement(props, "property", name=key, value=_x(redact(str(run[key]))))
    if results.get("fuzzgrad_version"):
        ET.SubElement(
            props, "property", name="fuzzgrad_version", value=_x(results["fuzzgrad_version"])
        )
    for record in targets:
        _junit_case(suite, record)
    root = ET.Element("testsuites", name="fuzzgrad")
    root.append(suite)
    ET.indent(root)
    xml = ET.tostring(root, encoding="unicode")
    write_atomically(path, "<?xml version='1.0' encoding='utf-8'?>\n" + xml)


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
                for x in (failure_title(first), first.get("diagnosis") or first.get("message"))
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
        error = record.get("error")
        error = error if isinstance(error, dict) else {}
        element = ET.SubElement(
            case, "error", message=_x(error_line(record) or "error"), type=_x(error.get("kind"))
        )
        lines = [str(error.get("message") or "")]
        if isinstance(error.get("example"), int):
            lines.append(f"running example {error['example']}")
        lines += _example_lines(error)
        if error.get("traceback"):
            lines += ["", str(error["traceback"])]
        element.text = _x("\n".join(lines))
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
