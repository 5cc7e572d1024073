"""What one Ray task of ``fuzzgrad fuzz --executor ray`` runs: a unit of work (one target's slice
of the budget, from one seed stream) in a fuzzgrad worker process.

A Ray worker process that runs units starts a fork server once (torch and JAX imported) and keeps
one worker forked from it, the local pool's `fuzzgrad.nightly.pool.Worker`, which runs
`fuzzgrad.nightly.worker.fuzz_for`. So a target that segfaults, is OOM-killed or hangs takes down
only that worker: the task sees it die (or kills it once its example overruns), and returns what
it knows (`fuzzgrad.nightly.crash.worker_facts`: the example that was running, the trace) for the
driver to turn into the same ``crash`` / ``timeout`` error, and reproducer, as the local pool's.
The next unit forks a fresh worker in milliseconds.

Everything a unit finds is put on the run's queue as it happens, so the driver logs it at once;
reproducer files travel with the messages, as the driver may run on another machine. Times cross
machines as durations and wall-clock instants, never as one machine's monotonic clock.
"""

from __future__ import annotations

import atexit
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: One per run, in each Ray worker process that ran a unit of it.
_HOSTS: dict[str, _Host] = {}


def run_unit(setup: dict[str, Any], task: dict[str, Any], sink) -> dict[str, Any]:
    """Run the unit ``task`` (see `fuzzgrad.nightly.ray_executor`) of the run ``setup``,
    putting ``(unit, kind, payload, files)`` messages on ``sink`` as they happen; return how
    it ended: ``done`` (with its record), ``lost`` (its worker died or was killed: the facts),
    ``startup`` (the worker died importing the targets) or ``late`` (the budget was spent before
    it started)."""
    host = _HOSTS.get(setup["run"])
    if host is None:
        for earlier in list(_HOSTS):  # a driver that ran an earlier run in this Ray job
            _HOSTS.pop(earlier).close()
        host = _HOSTS[setup["run"]] = _Host(setup)
    relay = Relay(sink.put, task["unit"], host.folder)
    return host.run(task, relay, _assigned_gpus())


def _assigned_gpus() -> str | None:
    """The GPUs Ray gave this task, as ``CUDA_VISIBLE_DEVICES`` lists them (None: none)."""
    import ray

    ids = ray.get_runtime_context().get_accelerator_ids().get("GPU") or []
    return ",".join(str(i) for i in ids) or None


def _node() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def remove_folders(folders: list[str]) -> None:
    """Remove a finished run's scratch folders on this node (a Ray worker may be killed
    without running its exit handlers)."""
    for folder in folders:
        if Path(folder).name.startswith("fuzzgrad-"):
            shutil.rmtree(folder, ignore_errors=True)


class Relay:
    """Puts one unit's messages on the run's queue, with the reproducer files they name."""

    def __init__(self, put: Callable[[Any], Any], unit: int, root: Path):
        self.put, self.unit, self.root = put, unit, root

    def __call__(self, kind: str, *payload: Any) -> None:
        self.put((self.unit, kind, payload, collect(payload, self.root)))


def collect(obj: Any, root: Path) -> dict[str, str]:
    """The text of every reproducer ``obj`` names (a ``reproducer`` key, at any depth) that lies
    under ``root``, by file name."""
    files: dict[str, str] = {}

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for key, value in x.items():
                if key == "reproducer" and isinstance(value, str):
                    path = Path(value)
                    if path.is_file() and path.resolve().is_relative_to(root.resolve()):
                        files[path.name] = path.read_text(encoding="utf-8")
                else:
                    walk(value)
        elif isinstance(x, (list, tuple)):
            for value in x:
                walk(value)

    walk(obj)
    return files


def land(obj: Any, files: dict[str, str], report_dir: Path) -> Any:
    """Write ``files`` (from `collect`) into ``report_dir`` and point every ``reproducer`` of
    ``obj`` that names one of them there, in place; return ``obj``."""
    for name, text in files.items():
        path = report_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)

    def walk(x: Any) -> None:
        items = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
        for key, value in list(items):
            if key == "reproducer" and isinstance(value, str) and Path(value).name in files:
                x[key] = str(report_dir / Path(value).name)
            elif isinstance(value, (dict, list, tuple)):
                walk(value)

    if isinstance(obj, tuple):
        for value in obj:
            walk(value)
    else:
        walk(obj)
    return obj


class _Host:
    """A run's state in one Ray worker process: a scratch folder (the worker's report folder:
    reproducers are sent on from there) and the worker process."""

    def __init__(self, setup: dict[str, Any]):
        from fuzzgrad.nightly.plan import Plan
        from fuzzgrad.nightly.worker import context

        self.folder = Path(tempfile.mkdtemp(prefix=f"fuzzgrad-{setup['run']}-"))
        self.scratch = self.folder / ".work"
        self.scratch.mkdir()
        self.plan = Plan(
            specs=setup["specs"],
            targets=[],
            report_dir=self.folder,
            properties=setup["properties"],
            database=setup["database"],
            example_timeout=setup["example_timeout"],
            max_memory=setup["max_memory"],
            sys_path=setup["sys_path"],
        )
        self.threads = int(setup["threads"])
        self.worker: Any = None  # a pool Worker, started on first use
        context(start=True)  # the fork server imports torch and JAX once per Ray worker
        atexit.register(self.close)

    def close(self) -> None:
        from fuzzgrad.nightly.pool import stop_workers

        if self.worker is not None:
            stop_workers([self.worker])
            self.worker = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def _ready(self, device: str | None, relay: Relay) -> dict[str, Any] | None:
        """Start a worker pinned to ``device`` if none is ready; None once one is, else why
        it could not start (a ``startup`` outcome)."""
        from fuzzgrad.nightly.crash import fault_trace
        from fuzzgrad.nightly.pool import STARTUP_LIMIT, Worker, stop_workers

        worker = self.worker
        if worker is not None and (worker.device != device or not worker.proc.is_alive()):
            stop_workers([worker])
            worker = None
        if worker is None:
            worker = self.worker = Worker(self.plan, self.scratch, self.threads, device=device)
        while not worker.ready:
            left = worker.spawned + STARTUP_LIMIT - time.monotonic()
            try:
                if not worker.conn.poll(max(0.0, left)):
                    raise EOFError
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.kill("startup")
                worker.proc.join(5)
                worker.reap()
                self.worker = None
                return {
                    "kind": "startup",
                    "exitcode": worker.proc.exitcode,
                    "traceback": fault_trace(self.scratch, worker.proc.pid),
                }
            if message[0] == "ready":
                worker.ready = True
                where = {"host": platform.node(), "node": _node(), "folder": str(self.folder)}
                relay("ready", message[1], where, message[2])
        return None

    def run(self, task: dict[str, Any], relay: Relay, device: str | None) -> dict[str, Any]:
        end_wall = task.get("end_wall")
        if end_wall is not None and time.time() >= end_wall:
            return {"kind": "late"}
        failed = self._ready(device, relay)
        if failed is not None:
            return failed
        worker = self.worker
        assert worker is not None
        now = time.monotonic()
        end = None if end_wall is None else now + end_wall - time.time()
        if end is not None and end <= now:
            return {"kind": "late"}
        # The worker's checks of its slice (`Worker.overdue`) read the budget's end off the plan.
        self.plan.started, self.plan.budget = now, None if end is None else end - now

        def instant(seconds: float | None) -> float | None:
            return None if seconds is None else min(now + seconds, end or float("inf"))

        worker.send(
            {
                "name": task["name"],
                "round": task["round"],
                "until": instant(task["until_in"]),
                "shrink_until": instant(task["shrink_in"]),
                "seconds": task["seconds"],
                "left": None if end is None else end - now,
                "chunk": task["chunk"],
                "seed": task["seed"],
                "first_round": task["first_round"],
                "replay": task["replay"],
                "skip": task["skip"],
            }
        )
        return self._watch(worker, relay)

    def _watch(self, worker, relay: Relay) -> dict[str, Any]:
        """Pass the worker's messages on until its slice is done, or it dies (killed once it
        overruns)."""
        from fuzzgrad.nightly.worker import BEAT_ROUND

        found: list[dict[str, Any]] = []  # (shrunk) failures and findings of this unit
        while True:
            try:
                message = worker.conn.recv() if worker.conn.poll(0.1) else None
            except (EOFError, OSError):
                break
            if message is not None:
                kind = message[0]
                if kind == "done":
                    worker.task = None
                    _, _, record, more, rounds = message
                    return {"kind": "done", "record": record, "more": more, "rounds": rounds,
                            "files": collect(record, self.folder)}  # fmt: skip
                if kind in ("finding", "failure"):
                    found.append({"kind": kind, "property": _property(message)})
                    relay(kind, *message[1:])
                elif kind == "warning":
                    relay(kind, *message[1:])
            reason = worker.overdue(self.plan, time.monotonic())
            if reason is not None and worker.killed_for is None:
                worker.kill(reason)
        return self._lost(worker, found, int(worker.beat[BEAT_ROUND]))

    def _lost(self, worker, found: list[dict[str, Any]], round_now: int) -> dict[str, Any]:
        from fuzzgrad.nightly.crash import worker_facts

        worker.proc.join(5)
        worker.reap()
        facts = worker_facts(worker)
        task = worker.task or {}
        shrunk = {f["property"] for f in found if f["kind"] == "failure"}
        self.worker = None
        for stale in self.scratch.glob(f"*-{worker.proc.pid}.*"):
            stale.unlink(missing_ok=True)
        return {
            "kind": "lost",
            "facts": facts,
            "shrinking": any(f["property"] not in shrunk for f in found),
            "examples": facts["examples"],
            "seconds": time.monotonic() - task.get("since", time.monotonic()),
            # The round that was running is not run again (with a seed, it would crash the
            # same way).
            "rounds": round_now + 1 - int(task.get("first_round") or 0),
        }


def _property(message: tuple) -> str | None:
    """The property a worker's ``finding`` or ``failure`` message is about."""
    if message[0] == "finding":
        return message[2]
    return (message[2] or {}).get("property")
