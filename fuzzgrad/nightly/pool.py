"""Nightly runs: a shared time budget, parallel worker processes, containment, nothing lost.

The parent process never fuzzes (unless ``isolate=False``): it hands targets to spawned workers
(`fuzzgrad.nightly.worker`), gives each target its share of the time left, watches heartbeats, kills
a worker whose example overruns, and turns a dead or killed worker into an ``error`` record of
kind ``crash`` or ``timeout`` naming the example that was running (with a reproducer rebuilt from
the worker's scratch file). Every event is appended to ``events.jsonl`` and fsync'd as it
happens; ``results.json`` is rewritten atomically after every target.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from fuzzgrad.nightly.plan import Plan
from fuzzgrad.nightly.worker import BEAT_EXAMPLES, BEAT_STARTED

#: Seconds a worker may take to import torch, JAX and the target modules.
STARTUP_LIMIT = 180.0
#: Seconds past the budget a worker may go on (shrinking, diagnosing) before it is killed.
OVERRUN = 10.0


class Stop(KeyboardInterrupt):
    """SIGTERM arrived: finish the reports and stop (a KeyboardInterrupt, so that Hypothesis and
    the runner let it through as they do Ctrl-C)."""


def start_workers(plan: Plan) -> list[_Worker]:
    """Spawn ``plan.jobs`` workers now, so that they import torch while the parent discovers
    the targets (``plan.targets`` may still be empty); `run` then uses them."""
    import multiprocessing as mp

    if not plan.isolate:
        return []
    ctx = mp.get_context("spawn")  # fork after importing torch (and its threads) is fragile
    scratch = plan.report_dir / ".work"
    scratch.mkdir(parents=True, exist_ok=True)
    return [_Worker(ctx, plan, scratch) for _ in range(plan.jobs)]


def stop_workers(workers: list[_Worker]) -> None:
    """End workers: idle ones are asked to exit, busy or starting ones are killed."""
    for worker in workers:
        if worker.ready and worker.task is None:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        else:
            worker.kill("interrupted" if worker.task else "stopped")
    deadline = time.monotonic() + 0.5  # an idle worker has nothing left to lose
    for worker in workers:
        worker.proc.join(max(0.0, deadline - time.monotonic()))
        if worker.proc.is_alive():
            worker.proc.kill()
            worker.proc.join(1)


def run(plan: Plan, recorder, workers: list[_Worker] | None = None) -> None:
    """Fuzz every target of ``plan``; ``recorder`` receives events and finished records."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise Stop

    signal.signal(signal.SIGTERM, on_term)
    try:
        if plan.isolate:
            _run_pool(plan, recorder, workers if workers is not None else start_workers(plan))
        else:
            _run_inline(plan, recorder)
    except Stop:
        recorder.interrupted("SIGTERM")
    except KeyboardInterrupt:
        recorder.interrupted("SIGINT")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _share(plan: Plan, waiting: int, now: float) -> tuple[float | None, float | None]:
    """(until, shrink_until) for a target started now, with ``waiting`` targets not started."""
    if plan.end is None:
        return None, None
    left = max(0.0, plan.end - now)
    share = left * min(1.0, plan.jobs / max(1, waiting))
    until = now + share
    return until, min(plan.end, until + max(2.0, share / 4))


def _task(plan: Plan, name: str, waiting: int) -> dict[str, Any]:
    until, shrink_until = _share(plan, waiting, time.monotonic())
    return {
        "name": name,
        "until": until,
        "shrink_until": shrink_until,
        "chunk": plan.max_examples,
        "seed": plan.seed,
    }


def _run_inline(plan: Plan, recorder) -> None:
    from fuzzgrad.nightly.worker import fuzz_for

    for i, target in enumerate(plan.targets):
        task = _task(plan, target.name, len(plan.targets) - i)
        if plan.end is not None and time.monotonic() >= plan.end:
            recorder.not_started(target.name)
            continue
        recorder.started(target.name, task)
        result = fuzz_for(
            target,
            until=task["until"],
            shrink_until=task["shrink_until"],
            chunk=task["chunk"],
            seed=task["seed"],
            properties=plan.properties,
            report_dir=plan.report_dir,
            database=plan.database,
            example_timeout=plan.example_timeout,
            on_example=lambda case, n=target.name: recorder.example(n),
            on_finding=lambda prop, info, n=target.name: recorder.finding(n, prop, info),
            on_failure=lambda record, n=target.name: recorder.failure(n, record),
        )
        recorder.done(target.name, result.to_json())


class _Worker:
    """One spawned worker process and what the parent knows about it."""

    def __init__(self, ctx, plan: Plan, scratch: Path):
        from fuzzgrad.nightly.worker import worker_main

        self.ctx, self.scratch = ctx, scratch
        self.conn, child = ctx.Pipe()
        self.beat = ctx.Array("d", 2, lock=False)
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        options = {
            "specs": plan.specs,
            "sys_path": plan.sys_path,
            "properties": plan.properties,
            "report_dir": str(plan.report_dir),
            "database": plan.database,
            "example_timeout": plan.example_timeout,
            "max_memory": plan.max_memory,
            "threads": max(1, (cpus or 1) // plan.jobs),
        }
        self.proc = ctx.Process(
            target=worker_main, args=(child, self.beat, str(scratch), options), daemon=True
        )
        with _parent_main_hidden():
            self.proc.start()
        child.close()
        self.spawned = time.monotonic()
        self.ready = False
        self.task: dict[str, Any] | None = None
        self.killed_for: str | None = None

    def kill(self, reason: str) -> None:
        self.killed_for = reason
        if self.proc.is_alive():
            self.proc.kill()

    @property
    def examples(self) -> int:
        return int(self.beat[BEAT_EXAMPLES]) if self.task else 0


@contextlib.contextmanager
def _parent_main_hidden():
    """Keep spawn from re-running the parent's ``__main__`` in a worker: workers need none of
    it, a script without a ``__name__`` guard would recurse, and ``python -`` has no file."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _run_pool(plan: Plan, recorder, workers: list[_Worker]) -> None:
    from multiprocessing.connection import wait

    ctx, scratch = workers[0].ctx, workers[0].scratch
    pending = deque(t.name for t in plan.targets)
    recorder.workers = workers
    startup_failures = 0
    try:
        while pending or any(w.task for w in workers):
            for w in wait([w.conn for w in workers], timeout=0.2):
                worker = next(x for x in workers if x.conn is w)
                try:
                    _handle(worker, worker.conn.recv(), recorder)
                except (EOFError, OSError):
                    worker.proc.join(5)
                    if worker.task is None:
                        startup_failures += 1
                    _lost(worker, plan, scratch, recorder)
                    worker.conn.close()
                    workers.remove(worker)
                    if pending and startup_failures < 3:
                        workers.append(_Worker(ctx, plan, scratch))
            now = time.monotonic()
            for worker in workers:
                starting = worker.task is None and not worker.ready
                if starting and now - worker.spawned > STARTUP_LIMIT:
                    worker.kill("startup")
                elif worker.task is not None:
                    started = worker.beat[BEAT_STARTED]
                    if started and now - started > plan.hard_limit():
                        worker.kill("timeout")
                    elif plan.end is not None and now > plan.end + OVERRUN:
                        worker.kill("budget")
            if plan.end is not None and now >= plan.end:
                while pending:
                    recorder.not_started(pending.popleft())
            if startup_failures >= 3 or not workers:
                while pending:
                    recorder.not_started(
                        pending.popleft(), "workers die while importing the targets", "crash"
                    )
            for worker in workers:
                if worker.ready and worker.task is None and pending:
                    worker.task = _task(plan, pending.popleft(), len(pending) + 1)
                    worker.task["since"] = now
                    recorder.started(worker.task["name"], worker.task)
                    worker.conn.send(worker.task)
            recorder.refresh()
    finally:
        stop_workers(workers)
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)  # crash traces are in the records by now


def _handle(worker: _Worker, message: tuple, recorder) -> None:
    kind = message[0]
    if kind == "ready":
        worker.ready = True
        recorder.log("worker_ready", pid=message[1])
    elif kind == "finding":
        recorder.finding(*message[1:])
    elif kind == "failure":
        recorder.failure(*message[1:])
    elif kind == "done":
        worker.task = None
        recorder.done(*message[1:])


def _lost(worker: _Worker, plan: Plan, scratch: Path, recorder) -> None:
    """A worker died or was killed: turn what it was running into an error record."""
    pid = worker.proc.pid
    fault = scratch / f"fault-{pid}.txt"
    trace = fault.read_text(errors="replace")[-4000:] if fault.exists() else ""
    task = worker.task
    if task is None:
        recorder.log("worker_lost", pid=pid, exitcode=worker.proc.exitcode, traceback=trace)
        return
    name = task["name"]
    code = worker.proc.exitcode
    n = int(worker.beat[BEAT_EXAMPLES])
    if worker.killed_for in ("timeout", "budget", "interrupted"):
        kind = "timeout"
        why = {
            "timeout": f"ran longer than {plan.hard_limit():g}s (hung outside Python?)",
            "budget": f"was still running {OVERRUN:g}s after the budget ended",
            "interrupted": "was running when the run was stopped",
        }[worker.killed_for]
        message = f"example {n} {why}; its worker was killed"
    else:
        kind = "crash"
        signame = signal.Signals(-code).name if code and code < 0 else f"exit status {code}"
        message = f"the worker process died ({signame}) while running example {n}"
    error: dict[str, Any] = {"kind": kind, "message": message, "traceback": trace, "example": n}
    case_file = scratch / f"case-{pid}.json"
    if case_file.exists() and n:
        data = json.loads(case_file.read_text())
        if data.get("target") == name:
            error["example"] = data.get("example", n)
            error["inputs"] = data.get("inputs")
            error["reproducer"] = _rebuild_reproducer(plan, name, kind, data, message)
    record = {
        "name": name,
        "module": next((t.display_module for t in plan.targets if t.name == name), None),
        "status": "error",
        "error": error,
        "examples": n,
        "seconds": round(time.monotonic() - task["since"], 3),
        "failures": recorder.failures_of(name),
        "xfail_reason": next((t.xfail for t in plan.targets if t.name == name), None),
    }
    recorder.done(name, record)


def _rebuild_reproducer(plan: Plan, name: str, kind: str, data: dict, message: str) -> str | None:
    """A reproducer of the example a dead worker was running: its inputs and cotangent recipes
    (the cotangents themselves are made from them when the example runs)."""
    from fuzzgrad.report.reproducer import decode_recipes, decode_value, write_reproducer
    from fuzzgrad.strategies import Case

    if "args" not in data:
        return None
    target = next(t for t in plan.targets if t.name == name)
    try:
        grad = tuple(data["requires_grad"])
        case = Case(
            tuple(decode_value(a) for a in data["args"]),
            grad,
            decode_recipes(data.get("cotangent_recipes") or []),
            notes={"wrt": [i for i, g in enumerate(grad) if g]},
        )
        diagnosis = "crashes the process" if kind == "crash" else "hangs"
        path = write_reproducer(
            plan.report_dir, target, kind, case, message=message, diagnosis=diagnosis,
            example_timeout=plan.example_timeout, properties=plan.properties,
        )  # fmt: skip
        return str(path)
    except Exception:  # noqa: BLE001 - the error record matters more than its reproducer
        return None
