"""Nightly runs under stress: worker start-up, fair shares, nothing lost, nothing left running.

    python bench/nightly.py startup               # worker start and restart: fork server vs spawn
    python bench/nightly.py fair --budget 60       # 3 crashing/hanging targets and 3 good ones
    python bench/nightly.py sigkill --kills 5      # findings lost when a run is SIGKILLed
    python bench/nightly.py redis                  # findings lost when Redis goes away mid-run
    python bench/nightly.py orphans                # processes left behind by targets that spawn
    python bench/nightly.py secrets                # a --database password found in report files

Each prints numbers for benchmarks.md. Runs are `python -m fuzzgrad` subprocesses on tiny
torch-only targets written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_nightly import HANG, SEGFAULT, events, wait_for  # noqa: E402
from test_nightly import scale_target as target  # noqa: E402
from test_nightly import write_targets as write  # noqa: E402
from test_recovery import running  # noqa: E402

ABORT = "        __import__('os').abort()\n"


def fuzz(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fuzzgrad", "fuzz", *args], cwd=cwd, **kw)


# -- startup ------------------------------------------------------------------------------------
def startup(repeats: int) -> None:
    """Seconds from starting a worker to its 'ready' (targets imported), first and restarted."""
    import multiprocessing as mp

    from fuzzgrad.nightly import pool, worker
    from fuzzgrad.nightly.plan import Plan

    tmp = Path(tempfile.mkdtemp())
    folder = write(tmp / "targets", {"ok": target("ok", 2, 2)})
    plan = Plan(specs=[str(folder)], targets=[], report_dir=tmp / "report", jobs=1)
    scratch = tmp / "report" / ".work"
    scratch.mkdir(parents=True)

    def ready_in() -> float:
        started = time.monotonic()
        w = pool.Worker(plan, scratch, threads=1)
        message = w.conn.recv()
        assert message[0] == "ready", message
        took = time.monotonic() - started
        w.kill("bench")  # as after a crash: the next one is a restart
        w.proc.join()
        return took

    rows = []
    for method in ("spawn", "forkserver"):
        original = worker.context
        if method == "spawn":
            worker.context = lambda start=False: mp.get_context("spawn")
        try:
            first = ready_in()
            again = [ready_in() for _ in range(repeats)]
        finally:
            worker.context = original
        rows.append((method, first, statistics.median(again), max(again)))
    print("| start method | first worker ready (s) | restart, median (s) | restart, max (s) |")
    print("|---|---|---|---|")
    for method, first, median, worst in rows:
        print(f"| {method} | {first:.2f} | {median:.3f} | {worst:.3f} |")


# -- fair shares --------------------------------------------------------------------------------
def fair(budget: float, jobs: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    folder = write(
        tmp / "targets",
        {
            "bad_segfault": target("bad_segfault", 2, 2, prelude=SEGFAULT),
            "bad_abort": target("bad_abort", 2, 2, prelude=ABORT),
            "bad_hang": target("bad_hang", 2, 2, prelude=HANG),
            "good_1": target("good_1", 2, 2),
            "good_2": target("good_2", 3, 3),
            "good_3": target("good_3", 4, 4),
        },
    )
    report = tmp / "report"
    started = time.monotonic()
    proc = fuzz(
        str(folder), "--budget", f"{budget:g}s", "--jobs", str(jobs), "--report", str(report),
        "--database", "none", "--properties", "forward,vjp", cwd=tmp,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    proc.wait()
    wall = time.monotonic() - started
    results = json.loads((report / "results.json").read_text())
    log = events(report)
    ready = next(e for e in log if e["event"] == "target_started")["left"]
    share = budget * jobs / len(results["targets"])
    print(f"budget {budget:g}s, {jobs} jobs, fair share {share:.1f}s per target; first slice "
          f"started with {ready:.1f}s left (workers starting); wall {wall:.1f}s, "
          f"{wall - budget:+.1f}s past the budget")  # fmt: skip
    print("| target | status | slices | seconds fuzzed | share of fair |")
    print("|---|---|---|---|---|")
    for r in results["targets"]:
        slices = sum(1 for e in log if e["event"] == "target_started" and e["target"] == r["name"])
        print(
            f"| {r['name']} | {r['status']} {(r.get('error') or {}).get('kind') or ''} | "
            f"{slices} | {r['seconds']:.1f} | {r['seconds'] / share:.0%} |"
        )


# -- nothing lost -------------------------------------------------------------------------------
BUGS = {f"bug{i}": target(f"bug{i}", f, b) for i, (f, b) in enumerate([(3, 2), (5, 4), (7, 6)])}


def _kept(report: Path) -> tuple[set, set]:
    """(target, property) of every finding in the log, and of every failure in results.json."""
    log = {(e["target"], e["property"]) for e in events(report) if e["event"] == "finding"}
    log |= {
        (e["target"], e["failure"]["property"]) for e in events(report) if e["event"] == "failure"
    }
    results = json.loads((report / "results.json").read_text())
    kept = {(r["name"], f["property"]) for r in results["targets"] for f in r["failures"]}
    return log, kept


def sigkill(kills: int) -> None:
    from fuzzgrad.integrations.cli import main

    lost = found = 0
    for i in range(kills):
        tmp = Path(tempfile.mkdtemp())
        folder = write(tmp / "targets", {**BUGS, "ok": target("ok", 2, 2)})
        report = tmp / "report"
        proc = fuzz(
            str(folder), "--budget", "60s", "--jobs", "2", "--report", str(report),
            "--properties", "forward,vjp", "--database", "none", cwd=tmp,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda r=report: any(e["event"] == "finding" for e in events(r)), 120)
        delay = random.uniform(0, 5)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        code = main(["report", str(report)])
        log, kept = _kept(report)
        found += len(log)
        lost += len(log - kept)
        print(f"kill {i + 1}: {delay:.1f}s after the first finding, report exit {code}, "
              f"{len(log)} findings in the log, {len(log - kept)} lost")  # fmt: skip
    print(f"findings lost on SIGKILL: {lost} of {found} over {kills} kills")


def redis_outage() -> None:
    import shutil
    import socket

    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redis = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    tmp = Path(tempfile.mkdtemp())
    folder = write(tmp / "targets", BUGS)
    report = tmp / "report"
    proc = fuzz(
        str(folder), "--budget", "60s", "--report", str(report), "--properties", "forward,vjp",
        "--database", f"redis://127.0.0.1:{port}/0", cwd=tmp,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    ended = ("target_finished", "target_segment")  # a slice ended: the next meets the outage
    wait_for(lambda: any(e["event"] in ended for e in events(report)), 120)
    redis.terminate()
    redis.wait()
    _, stderr = proc.communicate()
    log, kept = _kept(report)
    errors = [r["name"] for r in json.loads((report / "results.json").read_text())["targets"]
              if r["status"] == "error"]  # fmt: skip
    print(
        f"exit {proc.returncode}; warnings: {stderr.count('warning:')}; targets in error: "
        f"{errors}; findings lost on a Redis outage: {len(log - kept)} of {len(log)}"
    )


# -- nothing left running -----------------------------------------------------------------------
def orphans() -> None:
    tmp = Path(tempfile.mkdtemp())
    pids = tmp / "pids.txt"
    spawn = (
        "        if not getattr(F, 'child', None):\n"
        "            F.child = __import__('subprocess').Popen(['sleep', '1000'])\n"
        f"            open({str(pids)!r}, 'a').write(f'{{F.child.pid}}\\n')\n"
    )
    folder = write(
        tmp / "targets",
        {
            "a_crash": target("a_crash", 2, 2, prelude=spawn + ABORT),
            "b_hang": target(
                "b_hang",
                2,
                2,
                prelude=spawn + "        __import__('os').kill(__import__('os').getpid(), 19)\n",
            ),
            "c_fine": target("c_fine", 2, 2, prelude=spawn),
        },
    )
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--budget", "30s",
         "--example-timeout", "2s", "--report", str(tmp / "report"), "--database", "none",
         "--properties", "vjp"],
        cwd=tmp, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    wall = time.monotonic() - started
    children = [int(x) for x in pids.read_text().split()]
    time.sleep(1)
    left = [p for p in children if running(p)]
    print(
        f"piped run: exit {out.returncode} after {wall:.1f}s (budget 30s); {len(children)} "
        f"children started by targets, {len(left)} still running: orphan processes {len(left)}"
    )
    for p in left:
        os.kill(p, signal.SIGKILL)


def secrets() -> None:
    tmp = Path(tempfile.mkdtemp())
    folder = write(tmp / "targets", {"bug0": BUGS["bug0"]})
    password = f"s3cr3t-{random.randrange(10**6):06d}"
    report = tmp / "report"
    out = subprocess.run(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--budget", "20s", "--report",
         str(report), "--properties", "vjp", "--database",
         f"redis://user:{password}@127.0.0.1:1/0"],
        cwd=tmp, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    hits = [
        p.name
        for p in report.rglob("*")
        if p.is_file() and password in p.read_text(errors="replace")
    ]
    shown = password in out.stdout + out.stderr
    print(f"report files holding the password: {len(hits)} {hits}; in terminal output: {shown}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("startup").add_argument("--repeats", type=int, default=5)
    f = sub.add_parser("fair")
    f.add_argument("--budget", type=float, default=60)
    f.add_argument("--jobs", type=int, default=2)
    sub.add_parser("sigkill").add_argument("--kills", type=int, default=5)
    for name in ("redis", "orphans", "secrets"):
        sub.add_parser(name)
    args = p.parse_args()
    if args.what == "startup":
        startup(args.repeats)
    elif args.what == "fair":
        fair(args.budget, args.jobs)
    elif args.what == "sigkill":
        sigkill(args.kills)
    else:
        {"redis": redis_outage, "orphans": orphans, "secrets": secrets}[args.what]()


if __name__ == "__main__":
    main()
