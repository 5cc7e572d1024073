"""What every renderer of a run's results shares: signatures, ordering, short formats.

Standard library only, so a CI step or a laptop can render a report in milliseconds without torch
or JAX installed. Every record field other than ``name``, ``status``, ``examples``, ``seconds``
and ``failures`` may be missing (older or partial records); renderers show what is there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Most alarming first: tables and lists are ordered by this, then by run order.
STATUS_ORDER = ("error", "failed", "xpassed", "xfailed", "passed")


def status(error: bool, failing: set[str], xfail: str | None, xfail_properties) -> str:
    """A target's status: ``error``; else, with an ``xfail`` reason, ``xfailed`` where every
    failing property is one the known bug shows in (``xfail_properties``, None for any) and
    ``failed`` where another property fails too (a second bug the mark must not hide),
    ``xpassed`` where nothing fails; without one, ``failed`` or ``passed``."""
    if error:
        return "error"
    if not xfail:
        return "failed" if failing else "passed"
    if not failing:
        return "xpassed"
    known = xfail_properties is None or failing <= set(xfail_properties)
    return "xfailed" if known else "failed"


def failure_signature(target_name: str, failure: Mapping[str, Any]) -> str:
    """A short stable id of one finding: (target, ``kind``), not the example that found it.

    ``kind`` is the finding's identity (`fuzzgrad.verdict.identity`: its root, the classes of
    non-tensor arguments and the diagnosis factors it needs), which stays the same across runs
    that find the same bug while messages and inputs change as shrinking lands on different
    minimal cases. Records without one (written before it existed) use (property, diagnosis).
    Renderers recompute it rather than trust a stored ``signature`` field, so records written by
    older versions, or edited by hand, still group and compare the same way.
    """
    kind = " ".join(str(failure.get("kind") or "").split())
    if kind:
        key = "\x1f".join((target_name, kind))
    else:
        prop = " ".join(str(failure.get("property") or "").split())
        diagnosis = " ".join(str(failure.get("diagnosis") or "").split())
        key = "\x1f".join((target_name, prop, diagnosis))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def failure_properties(failure: Mapping[str, Any]) -> list[str]:
    """Every property a finding breaks (its ``property`` first; older records name one)."""
    listed = failure.get("properties")
    if isinstance(listed, list) and listed:
        return [str(p) for p in listed]
    return [str(failure.get("property"))]


def failure_title(failure: Mapping[str, Any]) -> str:
    """``vjp (also second_order): vjp grad[input=0] | dim<0``: the properties a finding breaks
    and its identity (`kind`), where the record has one."""
    props = failure_properties(failure)
    text = props[0] + (f" (also {', '.join(props[1:])})" if len(props) > 1 else "")
    kind = failure.get("kind")
    return f"{text}: {kind}" if kind else text


#: What an internal error (an exception of fuzzgrad's own code) asks of whoever sees it.
INTERNAL_ADVICE = (
    "a bug of fuzzgrad, not of the Function: the findings of this target are kept; please "
    "report it to fuzzgrad's issue tracker with the traceback from results.json"
)


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
    """One line per argument: ``x: float32 shape (3, 4) stride (1, 3) offset 0 cpu``, then its
    values when the record has them (small tensors), or ``n: 3`` for a non-tensor argument."""
    return f"{arg_name(arg)}: {describe_tensor(arg)}"


def describe_cotangent(cot: Mapping[str, Any]) -> str:
    """One line per cotangent: ``grad_output[0]: float32 shape (3,) stride (0,) expanded cpu``."""
    return f"grad_output[{cot.get('output', '?')}]: {describe_tensor(cot)}"


def arg_name(arg: Mapping[str, Any]) -> str:
    """An argument's name from the Function's signature, else ``arg <index>``."""
    name = arg.get("name")
    if isinstance(name, str) and name:
        return name
    index = arg.get("index")
    return f"arg {index}" if isinstance(index, int) else "arg"


def describe_tensor(arg: Mapping[str, Any]) -> str:
    """What `describe_input` says after the name (the ``value`` of a non-tensor argument)."""
    if "shape" not in arg and "value" in arg:
        return str(arg["value"])
    parts = [str(arg.get("dtype", "?"))]
    if "shape" in arg:
        parts.append(f"shape {fmt_tuple(arg['shape'])}")
    if "stride" in arg:
        parts.append(f"stride {fmt_tuple(arg['stride'])}")
    if arg.get("storage_offset"):
        parts.append(f"offset {arg['storage_offset']}")
    if arg.get("layout") not in (None, "contiguous"):
        parts.append(str(arg["layout"]))
    if "device" in arg:
        parts.append(str(arg["device"]))
    if arg.get("requires_grad") is False:
        parts.append("no grad")
    if "values" in arg:
        parts.append(f"values {fmt_values(arg)}")
    return " ".join(parts)


def fmt_values(arg: Mapping[str, Any]) -> str:
    """A small tensor's ``values`` (stored flat, row-major) nested by its shape, as Python writes
    nested lists: ``[[1.0, 2.0], [3.0, nan]]``; a 0-d tensor is its one value."""
    values = arg.get("values")
    if not isinstance(values, list):
        return "?"
    shape = arg.get("shape")
    text = [_fmt_value(v) for v in values]
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        return "[" + ", ".join(text) + "]"
    size = 1
    for n in shape:
        size *= n
    if size != len(text):
        return "[" + ", ".join(text) + "]"
    if not shape:
        return text[0]

    def nest(flat: list[str], dims: list[int]) -> str:
        if len(dims) == 1:
            return "[" + ", ".join(flat) + "]"
        step = len(flat) // dims[0] if dims[0] else 0
        rows = (nest(flat[i * step : (i + 1) * step], dims[1:]) for i in range(dims[0]))
        return "[" + ", ".join(rows) + "]"

    return nest(text, shape)


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


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


def excused_line(record: Mapping[str, Any]) -> str:
    """``rule n, rule n`` of a target's excused mismatches (most first), or an empty string:
    how often each of the verdict's named rules (`fuzzgrad.verdict.rules`) forgave one."""
    counts = record.get("excused")
    if not isinstance(counts, Mapping) or not counts:
        return ""
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1] or 0), str(kv[0])))
    return ", ".join(f"{rule} {n}" for rule, n in ordered)


def error_line(record: Mapping[str, Any]) -> str:
    """``kind: message`` of an errored target, or an empty string."""
    error = record.get("error")
    if not isinstance(error, dict):
        return ""
    kind, message = error.get("kind"), error.get("message")
    return ": ".join(str(x) for x in (kind, message) if x)


#: ``scheme://user:password@`` (or ``scheme://token@``) in a URL: the part a report must not
#: show. Any scheme: Redis, and whatever database a later version accepts.
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#\"'\\<>]*@")
#: A secret passed as a URL query parameter (``redis://host/0?password=...``).
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|auth|access_token|api_key)=)"
    r"[^&#\s\"'\\<>]*"
)


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it replaced by ``***``: the user and password
    of ``redis://user:password@host`` and secrets in its query (``?password=...``). Safe on
    JSON text: a match never reaches past a quote or a backslash."""
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    return _QUERY_SECRET.sub(r"\1***", text)


def terminal_safe(text: Any, *, newlines: bool = True) -> str:
    """``text`` safe to print: control characters (ANSI escape sequences start with one),
    Unicode line and paragraph separators and bidirectional overrides are shown as escapes
    (``\\x1b``), so a target's name or exception message cannot restyle, move the cursor or
    fake lines. Newlines and tabs are kept unless ``newlines`` is False."""
    out = []
    for ch in str(text):
        if ch in "\n\t" and newlines:
            out.append(ch)
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it, renamed into place: a full
    disk or a kill leaves the old file or none, never an empty or half-written one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
