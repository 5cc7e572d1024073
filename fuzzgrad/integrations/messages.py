"""The failure text that `fuzzgrad.check` and the pytest plugin show, and the exceptions that
carry it.

A failing fuzz test must say at a glance what broke: the shrunk inputs (shape, dtype, strides),
the worst mismatch and where it is, the diagnosis, and the reproducer with the command that
replays it. Both render a target's JSON result (the `TargetResult.to_json` record) with
`describe_failures`, so the two read the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from fuzzgrad.report.common import (
    INTERNAL_ADVICE,
    failure_properties,
    terminal_safe,
)


class TargetFailed(AssertionError):
    """A target's property does not hold (or, for a known bug, another property fails).

    Its message is the whole readable report, so pytest shows it without a traceback.
    """


class TargetCrashed(AssertionError):
    """Fuzzing a target crashed or hung (the target's crash, or the harness's), not a wrong
    gradient: an AssertionError all the same, so a test that fuzzes fails rather than errors."""


def _tensor_line(arg: Mapping[str, Any]) -> str:
    i = arg.get("index", "?")
    if "shape" not in arg:
        return f"arg {i}: {arg.get('value', '?')}"
    shape = ", ".join(map(str, arg["shape"]))
    stride = ", ".join(map(str, arg["stride"]))
    grad = "" if arg.get("requires_grad", True) else ", no grad"
    return (
        f"arg {i}: {arg['dtype']}[{shape}] stride ({stride}) offset {arg['storage_offset']} "
        f"on {arg['device']}{grad}"
    )


def describe_failure(name: str, failure: Mapping[str, Any]) -> str:
    """A few lines on one shrunk failure: inputs, mismatch, diagnosis and how to replay it."""
    found = failure.get("examples_to_find")
    when = f"first failed on example {found}, " if found else ""
    props = failure_properties(failure)
    also = f" (and {', '.join(map(repr, props[1:]))})" if len(props) > 1 else ""
    lines = [f"{name}: property {props[0]!r}{also} fails ({when}shrunk to):"]
    lines += [f"    {_tensor_line(a)}" for a in failure.get("inputs", [])]
    if failure.get("kind"):
        lines.append(f"  finding:    {failure['kind']}")
    lines.append(f"  mismatch:   {failure['message']}")
    lines.append(f"  diagnosis:  {failure['diagnosis']}")
    repro = failure.get("reproducer")
    if repro:
        lines.append(f"  reproducer: {repro}")
        lines.append(f"  replay:     fuzzgrad repro {_short(repro)}")
    return terminal_safe("\n".join(lines))


def describe_error(name: str, error: Mapping[str, Any]) -> str:
    """What crashed while fuzzing a target, with the traceback's tail."""
    lines = [f"{name}: fuzzing crashed ({error.get('kind', 'exception')}): {error['message']}"]
    if error.get("reproducer"):
        lines.append(f"  replay: fuzzgrad repro {_short(error['reproducer'])}")
    if error.get("traceback"):
        lines.append(error["traceback"].rstrip()[-2000:])
    return terminal_safe("\n".join(lines))


def describe_failures(result: Mapping[str, Any], properties: Iterable[str] | None = None) -> str:
    """The report of a target's failures (only ``properties`` when given), then its summary."""
    wanted = None if properties is None else set(properties)
    parts = [
        describe_failure(result["name"], f)
        for f in result.get("failures", [])
        if wanted is None or wanted & set(failure_properties(f))
    ]
    parts += [
        terminal_safe(
            f"{result['name']}: internal error while checking {e.get('property')!r} "
            f"({e.get('count', 1)}x): {e.get('message')}\n  ({INTERNAL_ADVICE})"
        )
        for e in result.get("internal_errors") or []
    ]
    parts.append(
        f"({result['examples']} examples in {result['seconds']:.1f}s; "
        f"target {result['name']} from {result['module']})"
    )
    return "\n\n".join(parts)


def _short(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (a command to copy)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel
