"""`fg.check` for hand-written tests, and the failure text that it and the pytest plugin show.

A failing fuzz test must say at a glance what broke: the shrunk inputs (shape, dtype, strides),
the worst mismatch and where it is, the diagnosis, and the reproducer with the command that
replays it. Both `check` and the plugin's items render a target's JSON result (the
`TargetResult.to_json` record) with `describe_failures`, so the two read the same.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


class TargetFailed(AssertionError):
    """A target's property does not hold (or, for a known bug, another property fails).

    Its message is the whole readable report, so pytest shows it without a traceback.
    """


class TargetCrashed(Exception):
    """Fuzzing a target crashed (an error of the harness or the target, not a wrong gradient)."""


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
    lines = [f"{name}: property {failure['property']!r} fails ({when}shrunk to):"]
    lines += [f"    {_tensor_line(a)}" for a in failure.get("inputs", [])]
    lines.append(f"  mismatch:   {failure['message']}")
    lines.append(f"  diagnosis:  {failure['diagnosis']}")
    repro = failure.get("reproducer")
    if repro:
        lines.append(f"  reproducer: {repro}")
        lines.append(f"  replay:     fuzzgrad repro {_short(repro)}")
    return "\n".join(lines)


def describe_error(name: str, error: Mapping[str, Any]) -> str:
    """What crashed while fuzzing a target, with the traceback's tail."""
    lines = [f"{name}: fuzzing crashed ({error.get('kind', 'exception')}): {error['message']}"]
    if error.get("reproducer"):
        lines.append(f"  replay: fuzzgrad repro {_short(error['reproducer'])}")
    if error.get("traceback"):
        lines.append(error["traceback"].rstrip()[-2000:])
    return "\n".join(lines)


def describe_failures(result: Mapping[str, Any], properties: Iterable[str] | None = None) -> str:
    """The report of a target's failures (only ``properties`` when given), then its summary."""
    wanted = None if properties is None else set(properties)
    parts = [
        describe_failure(result["name"], f)
        for f in result.get("failures", [])
        if wanted is None or f["property"] in wanted
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


def check(
    fn: Any,
    /,
    *,
    reference: Callable[..., Any] | None = None,
    jax_reference: Callable[..., Any] | None = None,
    inputs: Any = None,
    max_examples: int | None = None,
    properties: Iterable[str] | None = None,
    name: str | None = None,
    dtypes: Any = None,
    tolerances: Mapping[Any, tuple[float, float]] | None = None,
    seed: int | None = None,
    report_dir: str | Path | None = None,
    **options: Any,
):
    """Fuzz one Function inside any test and return its `TargetResult` if every property holds.

    Takes the arguments of `fuzzgrad.register` (the target is built with the same validation but
    not added to any registry). On failure raises `AssertionError` with the shrunk case, the
    mismatch, the diagnosis and, when ``report_dir`` is given, the reproducer's path; a crash
    of the harness raises `TargetCrashed`.

    Without ``max_examples``, the budget and randomness follow the fuzzgrad profile of the
    pytest run (``--fuzzgrad-profile``, ``HYPOTHESIS_PROFILE``, the ``fuzzgrad_profile`` ini
    value or ``[tool.fuzzgrad] profile``; ``dev`` outside pytest). Reproducers import the
    Function's module by name, so one replays only where that module registers the Function
    with ``fuzzgrad.register``.
    """
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.integrations.pytest_plugin import current_profile
    from fuzzgrad.registry.target import make_target

    caller = sys._getframe(1).f_globals.get("__name__", "__main__")
    target = make_target(
        fn,
        reference=reference,
        jax_reference=jax_reference,
        inputs=inputs,
        name=name,
        dtypes=dtypes,
        tolerances=tolerances,
        options=options,
        module=caller,
    )
    profile = current_profile()
    result = fuzz_target(
        target,
        max_examples=max_examples if max_examples is not None else profile.max_examples,
        seed=seed,
        properties=list(properties) if properties is not None else None,
        report_dir=report_dir,
        database_dir=profile.database_dir,
        derandomize=profile.derandomize and seed is None,
    )
    data = result.to_json()
    if result.error is not None:
        raise TargetCrashed(describe_error(target.name, result.error))
    if result.failures:
        raise TargetFailed(describe_failures(data))
    return result
