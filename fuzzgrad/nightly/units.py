"""Units of work for executors where one target may be fuzzed by many workers at once.

A unit is one target's slice of the budget on one worker: (target, round, seed stream). The
`UnitSchedule` hands them out by the rules of `fuzzgrad.nightly.plan.Schedule` (every target's
first slice, in order, before any second; a slice is an equal part of the worker time not yet
promised; a target that ends early gives the rest back; ``max_crashes`` deaths at one place stop
a target), and one more: once every target has a turn running and a worker is still idle, open
targets get further turns at once, least-served first, so no worker idles while a target still
has work. Two units of one target running at once draw from different seed streams.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass

from fuzzgrad.nightly.plan import MIN_SLICE, Slice, fair_share, new_slice

#: Seeded rounds of one stream: stream ``k`` of a target starts at round ``k * STREAM_ROUNDS``,
#: so units running at once never draw the same cases (stream 0 is the process executor's).
STREAM_ROUNDS = 1_000_000


@dataclass
class Unit:
    """A target's slice on one worker: its ``id``, ``slice``, and seed ``stream``."""

    id: int
    slice: Slice
    stream: int

    @property
    def name(self) -> str:
        return self.slice.name


class UnitSchedule:
    """`Schedule`'s fair slices, where a target may hold many slices at once (see the module).

    Pure bookkeeping on the instants it is handed, so tests drive it with a fake clock.
    """

    def __init__(self, names: list[str], *, end: float | None, jobs: int, max_crashes: int = 3):
        self.names = list(names)
        self.end, self.jobs, self.max_crashes = end, max(1, jobs), max(1, max_crashes)
        self.queue: deque[tuple[str, int]] = deque((n, 1) for n in names)
        self.running: dict[int, Unit] = {}
        #: Targets that get no more turns (their running units still finish).
        self.closed: set[str] = set()
        self.turns: dict[str, int] = dict.fromkeys(names, 1)  # the last round queued
        self.crashes: dict[str, Counter[str]] = {n: Counter() for n in names}
        self.granted: dict[str, float] = dict.fromkeys(names, 0.0)
        self.used: dict[str, float] = dict.fromkeys(names, 0.0)
        #: (name, round, start, seconds, stream) of every unit given, in order.
        self.log: list[tuple[str, int, float, float | None, int]] = []
        self._ids = itertools.count(1)

    def left(self, now: float) -> float:
        return float("inf") if self.end is None else self.end - now

    def active(self, name: str) -> int:
        """How many units of ``name`` are running."""
        return sum(u.name == name for u in self.running.values())

    def _share(self, now: float) -> float | None:
        # Turns of a later round count together: with more workers than targets, one target
        # may be at its fifth round while another is at its third.
        rounds = deque((n, min(r, 2)) for n, r in self.queue)
        return fair_share(
            now, self.end, self.jobs, rounds, [u.slice for u in self.running.values()]
        )

    def _refill(self, now: float) -> None:
        """A worker is idle and no turn waits: give every open target without one another
        turn, least-served first (only with a budget: without one, a target has one slice)."""
        if self.queue or self.end is None or self.end - now < MIN_SLICE:
            return
        waiting = [n for n in self.names if n not in self.closed]
        waiting.sort(key=lambda n: self.granted[n])  # stable: the run's order breaks ties
        for name in waiting:
            self._requeue(name)

    def _requeue(self, name: str) -> None:
        if name not in self.closed and all(n != name for n, _ in self.queue):
            self.turns[name] += 1
            self.queue.append((name, self.turns[name]))

    def next(self, now: float) -> Unit | None:
        """The unit for an idle worker, or None when nothing may start now."""
        if not self.queue:
            self._refill(now)
        share = self._share(now)
        if share is None:
            return None
        name, round_no = self.queue.popleft()
        s = new_slice(name, round_no, now, share, self.end)
        busy = {u.stream for u in self.running.values() if u.name == name}
        stream = next(k for k in itertools.count() if k not in busy)
        unit = Unit(next(self._ids), s, stream)
        self.running[unit.id] = unit
        self.granted[name] += s.seconds or 0.0
        self.log.append((name, round_no, now, s.seconds, stream))
        return unit

    def _end(self, unit_id: int, now: float) -> Unit:
        unit = self.running.pop(unit_id)
        self.used[unit.name] += now - unit.slice.started
        return unit

    def retry(self, unit_id: int) -> None:
        """A unit never ran (its worker died starting): its turn goes back to the head of the
        queue, and its time is not counted."""
        unit = self.running.pop(unit_id)
        self.granted[unit.name] -= unit.slice.seconds or 0.0
        if unit.name not in self.closed:
            self.queue.appendleft((unit.name, unit.slice.round))

    def close(self, name: str) -> bool:
        """No more turns for ``name``; True when none of its units runs (it is finished)."""
        self.closed.add(name)
        self.queue = deque(t for t in self.queue if t[0] != name)
        return self.active(name) == 0

    def done(self, unit_id: int, now: float, *, more: bool) -> bool:
        """A unit ended as planned; ``more``: its target had work left when its time ran out.
        True when the target is finished (no turn left, no unit running)."""
        name = self._end(unit_id, now).name
        if more and self.end is not None and self.end - now >= MIN_SLICE:
            self._requeue(name)
            return name in self.closed and self.active(name) == 0
        return self.close(name)

    def crashed(self, unit_id: int, now: float, signature: str) -> bool:
        """A unit's worker died (or was killed). The target resumes in a later turn unless
        there is no budget, or it died ``max_crashes`` times at this signature. True when the
        target is finished."""
        name = self._end(unit_id, now).name
        self.crashes[name][signature] += 1
        if self.end is None or self.crashes[name][signature] >= self.max_crashes:
            return self.close(name)
        if self.end - now <= 0:
            return self.close(name)
        self._requeue(name)
        return name in self.closed and self.active(name) == 0

    def drain(self, now: float) -> list[tuple[str, int]]:
        """Queued turns that will never start, removed (their targets closed): all of them once
        the budget is spent, or when no unit is running and none can start. Round 1 means the
        target never started."""
        if not self.queue or (
            self.left(now) > 0 and (self.running or self._share(now) is not None)
        ):
            return []
        return self.cancel()

    def cancel(self) -> list[tuple[str, int]]:
        """Every queued turn, removed, and its target closed (no worker will run them)."""
        out = list(self.queue)
        for name, _ in out:
            self.close(name)
        return out

    def finished(self) -> bool:
        return not self.queue and not self.running
