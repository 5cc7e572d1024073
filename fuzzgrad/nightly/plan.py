"""What a run is asked to do, fixed before it starts: `Plan`, and the option parsing behind it."""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Seconds: a slice after a target's first (a resumption, a second round) is not started when
#: it would be shorter than this; a first slice always is, however short.
MIN_SLICE = 1.0


@dataclass
class Plan:
    """Everything a run needs to know, fixed before it starts."""

    specs: list[str]  # what to import, resolved by the parent: workers import the same
    targets: list[Any]
    report_dir: Path
    max_examples: int = 200
    seed: int | None = None
    properties: list[str] | None = None
    database: str | None = None
    budget: float | None = None
    jobs: int = 1
    isolate: bool = True
    example_timeout: float | None = 30.0
    max_memory: int | None = None
    #: A target whose worker died this many times at the same signature stops.
    max_crashes: int = 3
    started: float = field(default_factory=time.monotonic)
    #: Folders the parent put on sys.path to find the specs (module names); workers add them too.
    sys_path: list[str] = field(default_factory=list)
    #: ``CUDA_VISIBLE_DEVICES`` of each local worker (``--devices``); None: not pinned.
    devices: list[str] | None = None

    @property
    def end(self) -> float | None:
        return None if self.budget is None else self.started + self.budget

    def hard_limit(self) -> float:
        """How long one example may run before the parent kills its worker (no limit without
        an example timeout; a budgeted run still kills it when the target's slice ends)."""
        return float("inf") if self.example_timeout is None else 2 * self.example_timeout + 3.0


#: Seconds: an example cut short by the end of its slice after running less than this (and
#: less than ``--example-timeout``) is never called hung, however short the slice.
HANG_FLOOR = 5.0


def hung(ran: float, example_timeout: float | None, slice_seconds: float | None) -> bool:
    """Whether an example still running when its target's slice ended counts as a hang (a
    ``timeout`` error): it ran for ``--example-timeout``, or for half the slice and at least
    `HANG_FLOOR`. A shorter one was merely cut short by the end of the slice (a slow example
    that started late, a first example on a loaded machine), no fault of the target's."""
    limit = float("inf") if example_timeout is None else example_timeout
    if slice_seconds is not None:
        limit = min(limit, max(HANG_FLOOR, slice_seconds / 2))
    return ran >= limit


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1h30m`` or plain seconds, as seconds."""
    import re

    number = r"(\d+(?:\.\d+)?)"
    parts = re.fullmatch(rf"\s*(?:{number}h)?\s*(?:{number}m)?\s*(?:{number}s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h)")
    h, m, s = (float(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def parse_options(args) -> dict[str, Any]:
    """Parse the nightly options; a ValueError says what is wrong."""
    out: dict[str, Any] = {"budget": None, "shard": None, "max_memory": None}
    out["max_crashes"] = getattr(args, "max_crashes", 3)
    if out["max_crashes"] < 1:
        raise ValueError(f"--max-crashes takes a number >= 1, not {out['max_crashes']}")
    examples = getattr(args, "max_examples", 1)
    if examples < 1:
        raise ValueError(f"--max-examples takes a number >= 1, not {examples}")
    if args.budget is not None:
        out["budget"] = parse_duration(args.budget)
    timeout = parse_duration(args.example_timeout)
    out["example_timeout"] = timeout or None
    jobs = args.jobs or "1"
    out["jobs_given"] = args.jobs is not None
    if jobs == "auto":
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        out["jobs"] = len(cpus) if cpus else (os.cpu_count() or 1)
    elif jobs.isdigit() and int(jobs) > 0:
        out["jobs"] = int(jobs)
    else:
        raise ValueError(f"--jobs takes a positive number or 'auto', not {jobs!r}")
    if args.shard is not None:
        i, _, n = args.shard.partition("/")
        if not (i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
            raise ValueError(f"--shard takes I/N with 1 <= I <= N (e.g. 2/4), not {args.shard!r}")
        out["shard"] = (int(i), int(n))
    if args.max_memory is not None:
        out["max_memory"] = parse_memory(args.max_memory)
    out.update(_executor_options(args, out))
    return out


def _executor_options(args, out: dict[str, Any]) -> dict[str, Any]:
    """``--executor``, ``--ray-address``, ``--devices``, ``--gpus-per-task``, ``--cpus-per-task``:
    where workers run and what each holds."""
    from fuzzgrad.nightly.devices import device_slots, parse_fraction, visible_gpus

    executor = getattr(args, "executor", "process")
    given = {
        "--ray-address": getattr(args, "ray_address", None),
        "--cpus-per-task": getattr(args, "cpus_per_task", None),
    }
    if executor != "ray":
        for option, value in given.items():
            if value is not None:
                raise ValueError(f"{option} goes with --executor ray")
    opts: dict[str, Any] = {"executor": executor, "ray_address": given["--ray-address"]}
    opts["cpus_per_task"] = parse_fraction(given["--cpus-per-task"] or "1", "--cpus-per-task")
    gpus = getattr(args, "gpus_per_task", None)
    opts["gpus_per_task"] = parse_fraction(gpus or "1", "--gpus-per-task")
    devices = getattr(args, "devices", None)
    opts["devices"] = None
    if devices is None:
        return opts
    if executor == "ray":
        raise ValueError("--devices is for local workers: Ray pins each task to its GPUs itself")
    if devices == "auto":
        found = visible_gpus()
    elif all(part.strip() for part in devices.split(",")):
        found = [part.strip() for part in devices.split(",")]
    else:
        raise ValueError(f"--devices takes auto or a list of GPUs like 0,1, not {devices!r}")
    slots = device_slots(found, opts["gpus_per_task"])
    if not slots:
        print(
            f"note: --devices {devices}: no GPU to pin workers to; running {out['jobs']} "
            "unpinned worker(s) (--jobs)"
        )
        return opts
    if out["jobs_given"] and out["jobs"] != len(slots):
        raise ValueError(
            f"--jobs {out['jobs']} and --devices {devices} disagree: --devices runs one worker "
            f"per GPU slot ({len(slots)}); leave out --jobs"
        )
    opts["devices"] = slots
    out["jobs"] = len(slots)
    return opts


#: The smallest ``--max-memory``: a worker needs about 2 GiB of address space to import torch
#: and JAX (VmPeak 1.9 GiB measured on CPU), so less would end every target as a crash.
MIN_MEMORY = 2 * 2**30
#: The largest address-space limit ``setrlimit`` takes (a signed 64-bit count of bytes).
MAX_MEMORY = 2**63 - 1


def parse_memory(text: str) -> int:
    """``--max-memory``: ``16G``, ``512M``, ``1.5T``, ``16GB``, ``16GiB`` or plain bytes, from
    2 GiB (what a worker needs) up; a ValueError says what is wrong."""
    import re
    from fractions import Fraction

    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:I?B)?\s*", text.upper())
    if found is None:
        raise ValueError(f"--max-memory takes a size like 16G or 512M, not {text!r}")
    size = int(Fraction(found.group(1)) * units[found.group(2)])  # exact: no float overflow
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise ValueError(
            f"--max-memory {text.strip()!r} is out of range: give at least 2G (what a worker "
            "needs to import torch and JAX) and at most 8E"
        )
    return size


def shard(targets: list[Any], index: int, count: int) -> list[Any]:
    """The targets of shard ``index`` (1-based) of ``count``: by a stable hash of the name, so a
    target stays in its shard when others are added (and keeps its cached example database)."""

    def bucket(name: str) -> int:
        return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % count

    return [t for t in targets if bucket(t.name) == index - 1]


@dataclass
class Slice:
    """A target's turn on a worker: its ``round`` (1 for its first), and the monotonic instants
    it fuzzes ``until`` and may go on shrinking to (None: no budget)."""

    name: str
    round: int
    started: float
    until: float | None
    shrink_until: float | None
    #: Its share of the budget (None: no budget); shrinking may take a little more.
    seconds: float | None = None


def fair_share(now: float, end: float | None, jobs: int, queue, running) -> float | None:
    """The length of the slice the head of ``queue`` (``(name, round)`` turns) would get now
    (inf: no budget), or None when it may not start now: an equal part of the worker time not
    yet promised to the ``running`` slices, among the turns waiting in the head's round, and at
    most the time left."""
    if not queue:
        return None
    if end is None:
        return float("inf")
    round_no = queue[0][1]
    left = end - now
    promised = sum(max(0.0, s.until - now) for s in running if s.until)
    waiting = sum(1 for _, r in queue if r == round_no)
    share = min(left, max(0.0, jobs * left - promised) / waiting)
    if left <= 0 or (round_no > 1 and share < MIN_SLICE):
        return None
    return share


def new_slice(name: str, round_no: int, now: float, share: float, end: float | None) -> Slice:
    """A slice of ``share`` seconds starting ``now`` (no bounds without a budget ``end``)."""
    until = shrink_until = seconds = None
    if end is not None:
        seconds = share
        # Shrinking what it found may take a quarter more (borrowed from later slices),
        # but never past the budget: the last slices stop generating that much earlier.
        tail = max(2.0, share / 4)
        shrink_until = min(end, now + share + tail)
        until = min(now + share, shrink_until - min(tail, share / 2))
    return Slice(name, round_no, now, until, shrink_until, seconds)


class Schedule:
    """Who runs next, and for how long: fair shares of a run's time budget among its targets.

    Every target gets its first slice, in order, before any target gets a second one (a resumption
    after its worker crashed, or more time that others gave back). A slice is an equal part of
    the worker time not yet promised, ``(jobs x time left - what running slices still hold) /
    targets waiting in that round``, and at most the time left; so a target that ends early (every
    property failed, an error, a crash) gives the rest of its slice back to those still waiting.
    A target whose worker died ``max_crashes`` times with the same signature stops. Without a
    budget each target gets one slice (one round of examples), and a crash ends it.

    Pure bookkeeping on the instants it is handed, so tests drive it with a fake clock.
    """

    def __init__(self, names: list[str], *, end: float | None, jobs: int, max_crashes: int = 3):
        self.end, self.jobs, self.max_crashes = end, max(1, jobs), max(1, max_crashes)
        self.queue: deque[tuple[str, int]] = deque((n, 1) for n in names)
        self.running: dict[str, Slice] = {}
        self.crashes: dict[str, Counter[str]] = {n: Counter() for n in names}
        #: Seconds of slices given to each target, and seconds its slices actually ran.
        self.granted: dict[str, float] = dict.fromkeys(names, 0.0)
        self.used: dict[str, float] = dict.fromkeys(names, 0.0)
        #: (name, round, start, seconds) of every slice given, in order.
        self.log: list[tuple[str, int, float, float | None]] = []

    def left(self, now: float) -> float:
        return float("inf") if self.end is None else self.end - now

    def _share(self, now: float) -> float | None:
        return fair_share(now, self.end, self.jobs, self.queue, self.running.values())

    def next(self, now: float) -> Slice | None:
        """The slice for an idle worker, or None when nothing may start now."""
        share = self._share(now)
        if share is None:
            return None
        name, round_no = self.queue.popleft()
        s = self._give(name, round_no, now, share)
        self.running[name] = s
        return s

    def _give(self, name: str, round_no: int, now: float, share: float) -> Slice:
        """A slice of ``share`` seconds for ``name``, starting now, counted as granted."""
        s = new_slice(name, round_no, now, share, self.end)
        self.granted[name] = self.granted.get(name, 0.0) + (s.seconds or 0.0)
        self.log.append((name, round_no, now, s.seconds))
        return s

    def _end_slice(self, name: str, now: float) -> Slice:
        s = self.running.pop(name)
        self.used[name] = self.used.get(name, 0.0) + (now - s.started)
        return s

    def done(self, name: str, now: float, *, more: bool) -> bool:
        """A slice ended as planned; ``more``: the target had work left when its time ran out.
        True when it is queued for another round (its record is not final yet)."""
        s = self._end_slice(name, now)
        if more and self.end is not None and self.end - now >= MIN_SLICE:
            self.queue.append((name, s.round + 1))
            return True
        return False

    def crashed(self, name: str, now: float, signature: str) -> bool:
        """The target's worker died (or was killed) during its slice. True when the target is
        queued to resume after every target waiting for an earlier round; False when it stops:
        no budget, or ``max_crashes`` deaths at this signature."""
        s = self._end_slice(name, now)
        counts = self.crashes.setdefault(name, Counter())
        counts[signature] += 1
        if self.end is None or counts[signature] >= self.max_crashes or self.end - now <= 0:
            return False
        self.queue.append((name, s.round + 1))
        return True

    def drain(self, now: float) -> list[tuple[str, int]]:
        """Queued turns that will never start, removed: all of them once the budget is spent,
        or when no slice is running and none can start (too little time left for a later
        round). Round 1 means the target never started."""
        if not self.queue or (
            self.left(now) > 0 and (self.running or self._share(now) is not None)
        ):
            return []
        out = list(self.queue)
        self.queue.clear()
        return out

    def cancel(self) -> list[tuple[str, int]]:
        """Every queued turn, removed (no worker will ever run them)."""
        out = list(self.queue)
        self.queue.clear()
        return out

    def finished(self) -> bool:
        return not self.queue and not self.running
