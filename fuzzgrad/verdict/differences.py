"""Verdicts by finite differences (`fuzzgrad.oracles.numerical.Estimate`): where no reference
can judge (none is registered, or both are NaN there) and at kinks and ties.

A finite-difference estimate is only as good as its own error bound: a Function that differs
from it by less than the estimates differ from each other is not shown wrong (ambiguous,
counted), and at a kink every value between the one-sided differences is a valid subgradient.
"""

from __future__ import annotations

import math

import torch

from fuzzgrad.oracles.numerical import Estimate, along, element_estimates

#: The verdicts of `by_differences`.
PASS, FAIL, AMBIGUOUS, KINK = "pass", "fail", "ambiguous", "kink"
#: At most this many non-finite reference elements are judged by finite differences.
MAX_FD_ELEMENTS = 8


def by_differences(value: float, est: Estimate, allowed: float) -> str:
    """`PASS` where ``value`` is within ``allowed`` of the estimate; `KINK` where the one-sided
    differences disagree (a kink) and ``value`` lies between them; `AMBIGUOUS` where the
    estimates disagree with each other by more than they disagree with ``value``; else `FAIL`
    (a NaN or inf ``value`` fails wherever the estimate is finite and smooth)."""
    off = abs(value - est.value)
    if off <= allowed:  # NaN compares False
        return PASS
    if est.kink and est.between(value, allowed):
        return KINK
    if math.isfinite(off) and off <= est.error:
        return AMBIGUOUS
    return FAIL


def worst_elements(got, expected, wrt, rtol: float, atol: float) -> list[tuple[int, int]]:
    """``(input, flat index)`` of up to `MAX_FD_ELEMENTS` elements of the gradients ``got``
    that differ most (beyond ``atol + rtol * |expected|``) from ``expected``, the worst first."""
    found: list[tuple[float, int, int]] = []
    for i in wrt:
        e = expected[i]
        if not isinstance(e, torch.Tensor) or not e.numel():
            continue
        e = e.detach().to(torch.float64).reshape(-1)
        g = got[i]
        g = torch.zeros_like(e) if g is None else g.detach().to(torch.float64).reshape(-1)
        if g.shape != e.shape:
            continue
        excess = ((g - e).abs() - (atol + rtol * e.abs())).nan_to_num(math.inf, math.inf)
        top = excess.topk(min(MAX_FD_ELEMENTS, excess.numel()))
        found += [(float(v), i, int(j)) for v, j in zip(top.values, top.indices) if v > 0]
    found.sort(reverse=True)
    return [(i, j) for _, i, j in found[:MAX_FD_ELEMENTS]]


def _direction(got, expected, wrt) -> tuple[dict[int, torch.Tensor], float] | None:
    """``got - expected`` per input (None where either is not finite) and ``<got, it>``."""
    dirs, dot = {}, 0.0
    for i in wrt:
        e = expected[i]
        if not isinstance(e, torch.Tensor) or not e.numel():
            continue
        e = e.detach().to(torch.float64)
        g = got[i]
        g = torch.zeros_like(e) if g is None else g.detach().to(torch.float64)
        if g.shape != e.shape or not bool(g.isfinite().all() & e.isfinite().all()):
            return None
        dirs[i] = g - e
        dot += float((g * dirs[i]).sum())
    return (dirs, dot) if dirs else None


def off_a_tie(reference, args, wrt, cts, got, expected, rtol: float, atol: float) -> bool:
    """Whether ``got`` differs from ``expected`` at a tie (the element that differs most sits
    at a kink of ``<reference(args), cts>``) in a direction along which the function is smooth
    and ``<got, direction>`` is off its derivative there: no subgradient of the tie."""
    positions = worst_elements(got, expected, wrt, rtol, atol)[:1]
    found = _direction(got, expected, wrt)
    if not positions or found is None:
        return False
    (est,) = element_estimates(reference, args, wrt, cts, positions)
    if est is None or not est.kink:
        return False
    dirs, dot = found
    est = along(reference, args, list(dirs), cts, dirs)
    if est is None or not est.finite or est.kink:
        return False
    return by_differences(dot, est, atol + rtol * abs(est.value)) == FAIL


def at_a_tie(reference, args, wrt, cts, got, expected, rtol: float, atol: float) -> bool:
    """Whether the Function's gradients ``got`` may be another valid subgradient where the
    reference gives ``expected`` (both references took one side of a tie, the Function
    another): ``<reference(args), cts>`` has a kink along the direction ``got - expected`` in
    which they differ (its one-sided derivatives disagree: along a direction where it is
    smooth, any difference is a wrong gradient, as giving a tie's whole gradient to every tied
    entry is), and each element that differs most lies between the one-sided differences
    along it (within the tolerance ``atol + rtol * |one-sided value|``)."""
    found = _direction(got, expected, wrt)
    if found is None:
        return False
    dirs, _ = found
    est = along(reference, args, list(dirs), cts or [], dirs)
    if est is None or not est.finite or not est.kink:
        return False
    positions = worst_elements(got, expected, wrt, rtol, atol)
    for i, j in positions:  # the worst first: one outside its interval ends the search
        (est,) = element_estimates(reference, args, wrt, cts or [], [(i, j)])
        if est is None or not est.finite:
            return False
        value = float(got[i].detach().reshape(-1)[j].double())
        allowed = atol + rtol * max(abs(est.left), abs(est.right))
        if by_differences(value, est, allowed) not in (PASS, KINK):
            return False
    return bool(positions)
