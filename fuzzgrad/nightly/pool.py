"""Nightly runs: a shared time budget, parallel worker processes, containment, nothing lost.

The parent process never fuzzes (unless ``isolate=False``): it hands targets to workers forked
from a fork server (`fuzzgrad.nightly.worker`), gives each target its slice of the time left
(`fuzzgrad.nightly.plan.Schedule`), watches heartbeats, kills a worker (with every process it
started: each worker leads its own process group) whose example overruns, and turns a dead or
killed worker into an ``error`` of kind ``crash`` or ``timeout`` naming the example that was
running, with a reproducer rebuilt from the worker's scratch file. A crashed target resumes
in a fresh worker once every other target has had its turn, until it crashes ``max_crashes``
times at the same place. Every event is appended to ``events.jsonl`` and fsync'd as it happens;
``results.json`` is rewritten atomically after every target.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.sharedctypes  # noqa: F401 - the heartbeats' shared memory
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fuzzgrad.nightly.crash import crash_error, fault_trace, lost_record, stopped
from fuzzgrad.nightly.plan import Plan, Schedule, Slice
from fuzzgrad.nightly.worker import BEAT_EXAMPLES, BEAT_ROUND, BEAT_SLOTS, BEAT_STARTED

#: Seconds a worker may take to import the target modules (torch and JAX: the fork server's).
STARTUP_LIMIT = 180.0
#: Seconds past the budget a worker may go on (diagnosing, writing a reproducer) before it is
#: killed; what it found is kept either way.
OVERRUN = 1.0
#: Seconds past its slice a worker may go on, at least (or a tenth of the slice), before it is
#: killed as hung.
GRACE = 2.0
#: A worker that failed to start this many times in a row ends the run's remaining targets.
STARTUP_FAILURES = 3


class Stop(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived: finish the reports and stop (a KeyboardInterrupt, so that
    Hypothesis and the runner let it through as they do Ctrl-C). ``str(stop)`` is the signal's
    name."""


#: The name of the signal that asked the run to stop (None: none did). Kept apart from the
#: exception, which a callback may swallow: JAX's ``_xla_gc_callback`` runs inside the garbage
#: collector, where a raised KeyboardInterrupt is printed as "Exception ignored" and dropped.
_requested: list[str] = []


def stop_requested() -> str | None:
    """The signal that asked this process to stop, if one did."""
    return _requested[-1] if _requested else None


def reset_stop() -> None:
    """Forget a stop asked of an earlier run in this process (a new run starts)."""
    _requested.clear()


def check_stop() -> None:
    """Raise `Stop` when a signal asked to stop and its exception was swallowed on the way."""
    if _requested:
        raise Stop(_requested[-1])


def _in_gc_callback(frame) -> bool:
    """Whether the signal arrived inside a garbage collector callback (JAX installs one), where
    an exception is printed as "Exception ignored" and dropped."""
    import gc

    codes = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def stoppable(*, interrupt: bool = True) -> Iterator[None]:
    """SIGTERM (and SIGINT, Ctrl-C, with ``interrupt``) raises `Stop` inside the block and
    records it for `check_stop` (the default handlers would leave scratch files, workers and
    half-written reports behind, or a traceback)."""

    def on_signal(signum, frame):
        _requested.append(signal.Signals(signum).name)
        if not _in_gc_callback(frame):  # there it would be dropped: `check_stop` raises it
            raise Stop(_requested[-1])

    wanted = [signal.SIGTERM, signal.SIGINT] if interrupt else [signal.SIGTERM]
    try:
        previous = {s: signal.signal(s, on_signal) for s in wanted}
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def workers_for(plan: Plan) -> Iterator[list[Worker]]:
    """The run's workers (started by `run`): the fork server starts now, so that it imports
    torch and JAX while this process discovers the targets. On leaving, stop the workers (and
    whatever they started, in their process groups or escaped from them) and remove the scratch
    folder, whatever ended the block, SIGTERM included."""
    from fuzzgrad.nightly.orphans import adopting

    scratch = plan.report_dir / ".work"
    workers: list[Worker] = []
    # What a target starts in a session of its own (setsid, a double fork) is adopted by this
    # process, not init, and killed once the workers are (Linux: a child subreaper).
    with adopting():
        try:
            if plan.isolate:
                from fuzzgrad.nightly.worker import context

                scratch.mkdir(parents=True, exist_ok=True)
                context(start=True)
            yield workers
        finally:
            stop_workers(workers)
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)  # crash traces are in the records by now


def stop_workers(workers: list[Worker]) -> None:
    """End workers: idle ones are asked to exit, busy or starting ones are killed; then whatever
    any of them started is killed too."""
    for worker in workers:
        if worker.ready and worker.task is None:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        else:
            worker.kill("interrupted" if worker.task else "stopped")
    deadline = time.monotonic() + 0.5  # an idle worker has nothing left to lose
    for worker in workers:
        worker.proc.join(max(0.0, deadline - time.monotonic()))
        if worker.proc.is_alive():
            worker.kill(worker.killed_for or "stopped")
            worker.proc.join(1)
        worker.reap()


def run(plan: Plan, recorder, workers: list[Worker]) -> None:
    """Fuzz every target of ``plan``; ``recorder`` receives events and finished records."""
    try:
        with stoppable():
            if plan.isolate:
                _run_pool(plan, recorder, workers)
            else:
                _run_inline(plan, recorder)
    except KeyboardInterrupt as stop:  # Stop (a signal), or Ctrl-C where no handler was ours
        stop_workers(workers)  # before the records are closed: nothing more arrives
        recorder.interrupted(str(stop) if isinstance(stop, Stop) and str(stop) else "SIGINT")


def _task(plan: Plan, s: Slice, progress: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": s.name,
        "round": s.round,
        "until": s.until,
        "shrink_until": s.shrink_until,
        "seconds": s.seconds,
        "left": None if plan.end is None else plan.end - s.started,
        "chunk": plan.max_examples,
        "seed": plan.seed,
        "first_round": progress.get("rounds", 0),
        "replay": s.round == 1,
        "skip": sorted(progress.get("failed", ())),
    }


def _advance(progress: dict[str, Any], record: dict[str, Any] | None, rounds: int) -> None:
    """What a slice leaves for the target's next one: seeded rounds used, properties failed."""
    progress["rounds"] = progress.get("rounds", 0) + rounds
    failed = progress.setdefault("failed", set())
    failed.update(f.get("property") for f in (record or {}).get("failures") or [])


def _run_inline(plan: Plan, recorder) -> None:
    from fuzzgrad.nightly.worker import fuzz_for

    targets = {t.name: t for t in plan.targets}
    schedule = Schedule(list(targets), end=plan.end, jobs=1)
    progress: dict[str, dict[str, Any]] = {n: {} for n in targets}
    while not schedule.finished():
        check_stop()
        _drain(schedule, recorder)
        s = schedule.next(time.monotonic())
        if s is None:
            continue
        task = _task(plan, s, progress[s.name])
        recorder.started(s.name, task)

        def on_example(case, n=s.name):
            recorder.example(n)

        out = fuzz_for(
            targets[s.name],
            until=s.until,
            shrink_until=s.shrink_until,
            chunk=plan.max_examples,
            seed=plan.seed,
            properties=plan.properties,
            report_dir=plan.report_dir,
            database=plan.database,
            example_timeout=plan.example_timeout,
            skip=tuple(task["skip"]),
            first_round=task["first_round"],
            replay=task["replay"],
            on_example=on_example,
            on_finding=functools.partial(recorder.finding, s.name),
            on_failure=functools.partial(recorder.failure, s.name),
            on_warning=recorder.warn,
        )
        record = out.result.to_json()
        _advance(progress[s.name], record, out.rounds)
        _slice_over(
            recorder, s.name, record, schedule.done(s.name, time.monotonic(), more=out.more)
        )


def _slice_over(recorder, name: str, record: dict[str, Any], again: bool) -> None:
    if again:
        recorder.segment(name, record)
    else:
        recorder.done(name, record)


def _drain(schedule: Schedule, recorder, why: str | None = None, kind: str = "budget") -> None:
    """Record the queued turns that will never start."""
    turns = schedule.drain(time.monotonic()) if why is None else schedule.cancel()
    for name, round_no in turns:
        if round_no == 1:
            recorder.not_started(name, *((why, kind) if why else ()))
        else:
            recorder.done(name, None)


class Worker:
    """One worker process and what the parent knows about it."""

    def __init__(
        self, plan: Plan, scratch: Path, threads: int | None = None, device: str | None = None
    ):
        from fuzzgrad.nightly.worker import context, worker_main

        ctx = context()
        self.scratch = scratch
        self.conn, child = ctx.Pipe()
        self.beat = ctx.Array("d", BEAT_SLOTS, lock=False)
        if threads is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            threads = max(1, (cpus or os.cpu_count() or 1) // plan.jobs)
        options = {
            "specs": plan.specs,
            "sys_path": plan.sys_path,
            "properties": plan.properties,
            "report_dir": str(plan.report_dir),
            "database": plan.database,
            "example_timeout": plan.example_timeout,
            "max_memory": plan.max_memory,
            "threads": threads,
            "visible_devices": device,  # its CUDA_VISIBLE_DEVICES (None: the parent's)
        }
        self.proc = ctx.Process(
            target=worker_main, args=(child, self.beat, str(scratch), options), daemon=True
        )
        with _parent_main_hidden():
            self.proc.start()
        child.close()
        self.device = device
        self.spawned = time.monotonic()
        self.ready = False
        self.task: dict[str, Any] | None = None
        self.killed_for: str | None = None
        self.killed_at = self.example_started = 0.0

    def kill(self, reason: str) -> None:
        """SIGKILL the worker and its process group (what its target started)."""
        self.killed_for = reason
        self.killed_at = time.monotonic()
        self.example_started = self.beat[BEAT_STARTED]
        self._killpg()
        if self.proc.is_alive():
            self.proc.kill()

    def reap(self) -> None:
        """Once the worker has exited: kill what is left of its process group."""
        self._killpg()

    def _killpg(self) -> None:
        pid = self.proc.pid
        if pid and hasattr(os, "killpg"):
            # The worker leads its own group (setsid); before it has called setsid, there is no
            # group with its pid and this does nothing.
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    @property
    def examples(self) -> int:
        return int(self.beat[BEAT_EXAMPLES]) if self.task else 0

    def send(self, task: dict[str, Any]) -> None:
        self.task = {**task, "since": time.monotonic()}
        self.beat[BEAT_STARTED] = 0.0
        self.beat[BEAT_EXAMPLES] = 0
        self.beat[BEAT_ROUND] = task.get("first_round", 0)
        self.conn.send(task)

    def overdue(self, plan: Plan, now: float) -> str | None:
        """Why the worker must be killed now, if it must."""
        if self.task is None:
            return "startup" if not self.ready and now - self.spawned > STARTUP_LIMIT else None
        started = self.beat[BEAT_STARTED]
        if started and now - started > plan.hard_limit():
            return "timeout"
        shrink_until = self.task.get("shrink_until")
        if shrink_until is not None:
            deadline = shrink_until + max(GRACE, 0.1 * (self.task.get("seconds") or 0))
            if plan.end is not None:
                deadline = min(deadline, plan.end + OVERRUN)
            if now > deadline:
                return "slice"
        return None


@contextlib.contextmanager
def _parent_main_hidden():
    """Keep the worker from re-running the parent's ``__main__``: workers need none of it, a
    script without a ``__name__`` guard would recurse, and ``python -`` has no file."""
    main = sys.modules["__main__"]
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__
    }
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _run_pool(plan: Plan, recorder, workers: list[Worker]) -> None:
    wait = multiprocessing.connection.wait
    scratch = plan.report_dir / ".work"
    scratch.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in plan.targets]
    schedule = Schedule(names, end=plan.end, jobs=plan.jobs, max_crashes=plan.max_crashes)
    progress: dict[str, dict[str, Any]] = {n: {} for n in names}
    recorder.workers = workers
    startup_failures = 0
    while not schedule.finished():
        check_stop()
        wanted = min(plan.jobs, len(schedule.queue) + len(schedule.running))
        while startup_failures < STARTUP_FAILURES and len(workers) < wanted:
            # A replacement is forked in milliseconds, pinned to the GPUs its predecessor had.
            workers.append(Worker(plan, scratch, device=free_slot(plan.devices, workers)))
        for conn in wait([w.conn for w in workers], timeout=0.2):
            worker = next(x for x in workers if x.conn is conn)
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.proc.join(5)
                worker.reap()
                if worker.task is None:
                    startup_failures = startup_failures + 1 if not worker.ready else 0
                    recorder.log(
                        "worker_lost", pid=worker.proc.pid, exitcode=worker.proc.exitcode,
                        traceback=fault_trace(scratch, worker.proc.pid),
                    )  # fmt: skip
                else:
                    _lost(worker, plan, schedule, progress, recorder)
                worker.conn.close()
                workers.remove(worker)
                continue
            if _handle(worker, message, recorder):
                name, record, more, rounds = message[1:]
                _advance(progress[name], record, rounds)
                again = schedule.done(name, time.monotonic(), more=more)
                _slice_over(recorder, name, record, again)
        now = time.monotonic()
        for worker in workers:
            reason = worker.overdue(plan, now)
            if reason is not None and worker.killed_for is None:
                worker.kill(reason)
        if startup_failures >= STARTUP_FAILURES:
            _drain(schedule, recorder, "workers die while importing the targets", "crash")
        _drain(schedule, recorder)
        for worker in workers:
            if worker.ready and worker.task is None and worker.killed_for is None:
                s = schedule.next(now)
                if s is None:
                    break
                task = _task(plan, s, progress[s.name])
                recorder.started(s.name, task)
                worker.send(task)
        recorder.refresh()


def free_slot(slots: list[str] | None, workers: list[Worker]) -> str | None:
    """A ``--devices`` slot (a ``CUDA_VISIBLE_DEVICES`` value) no live worker holds."""
    if not slots:
        return None
    left = list(slots)
    for worker in workers:
        if worker.device in left:
            left.remove(worker.device)
    return left[0] if left else None


def _handle(worker: Worker, message: tuple, recorder) -> bool:
    """Pass a worker's message on; True when it says its slice is done."""
    kind = message[0]
    if kind == "ready":
        worker.ready = True
        recorder.log("worker_ready", pid=message[1], **message[2])
    elif kind == "finding":
        recorder.finding(*message[1:])
    elif kind == "failure":
        recorder.failure(*message[1:])
    elif kind == "warning":
        recorder.warn(*message[1:])
    elif kind == "done":
        worker.task = None
        return True
    return False


def _lost(worker: Worker, plan: Plan, schedule: Schedule, progress, recorder) -> None:
    """A worker died or was killed during a slice: record what it was running, and let the
    schedule decide whether the target resumes in a fresh worker."""
    task = worker.task
    assert task is not None
    name = task["name"]
    target = next(t for t in plan.targets if t.name == name)
    now = time.monotonic()
    error = crash_error(worker, plan, target, recorder.has_unshrunk(name))
    record = lost_record(
        target, error, worker.examples, now - task["since"], recorder.failures_of(name)
    )
    # The round that was running is not run again (with a seed, it would crash the same way).
    _advance(progress[name], record, int(worker.beat[BEAT_ROUND]) + 1 - task["first_round"])
    if error is None or worker.killed_for == "slice":
        again = schedule.done(name, now, more=False)
    else:
        again = schedule.crashed(name, now, error["signature"])
        if not again:
            stopped(error, schedule.crashes[name][error["signature"]])
    _slice_over(recorder, name, record, again)
