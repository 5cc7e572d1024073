"""What runs inside a nightly worker: targets fuzzed in time-boxed rounds, with heartbeats.

A worker is a spawned process that imports the target modules once and then fuzzes the targets
the parent sends it, one at a time. The parent watches it through a shared heartbeat (when the
current example started, how many ran) and a scratch file holding the current example's inputs,
so that when the worker hangs or dies the parent can still say what was running and write a
reproducer. `fuzz_for` is also what ``--no-isolate`` runs in the parent process itself.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Heartbeat slots (a shared array of doubles): when the current example started (monotonic),
#: examples run on the current target.
BEAT_STARTED, BEAT_EXAMPLES = 0, 1

_REDIS: dict[str, Any] = {}


def open_database(spec: str | None, key: str) -> Any:
    """The Hypothesis example database for one target: a folder, a Redis URL, or none."""
    if not spec or spec.lower() == "none":
        return None
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from hypothesis.extra.redis import RedisExampleDatabase
        from redis import Redis

        client = _REDIS.get(spec) or _REDIS.setdefault(spec, Redis.from_url(spec))
        return RedisExampleDatabase(client, key_prefix=f"fuzzgrad:{key}:".encode())
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(Path(spec) / key)


def fuzz_for(
    target,
    *,
    until: float | None,
    shrink_until: float | None,
    chunk: int,
    seed: int | None,
    properties: list[str] | None,
    report_dir: Path,
    database: str | None,
    example_timeout: float | None,
    on_example: Callable[[Any], None] | None = None,
    on_finding: Callable[[str, dict[str, Any]], None] | None = None,
    on_failure: Callable[[dict[str, Any]], None] | None = None,
):
    """Fuzz ``target`` in rounds of ``chunk`` examples until the monotonic instant ``until``; one
    round when ``until`` is None. Round ``r`` uses seed ``seed + r``, or a fresh random one when
    ``seed`` is None (Hypothesis ignores the example database under an explicit seed).

    Each round ends early at ``until`` (unless it is shrinking a failure, which may go on to
    ``shrink_until``). A property that failed is left out of later rounds, so the database's
    replay of it does not end every round at once; the target is done when every property
    failed, it errored, or a round exhausted the search space.
    """
    from hypothesis import Phase, settings

    from fuzzgrad.engine.hypothesis_compat import set_shrinking_deadline, shrinking_deadline
    from fuzzgrad.engine.runner import db_key, fuzz_target, hypothesis_settings
    from fuzzgrad.properties.checker import Checker

    remaining = list(Checker(target, properties).properties)
    failed: list[str] = []
    db = open_database(database, db_key(target))
    results = []
    round_no = 0

    def finding(prop: str, info: dict[str, Any]) -> None:
        if shrink_until is not None:
            # Shrinking starts now (one bug per round), and Hypothesis caps it with a module
            # constant read when it starts: make that cap our deadline.
            set_shrinking_deadline(shrink_until - time.monotonic())
        if on_finding is not None:
            on_finding(prop, info)

    while remaining:
        if until is not None and round_no and time.monotonic() >= until:
            break
        config = None
        if until is not None:
            # One bug per round: Hypothesis then shrinks at once instead of searching on for
            # other bugs for up to 10s, so a test that fails while `until` is past is shrinking.
            # Only the first round replays the database: a later one, with a failed property
            # left out, would find the stored failure no longer fails and delete it.
            phases = tuple(Phase) if round_no == 0 else tuple(set(Phase) - {Phase.reuse})
            config = settings(
                hypothesis_settings(chunk, database=db, phases=phases),
                report_multiple_bugs=False,
            )
        with shrinking_deadline(None if shrink_until is None else shrink_until - time.monotonic()):
            result = fuzz_target(
                target,
                max_examples=chunk,
                seed=None if seed is None else seed + round_no,
                properties=remaining,
                report_dir=report_dir,
                database=db,
                hyp_settings=config,
                stop_at=until,
                example_timeout=example_timeout,
                on_example=on_example,
                on_finding=finding,
                reported=tuple(failed),
            )
        round_no += 1
        results.append(result)
        for failure in result.failures:
            if on_failure is not None:
                on_failure(failure.to_json())
            if failure.property in remaining:
                remaining.remove(failure.property)
                failed.append(failure.property)
        exhausted = not result.failures and result.examples < chunk
        if until is None or result.error is not None or (exhausted and time.monotonic() < until):
            break
    return merge_results(target, results)


def merge_results(target, results: list):
    """One `TargetResult` from the rounds of one target."""
    from fuzzgrad.engine.records import TargetResult, verdict
    from fuzzgrad.verdict.stats import Stats

    stats = Stats()
    for r in results:
        if r.stats is not None:
            stats.merge(r.stats)
    failures = [f for r in results for f in r.failures]
    error = next((r.error for r in results if r.error is not None), None)
    return TargetResult(
        target.name,
        target.display_module,
        verdict(target, failures, error),
        stats.examples,
        sum(r.seconds for r in results),
        failures,
        error,
        target.xfail,
        stats,
    )


def dump_case(path: Path, target, case, example: int) -> None:
    """Write the example about to run (its number, inputs and cotangent recipes), so the parent
    can say what was running, and reproduce it, if this process dies."""
    from fuzzgrad.properties.checker import describe_inputs
    from fuzzgrad.report.reproducer import encode_recipes, encode_value

    data: dict[str, Any] = {
        "target": target.name,
        "example": example,
        "inputs": describe_inputs(case, target),
    }
    try:
        data["args"] = [encode_value(a) for a in case.args]
        data["requires_grad"] = list(case.requires_grad)
        data["cotangent_recipes"] = encode_recipes(case.cotangents)
    except Exception:  # noqa: BLE001 - an argument we cannot encode: keep the description only
        data.pop("args", None)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the parent dies (even by SIGKILL)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the worker instead
        pass


def worker_main(conn, beat, scratch: str, options: dict[str, Any]) -> None:
    """The worker process: import the targets, say ready, then fuzz what the parent sends."""
    import faulthandler
    import signal

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    scratch_dir = Path(scratch)
    fault = open(scratch_dir / f"fault-{os.getpid()}.txt", "w")  # noqa: SIM115 - process-long
    faulthandler.enable(file=fault)
    if options.get("max_memory"):
        import resource

        limit = int(options["max_memory"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(max(1, int(options.get("threads", 1))))
    import sys

    from fuzzgrad.registry.discovery import load_targets

    for folder in reversed(options.get("sys_path") or ()):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    targets = {t.name: t for t in load_targets(options["specs"])}
    case_file = scratch_dir / f"case-{os.getpid()}.json"
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        name = task["name"]
        beat[BEAT_EXAMPLES] = 0

        def on_example(case, name=name):
            beat[BEAT_EXAMPLES] += 1
            dump_case(case_file, targets[name], case, int(beat[BEAT_EXAMPLES]))
            beat[BEAT_STARTED] = time.monotonic()

        result = fuzz_for(
            targets[name],
            until=task["until"],
            shrink_until=task["shrink_until"],
            chunk=task["chunk"],
            seed=task["seed"],
            properties=options["properties"],
            report_dir=Path(options["report_dir"]),
            database=options["database"],
            example_timeout=options["example_timeout"],
            on_example=on_example,
            on_finding=lambda prop, info, name=name: conn.send(("finding", name, prop, info)),
            on_failure=lambda record, name=name: conn.send(("failure", name, record)),
        )
        beat[BEAT_STARTED] = 0.0
        conn.send(("done", name, result.to_json()))
