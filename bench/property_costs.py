"""What each property costs per case on the built-in targets, next to the raw torch work.

For each target, the same drawn cases (seeded) run through one property at a time (a Checker
with only that property: its share of the case's evaluations included) and through the raw work
every property builds on: the Function's forward and backward plus the float64 torch reference's
forward and backward. Prints milliseconds per case, the mean over the targets.

    python bench/property_costs.py --cases 40
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


def raw_ms(target, cases) -> float:
    import torch

    from fuzzgrad.oracles.evaluation import as_tuple, floating
    from fuzzgrad.oracles.torch_ref import torch_oracle, torch_vjp

    started = time.perf_counter()
    for case in cases:
        wrt = [i for i, a in enumerate(case.args) if floating(a)]
        try:
            outs = as_tuple(target.fn(*case.args))
            cts = [torch.ones_like(o) if floating(o) else None for o in outs]
            torch_vjp(target.fn, case.args, wrt, cts)
            if target.reference is not None:
                torch_oracle(target.reference, case.args, wrt, cts)
        except Exception:  # noqa: BLE001 - outside the domain: it costs what it costs
            pass
    return 1000 * (time.perf_counter() - started) / len(cases)


def property_ms(target, prop: str, cases) -> float | None:
    from fuzzgrad.properties.base import Discard
    from fuzzgrad.properties.checker import Checker

    checker = Checker(target, [prop], jax_share=1.0)
    if not checker.selected:
        return None
    for case in cases[:3]:  # warm-up (JAX compiles) outside the timing
        try:
            checker.run(_fresh(case))
        except Discard:
            pass
    started = time.perf_counter()
    for case in cases:
        try:
            checker.run(_fresh(case))
        except Discard:
            pass
    return 1000 * (time.perf_counter() - started) / len(cases)


def _fresh(case):
    import dataclasses

    return dataclasses.replace(case, notes={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40, help="cases per target")
    parser.add_argument("--targets", default=None, help="comma-separated names (default: all)")
    args = parser.parse_args()

    from fuzzgrad.engine.explore import SIMPLICITY, FastData
    from fuzzgrad.properties import DEFAULT_PROPERTIES
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.strategies import cases as case_strategy
    from fuzzgrad.strategies._cases import _SpecCases

    targets = [t for t in load_targets() if isinstance(case_strategy(t), _SpecCases)]
    if args.targets:
        keep = set(args.targets.split(","))
        targets = [t for t in targets if t.name in keep]
    costs: dict[str, list[float]] = {p: [] for p in DEFAULT_PROPERTIES}
    raw: list[float] = []
    for target in targets:
        rng = random.Random(0)
        strategy = case_strategy(target)
        drawn = [strategy.do_draw(FastData(rng, rng.choice(SIMPLICITY))) for _ in range(args.cases)]
        raw.append(raw_ms(target, drawn))
        for prop in DEFAULT_PROPERTIES:
            ms = property_ms(target, prop, drawn)
            if ms is not None:
                costs[prop].append(ms)
    print(f"{len(targets)} built-in targets, {args.cases} cases each (ms per case, mean)")
    print(f"{'raw torch work (fwd+bwd, reference fwd+bwd)':46s} {statistics.mean(raw):8.2f}")
    for prop, values in costs.items():
        if values:
            print(f"{prop:46s} {statistics.mean(values):8.2f}   ({len(values)} targets)")


if __name__ == "__main__":
    main()
