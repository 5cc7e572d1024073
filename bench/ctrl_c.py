"""How long Ctrl-C takes to stop `fuzzgrad fuzz`, and where that time goes.

Starts `fuzzgrad fuzz` on a one-target project (a wrong backward, so a finding arrives) with a
long budget, sends SIGINT at a given moment (``--at`` seconds after the start, or ``finding``:
once the first finding is in the event log), and prints the seconds from the signal to each
phase the stopping run passes (the monotonic clock is the machine's, shared by both
processes): the workers stopped, the reports written, ``main`` returned, the process gone.

    python bench/ctrl_c.py --at finding --at 2 --at 8
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPS = """
import torch
import fuzzgrad as fg


class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 2


fg.register(Wrong, reference=lambda x: x * 3)
"""
#: Runs `fuzzgrad fuzz`, printing "PHASE <monotonic>" lines on stderr as it stops.
DRIVER = """
import sys, time
from fuzzgrad.nightly import pool, recorder

def mark(name):
    print(f"PHASE {name} {time.monotonic():.4f}", file=sys.stderr, flush=True)

stop_workers, finish = pool.stop_workers, recorder.Recorder.finish

def timed_stop(workers):
    mark("stop_workers_start")
    stop_workers(workers)
    mark("stop_workers_end")

def timed_finish(self, baseline):
    mark("reports_start")
    try:
        return finish(self, baseline)
    finally:
        mark("reports_end")

pool.stop_workers, recorder.Recorder.finish = timed_stop, timed_finish
from fuzzgrad.integrations import cli

main = cli.main

def timed_main(argv=None):
    try:
        return main(argv)
    finally:
        mark("main_returned")

cli.main = timed_main
cli.command()  # as the `fuzzgrad` command runs
"""


def one(at: str, work: Path) -> dict[str, float]:
    report = work / f"r-{at}"
    argv = [sys.executable, "-c", DRIVER, "fuzz", "ops.py", "--budget", "300s"]
    argv += ["--database", "none", "--report", str(report)]
    # Output to files, and the process waited for (as a shell does), not its pipes: a fork
    # server still importing torch holds inherited pipes open after the run has exited.
    err_path = work / f"err-{at}.txt"
    with open(work / f"out-{at}.txt", "w") as out_file, open(err_path, "w") as err_file:
        proc = subprocess.Popen(argv, cwd=work, stdout=out_file, stderr=err_file)
    started = time.monotonic()
    if at == "finding":
        log = report / "events.jsonl"
        while time.monotonic() - started < 300:
            if log.exists() and any(
                json.loads(line).get("event") == "finding" for line in log.read_text().splitlines()
            ):
                break
            time.sleep(0.05)
    else:
        time.sleep(float(at))
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    gone = time.monotonic()
    err = err_path.read_text()
    out = {"exit status": float(proc.returncode)}
    for line in err.splitlines():
        if line.startswith("PHASE "):
            _, name, stamp = line.split()
            out[name] = float(stamp) - sent
    out["process_gone"] = gone - sent
    if "reports_start" in out and out["reports_start"] < 0:
        out["ended_before_the_signal"] = 1.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at", action="append", default=None, metavar="SECONDS|finding")
    parser.add_argument("--runs", type=int, default=1, help="runs per moment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "ops.py").write_text(OPS)
        for at in args.at or ["finding", "2", "8"]:
            for _ in range(args.runs):
                phases = one(at, work)
                text = ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "exit status")
                print(f"Ctrl-C at {at:8s} exit {int(phases['exit status'])}: {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
