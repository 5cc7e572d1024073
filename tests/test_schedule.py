"""The nightly scheduler's budget accounting and ordering, on a simulated clock (no wall time).

`Schedule` hands out slices; `simulate` plays a run against it: each target's behaviour says how
long a slice takes and how it ends (used up with more to do, finished early, crashed), workers
pick the next slice as soon as they are free.
"""

from __future__ import annotations

import heapq

import pytest

from fuzzgrad.nightly.plan import MIN_SLICE, Schedule


def good(s):
    """Uses its whole slice and could use more."""
    return s.until - s.started, ("done", True)


def crasher(signature="SIGSEGV forward"):
    def behave(s):
        return 0.3, ("crash", signature)

    return behave


def hanger(s):
    """Hangs until its worker is killed at the end of its slice (then it is done: no retry)."""
    return s.shrink_until - s.started + 2.0, ("done", False)


def early(seconds):
    def behave(s):
        return min(seconds, s.until - s.started), ("done", False)

    return behave


def simulate(behaviours: dict, *, budget: float, jobs: int, max_crashes: int = 3):
    """Play a run; return (schedule, when the last slice ended, promised-time checks)."""
    schedule = Schedule(list(behaviours), end=budget, jobs=jobs, max_crashes=max_crashes)
    free = [(0.0, w) for w in range(jobs)]  # (when, worker)
    heapq.heapify(free)
    ending: list[tuple[float, str, tuple]] = []  # (when, target, outcome)
    overcommitted = []
    now = last = 0.0
    while not schedule.finished():
        schedule.drain(now)
        while free and free[0][0] <= now:
            s = schedule.next(now)
            if s is None:
                break
            heapq.heappop(free)
            promised = sum(max(0.0, x.until - now) for x in schedule.running.values())
            if promised > jobs * max(0.0, budget - now) + 1e-9:
                overcommitted.append((now, promised))
            took, outcome = behaviours[s.name](s)
            heapq.heappush(ending, (now + took, s.name, outcome))
        if not ending:
            if schedule.finished():
                break
            now = free[0][0] if free and free[0][0] > now else now + 0.1
            continue
        when, name, outcome = heapq.heappop(ending)
        now = max(now, when)
        last = max(last, when)
        if outcome[0] == "crash":
            schedule.crashed(name, now, outcome[1])
        else:
            schedule.done(name, now, more=outcome[1])
        heapq.heappush(free, (now, 0))
    return schedule, last, overcommitted


def rounds_in_order(schedule: Schedule) -> bool:
    seen_later = False
    for _, round_no, _, _ in schedule.log:
        if round_no > 1:
            seen_later = True
        elif seen_later:
            return False
    return True


MIXED = {
    "crash_a": crasher(),
    "hang_b": hanger,
    "crash_c": crasher(),
    "good_d": good,
    "good_e": good,
    "good_f": good,
}


@pytest.mark.parametrize("jobs", [1, 2, 4])
@pytest.mark.parametrize("order", ["bad first", "good first"])
def test_crashing_and_hanging_targets_cannot_starve_good_ones(jobs, order):
    names = list(MIXED) if order == "bad first" else list(reversed(MIXED))
    budget = 60.0
    schedule, last, overcommitted = simulate({n: MIXED[n] for n in names}, budget=budget, jobs=jobs)
    assert not overcommitted
    fair = budget * jobs / len(names)
    for name in ("good_d", "good_e", "good_f"):
        assert schedule.used[name] >= 0.6 * fair, (name, schedule.used, fair)
    assert last <= budget + 2.0 + 1e-9  # a hang is killed at most GRACE past its slice
    assert rounds_in_order(schedule)
    # a crasher resumes only while time is left, stops at 3 crashes at the same place, and
    # gives its time back
    for name in ("crash_a", "crash_c"):
        assert 1 <= sum(schedule.crashes[name].values()) <= 3
        assert schedule.used[name] < 1.0


def test_every_target_gets_its_first_slice_before_any_gets_a_second():
    behaviours = {f"t{i}": early(1.0) for i in range(5)} | {"crashy": crasher()}
    schedule, _, _ = simulate(dict(reversed(behaviours.items())), budget=30.0, jobs=2)
    firsts = [name for name, round_no, _, _ in schedule.log if round_no == 1]
    assert firsts == list(reversed(behaviours))  # in the order given
    assert rounds_in_order(schedule)
    assert any(round_no > 1 for _, round_no, _, _ in schedule.log)  # crashy resumed


def test_first_slices_share_the_budget_equally():
    schedule, _, overcommitted = simulate({f"t{i}": good for i in range(6)}, budget=60, jobs=2)
    assert not overcommitted
    first = [seconds for _, round_no, _, seconds in schedule.log if round_no == 1]
    assert first == pytest.approx([20.0] * 6)
    assert sum(schedule.used.values()) <= 120.0 + 1e-9


def test_time_given_back_goes_to_the_targets_still_waiting():
    schedule, _, _ = simulate(
        {"quick": early(2.0), "b": good, "c": good}, budget=30.0, jobs=1
    )  # quick has a 10 s slice and uses 2
    slices = {name: seconds for name, round_no, _, seconds in schedule.log if round_no == 1}
    assert slices["quick"] == pytest.approx(10.0)
    assert slices["b"] == pytest.approx(14.0)  # (30 - 2) / 2
    assert slices["c"] == pytest.approx(14.0)


def test_crashes_at_different_places_keep_a_target_going_until_the_budget_ends():
    places = iter(f"SIGSEGV line {i}" for i in range(100))

    def flaky(s):
        return 1.0, ("crash", next(places))

    schedule, last, _ = simulate({"flaky": flaky, "ok": early(1.0)}, budget=10.0, jobs=1)
    assert sum(schedule.crashes["flaky"].values()) > 3
    assert last <= 10.0 + 1e-9


def test_a_crash_without_a_budget_ends_the_target():
    schedule = Schedule(["a"], end=None, jobs=1)
    s = schedule.next(0.0)
    assert s is not None and s.until is None
    assert schedule.crashed("a", 1.0, "SIGSEGV") is False
    assert schedule.finished()


def test_the_same_crash_stops_the_target_after_max_crashes():
    schedule = Schedule(["a", "b"], end=100.0, jobs=1, max_crashes=2)
    assert schedule.next(0.0).name == "a"
    assert schedule.crashed("a", 1.0, "SIGABRT x.py:3") is True
    assert schedule.next(1.0).name == "b"  # b gets its first slice before a resumes
    assert schedule.done("b", 50.0, more=False) is False
    resumed = schedule.next(50.0)
    assert (resumed.name, resumed.round) == ("a", 2)
    assert schedule.crashed("a", 51.0, "SIGABRT x.py:3") is False
    assert schedule.finished()


def test_no_second_round_shorter_than_the_minimum():
    schedule = Schedule(["a"], end=10.0, jobs=1)
    schedule.next(0.0)
    assert schedule.done("a", 10.0 - MIN_SLICE / 2, more=True) is False
    assert schedule.finished()


def test_turns_that_can_never_start_are_drained():
    schedule = Schedule(["a", "b"], end=10.0, jobs=1)
    schedule.next(0.0)
    assert schedule.drain(5.0) == []  # b waits for a
    schedule.done("a", 10.5, more=False)
    assert schedule.drain(10.5) == [("b", 1)]  # never started: the budget is spent
    assert schedule.finished()


def test_an_example_cut_by_the_end_of_its_slice_is_a_hang_only_if_it_ran_long():
    from fuzzgrad.nightly.plan import hung

    assert hung(10.0, 30.0, 20.0)  # half the slice: hung
    assert not hung(4.0, 30.0, 20.0)  # a slow example that started late: the slice ended
    assert not hung(4.0, 30.0, 2.0)  # a slow first example in a short slice
    assert hung(5.0, 30.0, 2.0)
    assert hung(3.0, 3.0, 100.0)  # --example-timeout
    assert not hung(1e6, None, None)  # no timeout, no budget: never
