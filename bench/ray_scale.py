"""Scale figures of ``fuzzgrad fuzz --executor ray`` (benchmarks.md), on a local Ray cluster.

    python bench/ray_scale.py throughput --budget 60    # examples/s: --executor ray vs process
    python bench/ray_scale.py crash                     # seconds from a crash to its report
    python bench/ray_scale.py driver --workers 100      # 100 fake workers' findings: driver CPU

Ray binds to the machine's external address even when told 127.0.0.1, so every figure is taken
inside a network namespace of its own (``unshare -n``, loopback only): the script re-runs itself
there (as root, or with user namespaces), and refuses to start Ray on the host network.
``driver`` runs `fake_unit` (a fake fast target: a finding every ``--interval`` seconds) in
many Ray tasks at fractional CPUs, so the driver and its event log take the findings of that
many workers at once on a 2-core machine; it prints the driver's CPU seconds per event.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NETNS = "FUZZGRAD_NETNS"
#: Seconds between two findings of one fake worker.
INTERVAL = 0.05


def _nap(seconds: float) -> None:
    time.sleep(seconds)


def in_own_network() -> None:
    """Re-run this command in a network namespace of its own, unless it already is in one."""
    if os.environ.get(NETNS) == "1":
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("needs unshare (util-linux) to keep Ray off the host network")
    script = 'ip link set lo up && exec "$0" "$@"'
    env = {**os.environ, NETNS: "1"}
    code = subprocess.call([unshare, "-n", "sh", "-c", script, sys.executable, *sys.argv], env=env)
    sys.exit(code)


def fake_unit(setup, task, sink):
    """A stand-in for `fuzzgrad.nightly.ray_task.run_unit` on a fake fast target: puts a
    finding on the queue every `INTERVAL` seconds of its slice (the first with a reproducer
    file), then returns its record, whose ``examples`` counts the findings sent."""
    from fuzzgrad.nightly.ray_task import Relay

    folder = Path(tempfile.mkdtemp(prefix="fuzzgrad-fake-"))
    relay = Relay(sink.put, task["unit"], folder)
    started = time.monotonic()
    seconds = 1.0 if task["until_in"] is None else task["until_in"]
    if task["end_wall"] is not None:
        seconds = min(seconds, task["end_wall"] - time.time())
    sent = 0
    while sent == 0 or time.monotonic() - started < seconds:
        sent += 1
        info = {"message": f"fake finding {sent}", "inputs": [], "reproducer": None}
        if sent == 1:
            info["reproducer"] = str(folder / f"repro_{task['name']}_{task['unit']}.py")
            Path(info["reproducer"]).write_text("# a fake reproducer\n")
        relay("finding", task["name"], "vjp", info)
        time.sleep(INTERVAL)
    shutil.rmtree(folder, ignore_errors=True)
    record = {
        "name": task["name"], "module": "fake", "status": "passed", "xfail_reason": None,
        "examples": sent, "seconds": round(time.monotonic() - started, 3), "failures": [],
        "error": None,
    }  # fmt: skip
    return {"kind": "done", "record": record, "more": True, "rounds": 1, "files": {}}


def fake_run(report: Path, targets, *, budget: float, cpus_per_task: float) -> dict:
    """Run `fake_unit` over ``targets`` on the connected Ray cluster for ``budget`` seconds;
    return the driver's numbers."""
    from fuzzgrad.nightly import ray_executor
    from fuzzgrad.nightly.plan import Plan
    from fuzzgrad.nightly.recorder import Recorder

    report.mkdir(parents=True, exist_ok=True)
    plan = Plan(specs=[], targets=targets, report_dir=report, budget=budget)
    recorder = Recorder(plan, {"argv": ["fake"], "executor": "ray"}, live=False)
    before = resource.getrusage(resource.RUSAGE_SELF)
    options = ray_executor.Options(cpus_per_task=cpus_per_task, task=fake_unit)
    ray_executor.run(plan, recorder, options)
    after = resource.getrusage(resource.RUSAGE_SELF)
    recorder.finish(None)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = (report / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    return {
        "cpu": cpu,
        "events": events,
        "results": json.loads((report / "results.json").read_text()),
    }


def _cluster(cpus: int):
    import logging

    import ray

    temp = tempfile.mkdtemp(prefix="fgray")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(
        address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
        logging_level=logging.WARNING, _temp_dir=temp,
    )  # fmt: skip
    return temp


def driver(workers: int, seconds: float, targets: int) -> None:
    import ray

    from fuzzgrad.registry.discovery import load_targets

    sys.path.insert(0, str(ROOT / "tests"))
    from test_nightly import scale_target, write_targets

    tmp = Path(tempfile.mkdtemp())
    names = [f"fake{i}" for i in range(targets)]
    folder = write_targets(tmp / "targets", {n: scale_target(n, 2, 2) for n in names})
    loaded = load_targets([str(folder)])
    temp = _cluster(2)
    try:
        started = time.monotonic()
        # Warm the workers up first (Ray starts as many processes at once as it has CPUs).
        nap = ray.remote(num_cpus=2 / workers)(_nap)  # (a builtin cannot be a Ray task)
        ray.get([nap.remote(1) for _ in range(workers)])
        warm = time.monotonic() - started
        out = fake_run(tmp / "report", loaded, budget=seconds, cpus_per_task=2 / workers)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    events = out["events"]
    findings = sum(e["event"] == "finding" for e in events)
    sent = sum(t["examples"] for t in out["results"]["targets"])
    units = sum(e["event"] == "target_started" for e in events)
    at_once = _most_at_once(events)
    print(f"{workers} task slots at {2 / workers:.2f} CPU (workers warmed in {warm:.1f}s), "
          f"{seconds:g}s budget, {targets} fake targets:")  # fmt: skip
    print(f"  units {units}, most running at once {at_once}")
    print(f"  findings sent {sent}, logged {findings} (lost {sent - findings})")
    print(f"  events written {len(events)}, {len(events) / seconds:.0f}/s")
    print(f"  driver CPU {out['cpu']:.2f}s = {1e3 * out['cpu'] / len(events):.2f} ms per event")
    shutil.rmtree(tmp, ignore_errors=True)


def _most_at_once(events: list[dict]) -> int:
    running, most = set(), 0
    for e in events:
        if e["event"] == "target_started":
            running.add(e["unit"])
        elif e["event"] in ("target_segment", "target_finished") and "unit" in e:
            running.discard(e["unit"])
        most = max(most, len(running))
    return most


def _fuzz(*args: str, report: Path) -> tuple[float, dict, float]:
    """Run ``fuzzgrad fuzz``: its wall time, results and the CPU seconds of the run's own
    process (the driver, or the pool's parent)."""
    cmd = [sys.executable, "-m", "fuzzgrad", "fuzz", *args, "--report", str(report)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    return wall, json.loads((report / "results.json").read_text()), usage.ru_utime + usage.ru_stime


def throughput(budget: str) -> None:
    """Examples in the same budget over the built-in targets: process (2 jobs) and Ray (a local
    2-CPU cluster the run starts)."""
    rows = []
    for label, extra in (("process --jobs 2", ["--jobs", "2"]),
                         ("ray --jobs 2", ["--executor", "ray", "--jobs", "2"])):  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            wall, results, cpu = _fuzz("--budget", budget, *extra, "--max-examples", "200",
                                       "--database", "none", report=Path(d))  # fmt: skip
            log = [json.loads(line) for line in (Path(d) / "events.jsonl").open()]
        examples = sum(t["examples"] for t in results["targets"])
        busy = sum(t["seconds"] or 0 for t in results["targets"])
        first = next(e for e in log if e["event"] == "target_started")
        rows.append((label, examples, wall, busy, cpu, first.get("left")))
    base = rows[0][1]
    print(
        "| executor | examples | wall (s) | examples/s | examples/s of worker time | vs process "
        "| driver CPU (s) | budget left at the first unit (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, examples, wall, busy, cpu, left in rows:
        print(f"| {label} | {examples} | {wall:.1f} | {examples / wall:.0f} | "
              f"{examples / busy:.0f} | {examples / base:.2f}x | {cpu:.1f} | {left} |")  # fmt: skip


CRASHES_AT = """
import time, ctypes
import torch
import fuzzgrad as fg

def f(x):
    with open({stamp!r}, "w") as out:
        out.write(repr(time.time()))
    ctypes.string_at(0)

fg.register(f, reference=lambda x: x, name="crashes")
"""


def crash(repeats: int) -> None:
    """Seconds from a worker's segfault (the target writes the time first) to the line of
    events.jsonl that records it, for each executor."""
    for label, extra in (("process", []), ("ray", ["--executor", "ray", "--jobs", "1"])):
        took = []
        for _ in range(repeats):
            tmp = Path(tempfile.mkdtemp())
            stamp = tmp / "stamp"
            (tmp / "crashes.py").write_text(CRASHES_AT.format(stamp=str(stamp)))
            report = tmp / "report"
            cmd = [sys.executable, "-m", "fuzzgrad", "fuzz", str(tmp / "crashes.py"), *extra,
                   "--properties", "forward", "--database", "none",
                   "--report", str(report)]  # fmt: skip
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            seen = None
            while proc.poll() is None and seen is None:
                log = report / "events.jsonl"
                if log.exists() and '"kind": "crash"' in log.read_text():
                    seen = time.time()
                time.sleep(0.005)
            proc.wait()
            if seen is not None and stamp.exists():
                took.append(seen - float(stamp.read_text()))
            shutil.rmtree(tmp, ignore_errors=True)
        took.sort()
        print(f"{label}: crash to its report {took[len(took) // 2]:.3f}s median "
              f"(min {took[0]:.3f}, max {took[-1]:.3f}; {len(took)} runs)")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--budget", default="60s")
    c = sub.add_parser("crash")
    c.add_argument("--repeats", type=int, default=5)
    d = sub.add_parser("driver")
    d.add_argument("--workers", type=int, default=100)
    d.add_argument("--seconds", type=float, default=20.0)
    d.add_argument("--targets", type=int, default=10)
    a = p.parse_args()
    in_own_network()
    if a.what == "throughput":
        throughput(a.budget)
    elif a.what == "crash":
        crash(a.repeats)
    else:
        driver(a.workers, a.seconds, a.targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
