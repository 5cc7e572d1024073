"""How fast `fuzzgrad.strategies.cases` generates: cases per second and Hypothesis draws per case.

Run: ``python bench/bench_generation.py [--n 2000]``. Rows:

- ``small``: a two-input target with the default specs (shared shape, any rank, <= 4096 elements);
- ``1M``: a one-input target whose spec fixes a 1000x1000 shape (1M elements, every layout);
- ``small, @given``: the small target through Hypothesis's engine, as the runner uses it (this adds
  the engine's own per-example costs, e.g. re-seeding torch's global RNG for hypothesis-torch).

The first two rows draw straight into a ``ConjectureData`` (a Hypothesis internal, used here only
to count draws and leave the engine out), each case from its own seeded ``random.Random``.
"""

from __future__ import annotations

import argparse
import random
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.control import BuildContext
from hypothesis.internal.conjecture.data import ConjectureData

import fuzzgrad as fg
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import cases


def _target(inputs=None):
    return make_target(lambda *xs: xs[0], reference=lambda *xs: xs[0], inputs=inputs, name="b")


def direct(strategy, n: int) -> tuple[float, float]:
    """(cases per second, draws per case) drawing ``n`` cases without the engine."""
    draws = 0
    started = time.perf_counter()
    for i in range(n):
        data = ConjectureData(random=random.Random(i))
        with BuildContext(data, wrapped_test=lambda: None):
            data.draw(strategy)
        draws += len(data.choices)
    return n / (time.perf_counter() - started), draws / n


def engine(strategy, n: int) -> float:
    """Cases per second through ``@given`` (generation phase only, derandomized)."""

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(case):
        pass

    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="cases per small row")
    args = parser.parse_args()
    small = cases(_target([fg.tensor(), fg.tensor()]))
    big = cases(_target([fg.tensor("1000 1000")]))
    direct(small, 50)  # warm caches and torch kernels
    direct(big, 3)
    rows = [
        ("small (2 inputs)", *direct(small, args.n)),
        ("1M elements (1 input)", *direct(big, max(20, args.n // 50))),
        ("small, @given", engine(small, args.n), float("nan")),
    ]
    print(f"{'row':24s} {'cases/s':>9s} {'ms/case':>8s} {'draws/case':>11s}")
    for name, rate, draws in rows:
        print(f"{name:24s} {rate:9.0f} {1e3 / rate:8.2f} {draws:11.1f}")


if __name__ == "__main__":
    main()
