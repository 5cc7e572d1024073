"""Examples per second of the full pipeline, next to the floor: the three computations alone.

For each target, a time-limited fuzz run (generation only, no failure to shrink for passing
targets) keeps a uniform sample of the cases it ran (`FLOOR_SAMPLE`); then those cases are
replayed through just the custom forward+backward, the torch reference (float64) and the JAX vjp
with compilation already paid.
The ratio pipeline/floor is the harness's overhead. Also prints the share of examples that paid a
JAX compile, and the time to the first failure on the seed's wrong example; under each target,
what failed or ended it in error (a false alarm met while measuring costs time shrinking it).

    python bench/throughput.py --seconds 20
    python bench/throughput.py --seconds 60 --properties forward,vjp
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import torch

DEFAULT_TARGETS = [
    "MyElementWise",
    "MyActivation",
    "MyComplexOp",
    "StableSoftplus",
    "LayerNorm",
    "LogSumExp",
    "LinearBias",
]


#: Cases, drawn uniformly from all the run's cases, on which the floor is measured.
FLOOR_SAMPLE = 1000


class Reservoir:
    """A uniform sample of at most ``size`` of the items added (reservoir sampling, seeded)."""

    def __init__(self, size: int):
        self.size, self.seen, self.items = size, 0, []
        self._rng = random.Random(0)

    def add(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
        elif (j := self._rng.randrange(self.seen)) < self.size:
            self.items[j] = item


def floor_rate(target, cases) -> float:
    """Cases per second of custom fwd+bwd, torch reference and warm JAX vjp, nothing else."""
    from fuzzgrad.oracles.evaluation import as_tuple, floating
    from fuzzgrad.oracles.jax_ref import shared_jax
    from fuzzgrad.oracles.torch_ref import torch_oracle, torch_vjp

    jax = shared_jax()
    prepared = []
    for case in cases:
        wrt = [i for i, a in enumerate(case.args) if floating(a)]
        outs = as_tuple(target.fn(*[a.detach() for a in case.args]))
        cts = [case.cotangent_for(k, o) if floating(o) else None for k, o in enumerate(outs)]
        if target.jax_reference is not None:
            try:
                jax(target.jax_reference, case.args, wrt, cts)  # pay compilation up front
            except Exception:  # noqa: BLE001 - outside the math's domain: the pipeline discards it
                continue
        prepared.append((case, wrt, cts))
    if not prepared:
        return float("nan")
    start = time.perf_counter()
    for case, wrt, cts in prepared:
        try:
            torch_vjp(target.fn, case.args, wrt, cts)
            if target.reference is not None:
                torch_oracle(target.reference, case.args, wrt, cts)
            if target.jax_reference is not None:
                jax(target.jax_reference, case.args, wrt, cts)
        except Exception:  # noqa: BLE001
            pass
    return len(prepared) / (time.perf_counter() - start)


def run_target(target, seconds: float, properties) -> dict:
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.oracles.jax_ref import shared_jax

    jax = shared_jax()
    compiles0 = jax.compiles
    sample = Reservoir(FLOOR_SAMPLE)
    start = time.perf_counter()
    result = fuzz_target(
        target,
        max_examples=10**6,
        properties=properties,
        stop_at=time.monotonic() + seconds,
        on_example=sample.add,
    )
    elapsed = time.perf_counter() - start
    first = min((f.seconds_to_find for f in result.failures if f.seconds_to_find), default=None)
    rate = result.examples / elapsed
    floor = floor_rate(target, sample.items)
    return {
        "name": target.name,
        "status": result.status,
        "examples": result.examples,
        "rate": rate,
        "floor": floor,
        "ratio": floor / rate if rate else float("nan"),
        "compile_share": (jax.compiles - compiles0) / max(1, result.examples),
        "first_failure": first,
        # what failed, so a false alarm met while measuring is seen, not only its cost
        "failures": [f"{f.property}: {f.message.splitlines()[0]}" for f in result.failures],
        "error": (result.error or {}).get("message"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="fuzzing time per target")
    p.add_argument("--targets", default=",".join(DEFAULT_TARGETS))
    p.add_argument("--properties", default=None, help="comma-separated (default: all)")
    a = p.parse_args()
    from fuzzgrad.registry.discovery import load_targets

    torch.set_num_threads(1)
    known = {t.name: t for t in load_targets()}
    names = [n for n in a.targets.split(",") if n in known]
    props = a.properties.split(",") if a.properties else None
    print(
        f"{'target':16s} {'status':8s} {'examples':>8s} {'ex/s':>7s} {'floor ex/s':>10s} "
        f"{'ratio':>6s} {'JAX compile share':>17s} {'first failure':>13s}"
    )
    for name in names:
        r = run_target(known[name], a.seconds, props)
        first = f"{r['first_failure']:.2f}s" if r["first_failure"] is not None else "-"
        print(
            f"{r['name']:16s} {r['status']:8s} {r['examples']:8d} {r['rate']:7.1f} "
            f"{r['floor']:10.1f} {r['ratio']:6.1f} {r['compile_share']:17.1%} {first:>13s}",
            flush=True,
        )
        for line in r["failures"] + ([r["error"]] if r["error"] else []):
            print(f"    {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
