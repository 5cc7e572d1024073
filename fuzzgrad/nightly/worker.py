"""What runs inside a nightly worker: targets fuzzed in time-boxed rounds, with heartbeats.

A worker is a process forked from a fork server that has torch, JAX and fuzzgrad imported
already (so a worker starts, or restarts after a crash, in a few hundredths of a second rather
than seconds), and neither CUDA nor a JAX backend initialised. It starts its own session (so
that the parent can kill it with every process it started), imports the target modules, and
fuzzes the targets the parent sends it, one slice at a time. The parent watches it through a
shared heartbeat (when the current example started, how many ran, which seeded round is running)
and a scratch file holding the current example's inputs, so that when the worker hangs or dies
the parent can still say what was running and write a reproducer. `fuzz_for` is also what
``--no-isolate`` runs in the parent process itself.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Heartbeat slots (a shared array of doubles): when the current example started (monotonic),
#: examples run in the current slice, the seeded round now running.
BEAT_STARTED, BEAT_EXAMPLES, BEAT_ROUND = 0, 1, 2
BEAT_SLOTS = 3

#: What the fork server imports before it forks any worker. Importing initialises neither CUDA
#: nor a JAX backend (both happen on first use, in the worker), so forking stays safe.
PRELOAD = ["torch", "jax", "jax.numpy", "hypothesis", "fuzzgrad.engine.runner", __name__]


def context(start: bool = False):
    """The multiprocessing context workers start from: a fork server with `PRELOAD` imported
    (spawn where there is no fork server). ``start``: start the server now, without waiting
    for it, so that it imports torch and JAX while this process does something else."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # no effect once the server runs: it has them
    from fuzzgrad.nightly.plugins import in_fork_server, loads_in_fork_server

    if start or loads_in_fork_server():
        import multiprocessing.forkserver

        with in_fork_server():  # the Hypothesis plugins a run loads, it loads there
            multiprocessing.forkserver.ensure_running()
    return ctx


@dataclass
class SliceResult:
    """What fuzzing a target for one slice of the budget gave."""

    result: Any  # TargetResult
    #: Whether the target still had work when its time ran out (properties left to fail, no
    #: error, the search space not exhausted): it could use a second round.
    more: bool
    #: Seeded rounds run, counting from the slice's first.
    rounds: int


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
    derandomize: bool = False,
    skip: tuple[str, ...] = (),
    first_round: int = 0,
    replay: bool = True,
    on_example: Callable[[Any], None] | None = None,
    on_finding: Callable[[str, dict[str, Any]], None] | None = None,
    on_failure: Callable[[dict[str, Any]], None] | None = None,
    on_warning: Callable[[str, str], None] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> SliceResult:
    """Fuzz ``target`` in rounds of ``chunk`` examples until the monotonic instant ``until``; one
    round when ``until`` is None. Round ``r`` (counting from ``first_round``) uses seed
    ``seed + r``, or a fresh random one when ``seed`` is None (Hypothesis ignores the example
    database under an explicit seed), so a seeded target draws the same cases in the same order
    however its time is cut into slices.

    Each round ends early at ``until`` (unless it is shrinking a failure, which may go on to
    ``shrink_until``); one example's timeout is capped by the time left to ``shrink_until``: an
    example cut short by that cap ends the slice, as a ``timeout`` error only if it ran long
    enough to count as hung (`fuzzgrad.nightly.plan.hung`). A property keeps being checked after
    it failed in this slice: a later round's failures of a finding already reported are not new,
    and the search goes on for other findings until ``until`` (a property that failed in an
    earlier slice, ``skip``, is left out); only the first round of the first slice (``replay``)
    replays the database. A finding is written as a reproducer at once (the shrunk
    one replaces it), so a run killed while shrinking still has one.
    """
    from hypothesis import Phase, settings

    from fuzzgrad.engine.hypothesis_compat import set_shrinking_deadline, shrinking_deadline
    from fuzzgrad.engine.runner import db_key, fuzz_target, hypothesis_settings
    from fuzzgrad.nightly.database import FALLBACK_DATABASE, open_database
    from fuzzgrad.nightly.plan import hung
    from fuzzgrad.properties.checker import Checker

    remaining = [p for p in Checker(target, properties).properties if p not in skip]
    if not remaining and not skip:
        # none of the properties asked for applies: fuzz_target says so (a registration
        # error), where a loop over no property would pass the target with 0 examples
        result = fuzz_target(target, max_examples=1, properties=properties, report_dir=report_dir)
        return SliceResult(merge_results(target, [result]), False, 1)
    db = open_database(
        database, db_key(target), fallback=Path(report_dir) / FALLBACK_DATABASE, warn=on_warning
    )
    results = []
    round_no = 0
    last: list[Any] = [None]
    known: set = set()  # search keys of the findings of earlier rounds: not new, searched past
    known_kinds: set = set()  # their identities: not reported again
    reported: set = set()  # properties with a finding logged: no early reproducer again
    slice_seconds = None if shrink_until is None else shrink_until - time.monotonic()

    def example(case) -> None:
        last[0] = case
        if on_example is not None:
            on_example(case)

    def finding(prop: str, info: dict[str, Any]) -> None:
        if shrink_until is not None:
            # Shrinking starts now (one bug per round), and Hypothesis caps it with a module
            # constant read when it starts: make that cap our deadline.
            set_shrinking_deadline(shrink_until - time.monotonic())
        if prop in reported:
            return  # one early reproducer per property: its later candidates shrink as usual
        path = _early_reproducer(target, prop, last[0], info, report_dir)
        if on_finding is not None:
            on_finding(prop, {**info, "reproducer": path} if path else info)

    more = bool(remaining)
    while remaining:
        if until is not None and round_no and time.monotonic() >= until:
            break
        if on_round is not None:
            on_round(first_round + round_no)
        config = None
        if until is not None:
            # One bug per round: Hypothesis then shrinks at once instead of searching on for
            # other bugs for up to 10s, so a test that fails while `until` is past is shrinking.
            # Only the first round replays the database: a later one, with a failed property
            # left out, would find the stored failure no longer fails and delete it.
            first = round_no == 0 and replay
            phases = tuple(Phase) if first else tuple(set(Phase) - {Phase.reuse})
            config = settings(
                hypothesis_settings(chunk, database=db, phases=phases, derandomize=derandomize),
                report_multiple_bugs=False,
            )
        timeout, capped = _capped_timeout(example_timeout, shrink_until)
        with shrinking_deadline(None if shrink_until is None else shrink_until - time.monotonic()):
            result = fuzz_target(
                target,
                max_examples=chunk,
                seed=None if seed is None else seed + first_round + round_no,
                properties=remaining,
                report_dir=report_dir,
                database=db,
                derandomize=derandomize,
                hyp_settings=config,
                stop_at=until,
                example_timeout=timeout,
                on_example=example,
                on_finding=finding,
                known=frozenset(known),
                known_kinds=frozenset(known_kinds),
            )
        round_no += 1
        cut = capped and (result.error or {}).get("kind") == "timeout"
        if cut and timeout is not None and not hung(timeout, example_timeout, slice_seconds):
            _drop_cut_example(target, result)  # the slice ended mid-example: not a hang
        results.append(result)
        for failure in result.failures:
            known |= failure.search_keys
            if failure.kind:
                known_kinds.add(failure.kind)
            reported.add(failure.property)
            if on_failure is not None:
                # the receiver removes the early reproducer once the failure is logged: a run
                # killed in between still has the file its log names
                on_failure(failure.to_json())
            else:
                from fuzzgrad.report.reproducer import drop_unshrunk

                drop_unshrunk(report_dir, target.name, failure.property, failure.reproducer)
        # Fewer examples than asked, with time left: the search space is exhausted.
        exhausted = not result.failures and result.examples < chunk and not cut
        exhausted = exhausted and (until is None or time.monotonic() < until)
        more = bool(remaining) and result.error is None and not exhausted and not cut
        if until is None or cut or exhausted or result.error is not None:
            break
    return SliceResult(merge_results(target, results), more, round_no)


def _capped_timeout(timeout: float | None, shrink_until: float | None) -> tuple[float | None, bool]:
    """One example's timeout for a round starting now: ``timeout``, or less when the slice ends
    sooner (then also True)."""
    if shrink_until is None:
        return timeout, False
    left = max(0.1, shrink_until - time.monotonic())
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


def _drop_cut_example(target, result) -> None:
    """Forget the timeout of an example cut short by the end of its slice (and its reproducer)."""
    from fuzzgrad.engine.records import verdict

    path = (result.error or {}).get("reproducer")
    if path:
        Path(path).unlink(missing_ok=True)
    result.error = None
    result.status = verdict(target, result.failures, None)


def _early_reproducer(target, prop: str, case, info: dict[str, Any], report_dir) -> str | None:
    """The reproducer of a finding before it is shrunk (removed once the shrunk one is
    written and logged: see `fuzzgrad.report.reproducer.drop_unshrunk`)."""
    if case is None or report_dir is None:
        return None
    from fuzzgrad.report.reproducer import write_reproducer

    try:
        return str(
            write_reproducer(
                Path(report_dir),
                target,
                prop,
                case,
                message=str(info.get("message")),
                diagnosis="not shrunk yet (the first failing example, as found)",
                unshrunk=True,
            )
        )
    except Exception:  # noqa: BLE001 - the finding itself is what must not be lost
        return None


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
        target.xfail_properties,
    )


class CaseSlot:
    """The file where a worker writes each example before it runs (its number, inputs and
    cotangent recipes), so the parent can say what was running, and reproduce it, if the
    worker dies; read with `read_case`.

    Written in place through one open descriptor (a temporary file renamed per example, at
    zlib level 9, took about 18% of a worker's time on the built-in targets), with a CRC of the
    text on the last line: a write cut short (the worker killed in the middle of it) reads as
    no case rather than as a wrong one. Tensors are compressed fast (zlib level 1): a case is
    written for every example and read only after a death."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, target, case, example: int) -> None:
        from fuzzgrad.properties.checker import describe_inputs
        from fuzzgrad.report.reproducer import encode_recipes, encode_value

        data: dict[str, Any] = {
            "target": target.name,
            "example": example,
            "inputs": describe_inputs(case, target),
        }
        try:
            data["args"] = [encode_value(a, level=1) for a in case.args]
            data["requires_grad"] = list(case.requires_grad)
            data["cotangent_recipes"] = encode_recipes(case.cotangents)
        except Exception:  # noqa: BLE001 - an argument we cannot encode: the description only
            data.pop("args", None)
        text = json.dumps(data).encode()
        text += b"\n%08x\n" % zlib.crc32(text)
        os.pwrite(self.fd, text, 0)
        os.ftruncate(self.fd, len(text))


def read_case(path: Path) -> dict[str, Any] | None:
    """The example a `CaseSlot` holds (None: none, or a write cut short)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    text, _, crc = raw.rstrip(b"\n").rpartition(b"\n")
    try:
        if int(crc, 16) != zlib.crc32(text):
            return None
        return json.loads(text)
    except ValueError:
        return None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent (the fork server, which itself exits
    with the run) dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed pipe ends the worker instead
        pass


def _die_with_run(conn) -> None:
    """Kill this worker's process group as soon as the run's process is gone, even by SIGKILL.

    The worker's parent is the fork server, which outlives the run while any worker holds the
    server's liveness pipe (each does), so the parent-death signal alone would leave workers
    fuzzing on. The run's end of ``conn`` closes when the run dies: a thread waits for that.
    """
    import select
    import signal
    import threading

    if not hasattr(select, "POLLRDHUP"):  # not Linux: the next send or receive ends the worker
        return
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLRDHUP)

    def watch() -> None:
        while True:
            for _, events in poller.poll():
                if events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                    os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="fuzzgrad-die-with-run", daemon=True).start()


def fresh_state() -> dict[str, bool]:
    """Whether CUDA or a JAX backend was initialised before this worker forked (never should)."""
    import sys

    torch = sys.modules.get("torch")
    cuda = bool(torch is not None and torch.cuda.is_initialized())
    bridge = sys.modules.get("jax._src.xla_bridge")
    return {"cuda_initialized": cuda, "jax_backends": bool(getattr(bridge, "_backends", None))}


def worker_main(conn, beat, scratch: str, options: dict[str, Any]) -> None:
    """The worker process: import the targets, say ready, then fuzz what the parent sends."""
    import faulthandler
    import signal

    inherited = fresh_state()
    if options.get("visible_devices") is not None:
        # Pinned to its GPUs (`--devices`, or a Ray task's): before anything initialises CUDA.
        os.environ["CUDA_VISIBLE_DEVICES"] = options["visible_devices"]
    if hasattr(os, "setsid"):
        os.setsid()  # its own session and process group: killed with whatever it starts
    _die_with_parent()
    if hasattr(os, "killpg"):
        _die_with_run(conn)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
    slot = CaseSlot(scratch_dir / f"case-{os.getpid()}.json")
    conn.send(("ready", os.getpid(), inherited))
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
            slot.write(targets[name], case, int(beat[BEAT_EXAMPLES]))
            beat[BEAT_STARTED] = time.monotonic()

        def on_round(number):
            beat[BEAT_ROUND] = number

        def on_finding(prop, info, name=name):
            conn.send(("finding", name, prop, info))

        def on_failure(record, name=name):
            conn.send(("failure", name, record))

        out = fuzz_for(
            targets[name],
            until=task["until"],
            shrink_until=task["shrink_until"],
            chunk=task["chunk"],
            seed=task["seed"],
            properties=task.get("properties", options["properties"]),
            report_dir=Path(options["report_dir"]),
            database=options["database"],
            example_timeout=options["example_timeout"],
            derandomize=bool(task.get("derandomize")),
            skip=tuple(task.get("skip") or ()),
            first_round=int(task.get("first_round") or 0),
            replay=bool(task.get("replay", True)),
            on_example=on_example,
            on_finding=on_finding,
            on_failure=on_failure,
            on_warning=lambda key, text: conn.send(("warning", key, text)),
            on_round=on_round,
        )
        beat[BEAT_STARTED] = 0.0
        conn.send(("done", name, out.result.to_json(), out.more, out.rounds))
