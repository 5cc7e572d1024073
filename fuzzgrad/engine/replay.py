"""Replaying a saved case through one property's check (used by reproducers of properties whose
check is more than a comparison: second order, forward AD, vmap, purity, determinism...)."""

from __future__ import annotations

from typing import Any

import torch

from fuzzgrad.oracles.evaluation import floating
from fuzzgrad.properties.checker import Checker, Discard, PropertyFailure
from fuzzgrad.strategies import Case, CotangentRecipe, Values


def replay(
    target,
    prop: str,
    args: list[Any],
    wrt: list[int],
    cotangents: list[Any],
    direction_seed: int = 0,
) -> int:
    """Run ``prop`` on exactly these inputs; print the verdict; 1 if it fails, else 0."""
    rg = tuple(i in wrt for i in range(len(args)))
    dtype = next((a.dtype for a in args if floating(a)), None)
    device = next((str(a.device) for a in args if isinstance(a, torch.Tensor)), "cpu")
    case = Case(
        tuple(args),
        rg,
        (CotangentRecipe(Values(seed=direction_seed)),),
        (None,) * len(args),
        dtype,
        device,
        {"fixed_cotangents": list(cotangents)},
    )
    checker = Checker(target, properties=[prop], jax_share=1.0)
    try:
        checker.check(case)
    except PropertyFailure as exc:
        print(f"FAIL ({exc.property}): {exc.message}")
        return 1
    except Discard as exc:
        print(f"DISCARDED: {exc} (outside the math's domain)")
        return 0
    print(f"PASS: property {prop!r} holds on this input (bug fixed?)")
    return 0
