"""Scaling: a 1M-element case against the raw torch ops, and examples per second with 1 and 2 jobs.

    python bench/scaling.py big --seconds 20        # 1M elements: pipeline vs floor vs raw ops
    python bench/scaling.py jobs --budget 40s       # fuzzgrad fuzz --jobs 1 vs --jobs 2

``big`` fuzzes the seed's MyElementWise on two 1000x1000 inputs (every layout and dtype, the
default properties forward and vjp) and prints seconds per case for the full pipeline, for the
floor (custom forward+backward, torch reference, warm JAX vjp on the same cases) and for the
custom forward+backward alone, with the ratios. ``jobs`` runs the main job over the built-in
targets with a time budget, once per job count, and prints the examples run in all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import Reservoir, floor_rate  # noqa: E402


def big(seconds: float) -> None:
    import fuzzgrad as fg
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.oracles.evaluation import as_tuple, floating
    from fuzzgrad.oracles.torch_ref import torch_vjp
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.registry.target import make_target

    seed = {t.name: t for t in load_targets()}["MyElementWise"]
    target = make_target(
        seed.fn,
        reference=seed.reference,
        jax_reference=seed.jax_reference,
        inputs=[fg.tensor("1000 1000"), fg.tensor("1000 1000")],
        name="MyElementWise1M",
    )
    sample = Reservoir(30)  # 16 MB a case
    start = time.perf_counter()
    r = fuzz_target(
        target,
        max_examples=10**6,
        properties=["forward", "vjp"],
        stop_at=time.monotonic() + seconds,
        on_example=sample.add,
    )
    pipeline = (time.perf_counter() - start) / max(r.examples, 1)
    floor = 1 / floor_rate(target, sample.items)
    raw_start = time.perf_counter()
    for case in sample.items:
        wrt = [i for i, a in enumerate(case.args) if floating(a)]
        outs = as_tuple(target.fn(*[a.detach() for a in case.args]))
        cts = [case.cotangent_for(k, o) for k, o in enumerate(outs)]
        torch_vjp(target.fn, case.args, wrt, cts)
    raw = (time.perf_counter() - raw_start) / len(sample.items)
    print(f"1M-element cases: {r.examples} in {seconds:g}s ({r.status})")
    print(f"  pipeline {pipeline * 1e3:8.1f} ms/case")
    print(f"  floor    {floor * 1e3:8.1f} ms/case  (pipeline / floor {pipeline / floor:.2f}x)")
    print(f"  raw ops  {raw * 1e3:8.1f} ms/case  (pipeline / raw ops {pipeline / raw:.2f}x)")


def jobs(budget: str, counts: list[int]) -> None:
    rates = {}
    for n in counts:
        with tempfile.TemporaryDirectory() as d:
            cmd = [
                sys.executable, "-m", "fuzzgrad", "fuzz", "--budget", budget, "--jobs", str(n),
                "--max-examples", "200", "--database", "none", "--report", d,
            ]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            wall = time.perf_counter() - start
            data = json.loads((Path(d) / "results.json").read_text())
            examples = sum(t["examples"] for t in data["targets"])
        rates[n] = examples / wall
        versus = rates[n] / rates[counts[0]]
        print(
            f"--jobs {n}: {examples} examples in {wall:.1f}s wall, {rates[n]:.0f} examples/s"
            + (f" ({versus:.2f}x --jobs {counts[0]})" if n != counts[0] else "")
        )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    b = sub.add_parser("big", help="a 1M-element case against the raw torch ops")
    b.add_argument("--seconds", type=float, default=20.0)
    j = sub.add_parser("jobs", help="examples per second with 1 and 2 jobs")
    j.add_argument("--budget", default="40s")
    j.add_argument("--jobs", default="1,2", help="comma-separated job counts")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.what == "big":
        big(a.seconds)
    else:
        jobs(a.budget, [int(n) for n in a.jobs.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
