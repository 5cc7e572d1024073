"""Hypothesis's documented alternative backend (``PrimitiveProvider``) against fuzzgrad's own
fast exploration, on the same targets, strategies and checks.

Both draw the cases of a built-in target from the same strategies with the same choice logic
(`fuzzgrad.engine.explore.FastData`'s: bounded integers, booleans, floats; the simplest value
with a drawn probability) and check every default property on each. The provider runs inside
Hypothesis's engine (``settings(backend=...)``), which still books every choice; exploration
does not. Prints examples per second of each, and their ratio.

    python bench/provider.py --seconds 20
"""

from __future__ import annotations

import argparse
import math
import random
import time

TARGETS = ["MyElementWise", "StableSoftplus", "LayerNorm", "LogSumExp"]


def make_provider():
    from hypothesis.internal.conjecture.providers import PrimitiveProvider

    from fuzzgrad.engine.explore import SIMPLICITY, SPECIAL_FLOAT

    class FastProvider(PrimitiveProvider):
        """FastData's choices as a Hypothesis backend."""

        lifetime = "test_case"

        def __init__(self, conjecturedata, /, **kwargs):
            super().__init__(conjecturedata, **kwargs)
            self.rng = random.Random()
            self.simplest = self.rng.choice(SIMPLICITY)

        def _simple(self) -> bool:
            return self.simplest > 0 and self.rng.random() < self.simplest

        def draw_boolean(self, p=0.5):
            return not self._simple() and self.rng.random() < p

        def draw_integer(self, min_value=None, max_value=None, *, weights=None, shrink_towards=0):
            lo = -(2**31) if min_value is None else min_value
            hi = 2**31 if max_value is None else max_value
            if self._simple():
                return min(max(shrink_towards, lo), hi)
            if weights:
                u, acc = self.rng.random(), 0.0
                for v, p in weights.items():
                    acc += p
                    if u < acc:
                        return v
            return self.rng.randint(lo, hi)

        def draw_float(self, *, min_value=-math.inf, max_value=math.inf, allow_nan=True,
                       smallest_nonzero_magnitude):  # fmt: skip
            lo = max(min_value, -1e300)
            hi = min(max_value, 1e300)
            if self._simple():
                return min(max(0.0, lo), hi)
            if self.rng.random() < SPECIAL_FLOAT:
                return self.rng.choice([x for x in (0.0, 1.0, -1.0, lo, hi) if lo <= x <= hi])
            return self.rng.uniform(lo, hi)

        def draw_string(self, intervals, *, min_size=0, max_size=10**9):
            return ""

        def draw_bytes(self, min_size=0, max_size=10**9):
            return b"\0" * min_size

    return FastProvider


def rate_with_provider(target, seconds: float) -> float:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.internal.conjecture.providers import AVAILABLE_PROVIDERS

    from fuzzgrad.properties.base import Discard
    from fuzzgrad.properties.checker import Checker
    from fuzzgrad.strategies import cases

    AVAILABLE_PROVIDERS["fuzzgrad-bench"] = f"{__name__}.PROVIDER"
    checker = Checker(target)
    end = time.monotonic() + seconds

    @settings(backend="fuzzgrad-bench", max_examples=10**9, database=None, deadline=None,
              phases=(Phase.generate,), suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(cases(target))
    def test(case):
        if time.monotonic() > end:
            raise StopIteration
        try:
            checker.check(case)
        except (Discard, AssertionError):
            pass

    started = time.monotonic()
    try:
        test()
    except StopIteration:
        pass
    except BaseException as exc:  # noqa: BLE001 - Hypothesis wraps the stop
        if "StopIteration" not in repr(exc):
            raise
    return checker.stats.examples / (time.monotonic() - started)


def rate_exploring(target, seconds: float) -> float:
    from fuzzgrad.engine.runner import fuzz_target

    result = fuzz_target(target, max_examples=10**9, stop_at=time.monotonic() + seconds, seed=0)
    return result.examples / result.seconds


PROVIDER = None


def main() -> None:
    global PROVIDER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per target and path")
    args = parser.parse_args()
    import sys

    sys.modules[__name__].PROVIDER = PROVIDER = make_provider()
    from fuzzgrad.registry.discovery import load_targets

    targets = {t.name: t for t in load_targets()}
    print(f"{'target':16s} {'explore ex/s':>13s} {'provider ex/s':>14s} {'provider/explore':>17s}")
    for name in TARGETS:
        target = targets[name]
        rate_exploring(target, 2.0)  # warm-up: imports, JAX compiles
        fast = rate_exploring(target, args.seconds)
        backend = rate_with_provider(target, args.seconds)
        print(f"{name:16s} {fast:13.1f} {backend:14.1f} {backend / fast:17.2f}")


if __name__ == "__main__":
    main()
