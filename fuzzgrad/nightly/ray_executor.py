"""``fuzzgrad fuzz --executor ray``: a nightly run on a Ray cluster (or a local one it starts).

The driver (this process) cuts the work into units, one target's slice of the budget from one
seed stream (`fuzzgrad.nightly.units`), and submits each as a Ray task (`ray_task.run_unit`) as
soon as a task slot is free, so the cluster never idles while a target has work, and a target
may be fuzzed by many workers at once, each from its own seed stream, sharing one example
database. Tasks that need a GPU (a target not registered CPU-only, on a cluster that has GPUs)
ask Ray for ``--gpus-per-task`` GPUs (fractions share one), which pins each to its devices;
the others ask for ``--cpus-per-task`` CPUs. GPU and CPU targets share out their own slots.

Each task fuzzes in a worker process of its own (containment as in the local pool) and puts what
it finds on a Ray queue as it happens; the driver is the report's only writer (the same
`Recorder`, so ``events.jsonl`` has every finding once the driver has seen it, and a killed
driver loses nothing it had logged). A unit whose worker died is recorded by the driver from the
facts the task sends back, with a reproducer of the running example. Ray never re-runs a task
(``max_retries=0``): the driver decides, as the local pool does, whether a target that crashed
resumes from its next round, until it has died ``--max-crashes`` times at one place.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from fuzzgrad.errors import FuzzgradError
from fuzzgrad.nightly.crash import facts_error, lost_record, stopped
from fuzzgrad.nightly.database import with_local_folder
from fuzzgrad.nightly.plan import Plan
from fuzzgrad.nightly.pool import GRACE, OVERRUN, STARTUP_FAILURES, Stop, stoppable
from fuzzgrad.nightly.units import STREAM_ROUNDS, Unit, UnitSchedule

#: Seconds past the budget's end (and a worker's allowed overrun) after which a unit still out
#: (a task Ray could not place, a node that stopped answering) is cancelled.
LATE = 30.0
#: Seconds between two reads of the run's queue while no unit ends: a finding reaches the event
#: log within this. Each read is a call to the queue's actor; reading every 0.05s cost the
#: driver a fifth of a core on a 2-core machine, taken from the workers.
POLL = 0.2
#: Seconds between reads of the cluster's size (an autoscaler may add or remove nodes).
RESIZE_EVERY = 10.0

RAY_MISSING = (
    '--executor ray needs Ray, which is not installed: pip install -e ".[ray]" (or pip install ray)'
)


def ray_problem() -> str | None:
    """Why ``--executor ray`` cannot run here (Ray is not installed), or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return RAY_MISSING
    return None


@dataclass
class Options:
    """How the run uses the cluster."""

    address: str | None = None  # None: start a local cluster for the run
    cpus_per_task: float = 1.0
    gpus_per_task: float = 1.0
    jobs: int | None = None  # at most this many units at once (None: what the cluster holds)
    #: What a task runs (tests and benchmarks swap in a fake target's).
    task: Any = None


def run(plan: Plan, recorder, options: Options, *, owned: bool | None = None) -> None:
    """Fuzz every target of ``plan`` on the Ray cluster; ``recorder`` receives events.
    ``owned``: this run started the cluster (it stops it); None: connect now (see `connect`)."""
    import ray

    if owned is None:
        owned = connect(options)
    driver = _Driver(plan, recorder, options)
    try:
        with stoppable():
            driver.loop()
    except KeyboardInterrupt as stop:  # Stop (a signal), or Ctrl-C where no handler was ours
        driver.stop()  # before the records are closed: nothing more arrives
        recorder.interrupted(str(stop) if isinstance(stop, Stop) and str(stop) else "SIGINT")
    finally:
        driver.close()
        if owned:
            ray.shutdown()


def connect(options: Options) -> bool:
    """Connect to the cluster at ``options.address``, or start a local one (True: this run
    started it, and stops it). A cluster out of reach is a `FuzzgradError` that says what to
    do, raised at once (Ray alone retries for minutes before it gives up)."""
    import logging

    import ray

    if options.address:
        _check_reachable(options.address)
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if options.address:
        try:
            ray.init(address=options.address, **quiet)
        except Exception as exc:  # noqa: BLE001 - whatever Ray says, the fix is the same
            raise _unreachable(options.address, exc) from None
        return False
    cpus = None if options.jobs is None else options.jobs * options.cpus_per_task
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
    return True


def _check_reachable(address: str) -> None:
    """Raise unless something answers at a ``host:port`` or ``ray://host:port`` address (others,
    such as ``auto``, are left to Ray)."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or "://" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise _unreachable(address, exc) from None


def _unreachable(address: str, exc: BaseException) -> FuzzgradError:
    return FuzzgradError(
        f"fuzzgrad: cannot connect to a Ray cluster at --ray-address {address} ({_short(exc)}); "
        "start one there (ray start --head), or leave --ray-address out to start one on this "
        "machine for the run"
    )


@dataclass
class _Pool:
    """The units of the targets that share one kind of task slot (GPU, or CPU only)."""

    schedule: UnitSchedule
    resources: dict[str, float]
    out: int = 0  # units submitted and not yet back
    kind: str = "cpu"


@dataclass
class _Out:
    pool: _Pool
    unit: Unit
    submitted: float
    deadline: float | None


class _Driver:
    def __init__(self, plan: Plan, recorder, options: Options):
        import ray
        from ray.util.queue import Queue

        from fuzzgrad.nightly.ray_task import run_unit

        self.ray, self.plan, self.recorder, self.options = ray, plan, recorder, options
        self.targets = {t.name: t for t in plan.targets}
        self.sink = Queue(actor_options={"num_cpus": 0})
        self.remote = ray.remote(options.task or run_unit)
        self.out: dict[Any, _Out] = {}
        self.units: dict[int, str] = {}
        #: Per target: seeded rounds used by each stream, properties found failing.
        self.progress: dict[str, dict[str, Any]] = {
            n: {"streams": {}, "failed": set()} for n in self.targets
        }
        self.end_wall = None if plan.end is None else time.time() + plan.end - time.monotonic()
        self.startup_failures = 0
        #: Per node: the scratch folders of the Ray workers that ran units.
        self.folders: dict[str, set[str]] = {}
        self.setup = {
            "run": uuid.uuid4().hex[:8],
            "specs": plan.specs,
            "sys_path": plan.sys_path,
            "properties": plan.properties,
            "database": with_local_folder(plan.database),
            "example_timeout": plan.example_timeout,
            "max_memory": plan.max_memory,
            "threads": max(1, round(options.cpus_per_task)),
        }
        self.pools = self._pools()
        self.resized = time.monotonic()

    # -- slots ------------------------------------------------------------------------------
    def _slots(self) -> tuple[int, int]:
        """Units the cluster can run at once: (on GPUs, on CPUs only)."""
        from fuzzgrad.nightly.devices import wants_gpu

        total = self.ray.cluster_resources()
        cpt, gpt = self.options.cpus_per_task, self.options.gpus_per_task
        gpu = int(total.get("GPU", 0) / gpt + 1e-9)
        on_gpu = gpu and any(wants_gpu(t) for t in self.plan.targets)
        cpu = int(max(0.0, total.get("CPU", 0) - (gpu * cpt if on_gpu else 0)) / cpt + 1e-9)
        cap = self.options.jobs or 1 << 30
        return min(gpu, cap), max(1, min(cpu, cap))

    def _pools(self) -> list[_Pool]:
        from fuzzgrad.nightly.devices import wants_gpu

        gpu, cpu = self._slots()
        names = [t.name for t in self.plan.targets]
        on_gpu = [n for n in names if gpu and wants_gpu(self.targets[n])]
        on_cpu = [n for n in names if n not in on_gpu]
        cpt, gpt = self.options.cpus_per_task, self.options.gpus_per_task
        pools = []
        for kind, group, jobs, resources in (
            ("gpu", on_gpu, gpu, {"num_cpus": cpt, "num_gpus": gpt}),
            ("cpu", on_cpu, cpu, {"num_cpus": cpt}),
        ):
            if group:
                schedule = UnitSchedule(
                    group, end=self.plan.end, jobs=jobs, max_crashes=self.plan.max_crashes
                )
                pools.append(_Pool(schedule, resources, kind=kind))
        return pools

    def _resize(self, now: float) -> None:
        if now - self.resized < RESIZE_EVERY:
            return
        self.resized = now
        gpu, cpu = self._slots()
        for pool in self.pools:
            pool.schedule.jobs = max(1, gpu if pool.kind == "gpu" else cpu)

    # -- the loop ---------------------------------------------------------------------------
    def loop(self) -> None:
        while not all(p.schedule.finished() for p in self.pools):
            self.pump()
            refs = list(self.out)
            ready: list[Any] = []
            if refs:  # back at once when a unit ends (its slot is refilled without delay)
                ready, _ = self.ray.wait(refs, num_returns=1, timeout=POLL)
            else:
                time.sleep(POLL)
            if ready:
                self.pump()  # what the tasks put before they returned
                for ref in ready:
                    self._finish(ref)
            now = time.monotonic()
            self._cancel_late(now)
            self._resize(now)
            self._start(now)
            self.recorder.refresh()

    def pump(self) -> None:
        """Log every message the tasks have put on the queue so far."""
        waiting = self.sink.qsize()
        if waiting:
            for message in self.sink.get_nowait_batch(waiting):
                self._message(*message)

    def _message(self, unit: int, kind: str, payload: tuple, files: dict[str, str]) -> None:
        from fuzzgrad.nightly.ray_task import land

        name = self.units.get(unit)
        payload = land(payload, files, self.plan.report_dir)
        if kind == "ready":
            pid, where, state = payload
            self.folders.setdefault(where["node"], set()).add(where["folder"])
            self.recorder.log("worker_ready", pid=pid, host=where["host"], unit=unit, **state)
        elif kind == "finding" and name:
            self.recorder.finding(name, payload[1], payload[2], unit=unit)
        elif kind == "failure" and name:
            self.recorder.failure(name, payload[1], unit=unit)
        elif kind == "warning":
            self.recorder.warn(*payload)

    def _start(self, now: float) -> None:
        for pool in self.pools:
            for name, round_no in pool.schedule.drain(now):
                self._never(pool, name, round_no)
            while pool.out < pool.schedule.jobs:
                unit = pool.schedule.next(now)
                if unit is None:
                    break
                self._submit(pool, unit, now)

    def _never(self, pool: _Pool, name: str, round_no: int, *why: str) -> None:
        """A target's queued turn will never run: the target is done if none of it runs."""
        if pool.schedule.active(name):
            return
        if round_no == 1 and not self.recorder.segments.get(name):
            self.recorder.not_started(name, *why)
        else:
            self.recorder.done(name, None)

    def _submit(self, pool: _Pool, unit: Unit, now: float) -> None:
        s, name = unit.slice, unit.name
        progress = self.progress[name]
        task = {
            "unit": unit.id,
            "name": name,
            "round": s.round,
            "stream": unit.stream,
            "seed": self.plan.seed,
            "first_round": unit.stream * STREAM_ROUNDS + progress["streams"].get(unit.stream, 0),
            "replay": s.round == 1,  # only a target's first unit replays the database
            "skip": sorted(progress["failed"]),
            "chunk": self.plan.max_examples,
            "seconds": s.seconds,
            "until_in": None if s.until is None else s.until - now,
            "shrink_in": None if s.shrink_until is None else s.shrink_until - now,
            "end_wall": self.end_wall,
            "left": None if self.plan.end is None else self.plan.end - now,
        }
        self.recorder.started(name, task, unit=unit.id)
        self.units[unit.id] = name
        ref = self.remote.options(
            **pool.resources, max_retries=0, name=f"fuzzgrad {name} #{unit.id}"
        ).remote(self.setup, task, self.sink)
        deadline = None
        if self.plan.end is not None:
            deadline = self.plan.end + OVERRUN + GRACE + LATE
        self.out[ref] = _Out(pool, unit, now, deadline)
        pool.out += 1

    def _cancel_late(self, now: float) -> None:
        for ref, out in self.out.items():
            if out.deadline is not None and now > out.deadline:
                out.deadline = None  # once
                self.ray.cancel(ref, force=True)

    # -- a unit is back ---------------------------------------------------------------------
    def _finish(self, ref) -> None:
        out = self.out.pop(ref)
        out.pool.out -= 1
        unit, schedule = out.unit, out.pool.schedule
        from ray.exceptions import RayError

        try:
            result = self.ray.get(ref)
        except RayError as exc:
            result = {"kind": "ray", "exception": exc}
        now = time.monotonic()
        kind, name = result["kind"], unit.name
        if kind == "startup":
            self._startup_failed(out.pool, unit, result)
            return
        self.startup_failures = 0
        record = None
        if kind == "late":
            final = schedule.done(unit.id, now, more=False)
        elif kind == "done":
            from fuzzgrad.nightly.ray_task import land

            record = land(result["record"], result["files"], self.plan.report_dir)
            self._advance(name, unit.stream, record, result["rounds"])
            final = schedule.done(unit.id, now, more=result["more"])
        else:
            record, final = self._lost(unit, schedule, result, now - out.submitted, now)
        if record is None:
            if final:
                self._never(out.pool, name, unit.slice.round)
        elif final:
            self.recorder.done(name, record, unit=unit.id)
        else:
            self.recorder.segment(name, record, unit=unit.id)

    def _lost(self, unit: Unit, schedule: UnitSchedule, result, seconds: float, now: float):
        """The record of a unit whose worker (or Ray worker) died or was killed, and whether
        its target is finished."""
        name = unit.name
        target = self.targets[name]
        failures = self.recorder.failures_of(name, unit.id)
        if result["kind"] == "lost":
            facts = result["facts"]
            error = facts_error(facts, self.plan, target, result["shrinking"])
            record = lost_record(target, error, result["examples"], result["seconds"], failures)
            self._advance(name, unit.stream, record, result["rounds"])
            if error is None or facts.get("killed_for") == "slice":
                return record, schedule.done(unit.id, now, more=False)
        else:
            exc = result["exception"]
            error = {
                "kind": "crash",
                "message": f"the Ray worker running it was lost ({_short(exc)})",
                "signature": f"ray {type(exc).__name__}",
            }
            record = lost_record(target, error, 0, seconds, failures)
        final = schedule.crashed(unit.id, now, error["signature"])
        if name in schedule.closed:
            stopped(error, schedule.crashes[name][error["signature"]])
        return record, final

    def _startup_failed(self, pool: _Pool, unit: Unit, result: dict[str, Any]) -> None:
        """A worker died importing the targets: the unit goes back to the queue; after
        `STARTUP_FAILURES` in a row, the run's remaining targets end as crashes."""
        self.startup_failures += 1
        self.recorder.log(
            "worker_lost", unit=unit.id, exitcode=result.get("exitcode"),
            traceback=result.get("traceback"),
        )  # fmt: skip
        pool.schedule.retry(unit.id)
        if self.startup_failures >= STARTUP_FAILURES:
            why = "workers die while importing the targets"
            for p in self.pools:
                for name, round_no in p.schedule.cancel():
                    self._never(p, name, round_no, why, "crash")

    def _advance(self, name: str, stream: int, record: dict[str, Any], rounds: int) -> None:
        progress = self.progress[name]
        progress["streams"][stream] = progress["streams"].get(stream, 0) + int(rounds)
        progress["failed"].update(f.get("property") for f in record.get("failures") or [])

    # -- the end ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel the units out (their Ray workers, and the fuzzgrad workers under them, are
        killed), after logging what they found."""
        for ref in list(self.out):
            self.ray.cancel(ref, force=True)
        self.pump()

    def close(self) -> None:
        """Remove the scratch folders the units left on each node, and the queue."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from fuzzgrad.nightly.ray_task import remove_folders

        remove = self.ray.remote(remove_folders)
        try:
            cleanups = [
                remove.options(
                    num_cpus=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                ).remote(sorted(folders))
                for node, folders in self.folders.items()
            ]
            self.ray.wait(cleanups, num_returns=len(cleanups), timeout=10)
            self.sink.shutdown()
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
