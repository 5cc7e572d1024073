"""`fg.check`: fuzz one Function inside any hand-written test.

A failing fuzz test must say at a glance what broke: the shrunk inputs (shape, dtype, strides),
the worst mismatch and where it is, the diagnosis, and the reproducer with the command that
replays it. Both `check` and the plugin's items render a target's JSON result (the
`TargetResult.to_json` record) with `describe_failures`, so the two read the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.integrations.messages import (
    TargetCrashed,
    TargetFailed,
    describe_error,
    describe_failures,
)


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
    not added to any registry). On failure raises `AssertionError` (`TargetFailed`) with the
    shrunk case, the mismatch, the diagnosis and the reproducer's path (written under
    ``report_dir``, else a fresh temporary folder); a Function that crashes or hangs raises
    `TargetCrashed`, an AssertionError too; a registration the cases show to be wrong (say a
    reference returning another number of outputs) raises `fuzzgrad.InvalidRegistration`.

    Without ``max_examples``, the budget and randomness follow the fuzzgrad profile of the
    pytest run (``--fuzzgrad-profile``, ``HYPOTHESIS_PROFILE``, the ``fuzzgrad_profile`` ini
    value or ``[tool.fuzzgrad] profile``; ``dev`` outside pytest). Reproducers import the
    Function's module by name, so one replays only where that module registers the Function
    with ``fuzzgrad.register``.
    """
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.integrations.profiles import current_profile
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
    if report_dir is None:  # a failure always has a reproducer to name
        import tempfile

        report_dir = tempfile.mkdtemp(prefix="fuzzgrad-check-")
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
        if result.error.get("kind") == "registration":
            raise InvalidRegistration(result.error["message"])
        raise TargetCrashed(describe_error(target.name, result.error))
    if result.failures:
        raise TargetFailed(describe_failures(data))
    return result
