"""Wall time of the built-in targets through the pytest plugin: ``-n 0`` against ``-n N``.

Runs ``pytest -m fuzzgrad`` (the fuzzgrad items only, ci profile unless ``--profile``) in a
subprocess once per worker count and prints wall time, CPU time of the whole process tree, and
the outcome line, so a change to the plugin's scheduling or sharing can be judged by numbers:

    python bench/bench_xdist.py                 # -n 0 vs -n 2
    python bench/bench_xdist.py --workers 0 2 4 --repeat 2 --profile ci
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, profile: str, extra: list[str]) -> tuple[float, float, str]:
    """One pytest run: (wall seconds, CPU seconds of the children, pytest's summary line)."""
    cmd = [sys.executable, "-m", "pytest", "-m", "fuzzgrad", "-q"]
    cmd += ["-n", str(workers), "--fuzzgrad-profile", profile, *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return wall, cpu, (lines[-1].strip("= ") if lines else f"exit {done.returncode}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="xdist -n values")
    p.add_argument("--repeat", type=int, default=1, help="runs per worker count (best is kept)")
    p.add_argument("--profile", default="ci", help="fuzzgrad profile (default: ci)")
    p.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = p.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, profile {args.profile}")
    best: dict[int, float] = {}
    for workers in args.workers:
        for _ in range(args.repeat):
            wall, cpu, summary = run(workers, args.profile, args.pytest_args)
            best[workers] = min(best.get(workers, wall), wall)
            print(f"-n {workers}: wall {wall:7.1f}s  cpu {cpu:7.1f}s  ({summary})", flush=True)
    base = best.get(0)
    if base:
        for workers, wall in best.items():
            if workers:
                print(f"speed-up of -n {workers} over -n 0: {base / wall:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
