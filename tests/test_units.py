"""Units of work for the Ray executor (`UnitSchedule`), on a simulated clock: fair slices as the
local pool's, and no idle worker while a target has work (a target then runs in several units
at once, from distinct seed streams)."""

from __future__ import annotations

import heapq

from test_schedule import crasher, early, good, hanger, simulate

from fuzzgrad.nightly.plan import MIN_SLICE
from fuzzgrad.nightly.units import STREAM_ROUNDS, UnitSchedule


def play(behaviours: dict, *, budget: float | None, jobs: int, max_crashes: int = 3):
    """Play a run on a `UnitSchedule`: workers take the next unit as soon as they are free.
    Returns (schedule, busy worker-seconds, finished targets in order, promised-time checks)."""
    schedule = UnitSchedule(list(behaviours), end=budget, jobs=jobs, max_crashes=max_crashes)
    ending: list[tuple[float, int, str, tuple]] = []  # (when, unit, target, outcome)
    free, now, busy = jobs, 0.0, 0.0
    finished: list[str] = []
    overcommitted = []
    while not schedule.finished():
        for name, _ in schedule.drain(now):
            if not schedule.active(name):
                finished.append(name)
        while free:
            unit = schedule.next(now)
            if unit is None:
                break
            free -= 1
            left = float("inf") if budget is None else budget - now
            promised = sum(
                max(0.0, u.slice.until - now) for u in schedule.running.values() if u.slice.until
            )
            if promised > jobs * left + 1e-9:
                overcommitted.append((now, promised))
            took, outcome = behaviours[unit.name](unit.slice)
            heapq.heappush(ending, (now + took, unit.id, unit.name, outcome))
        if not ending:
            break
        when, unit_id, name, outcome = heapq.heappop(ending)
        busy += when - schedule.running[unit_id].slice.started
        now = max(now, when)
        if outcome[0] == "crash":
            final = schedule.crashed(unit_id, now, outcome[1])
        else:
            final = schedule.done(unit_id, now, more=outcome[1])
        if final:
            finished.append(name)
        free += 1
    return schedule, busy, finished, overcommitted


def test_more_workers_than_targets_all_stay_busy_on_distinct_streams():
    schedule, busy, finished, over = play({"a": good, "b": good}, budget=60, jobs=8)
    assert not over
    assert busy >= 0.95 * 8 * 60  # no worker idles while the targets have work
    assert sorted(finished) == ["a", "b"]
    for name in "ab":  # each target in four units at once, each from its own seed stream
        streams = {stream for n, _, start, _, stream in schedule.log if n == name and start == 0}
        assert streams == {0, 1, 2, 3}
    assert abs(schedule.granted["a"] - schedule.granted["b"]) < 1e-6  # fair
    assert STREAM_ROUNDS >= 10**6  # streams never reach each other's rounds


def test_with_fewer_workers_than_targets_first_slices_are_the_local_pools():
    behaviours = {n: good for n in "abcdef"}
    pool, _, _ = simulate(behaviours, budget=120, jobs=2)
    units, _, finished, over = play(behaviours, budget=120, jobs=2)
    assert not over and sorted(finished) == sorted(behaviours)
    firsts = [(n, start, seconds) for n, r, start, seconds, _ in units.log if r == 1]
    assert firsts == [(n, start, seconds) for n, r, start, seconds in pool.log if r == 1]
    assert [n for n, *_ in firsts] == list("abcdef")  # every first slice, in order


def test_a_target_that_ends_early_gives_its_time_back_and_stops():
    schedule, busy, finished, _ = play({"quick": early(1.0), "slow": good}, budget=30, jobs=2)
    assert [name for name, *_ in schedule.log].count("quick") == 1  # closed: no second turn
    assert schedule.granted["slow"] > 30  # it had both workers once quick was done
    assert busy >= 0.95 * 2 * 30 - 30 + 1.0
    assert finished[0] == "quick"


def test_crashes_resume_until_max_crashes_then_stop_with_the_budget_given_back():
    schedule, _, finished, _ = play({"boom": crasher(), "ok": good}, budget=60, jobs=2)
    assert schedule.crashes["boom"]["SIGSEGV forward"] == 3
    assert "boom" in schedule.closed and sorted(finished) == ["boom", "ok"]
    assert schedule.granted["ok"] > 60  # the crasher's time went to the other target


def test_a_hang_costs_its_slice_only():
    schedule, _, finished, _ = play({"hang": hanger, "ok": good}, budget=40, jobs=1)
    assert sorted(finished) == ["hang", "ok"]
    assert [name for name, *_ in schedule.log].count("hang") == 1


def test_without_a_budget_each_target_gets_one_unit_and_a_crash_ends_it():
    schedule, _, finished, _ = play(
        {"a": lambda s: (2.0, ("done", True)), "b": crasher()}, budget=None, jobs=4
    )
    assert [(name, r, stream) for name, r, _, _, stream in schedule.log] == [
        ("a", 1, 0),
        ("b", 1, 0),
    ]
    assert sorted(finished) == ["a", "b"] and schedule.crashes["b"]["SIGSEGV forward"] == 1


def test_a_closed_target_is_finished_only_when_its_last_unit_ends():
    schedule = UnitSchedule(["t"], end=100.0, jobs=2)
    first, second = schedule.next(0.0), schedule.next(0.0)
    assert (first.stream, second.stream) == (0, 1)
    assert not schedule.done(first.id, 5.0, more=False)  # closed, but the other still runs
    assert schedule.next(5.0) is None and "t" in schedule.closed
    assert schedule.done(second.id, 9.0, more=True)  # the last one: no further turn


def test_a_unit_whose_worker_never_started_goes_back_to_the_head():
    schedule = UnitSchedule(["a", "b"], end=100.0, jobs=1)
    unit = schedule.next(0.0)
    schedule.retry(unit.id)
    assert list(schedule.queue)[0] == ("a", 1) and schedule.granted["a"] == 0
    assert schedule.next(1.0).slice.name == "a"


def test_turns_left_when_the_budget_ends_are_drained():
    schedule = UnitSchedule(["a", "b", "c"], end=10.0, jobs=1)
    unit = schedule.next(0.0)
    assert schedule.drain(5.0) == []  # time left: they wait
    schedule.done(unit.id, 10.0 - MIN_SLICE / 2, more=True)
    assert sorted(schedule.drain(10.0)) == [("b", 1), ("c", 1)]
    assert schedule.finished() and schedule.closed == {"a", "b", "c"}
