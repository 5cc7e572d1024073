"""Finite differences: the oracle of last resort (targets with no reference at all, and elements
where both references are NaN or inf), and the judge of kinks and ties.

A finite-difference verdict carries its own error bound. Each estimate is taken at several step
sizes, scaled to the magnitude of the inputs: where the function is smooth, central differences
at steps ``h`` and ``h/2`` differ by about their truncation error, and their Richardson
extrapolation is better than either; where its evaluation is noisy (rounding amplified by a
near-singular matrix, say), they differ by about that noise. Either way the spread of the
estimates is what they can vouch for (`Estimate.error`). One-sided differences at the point,
at two steps, tell a kink (their gap stays as the step halves) from curvature (it halves too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Relative step of the estimates (about the cube root of float64's eps: the best central
#: difference for a smooth function), times the magnitude of the input (`step_for`).
STEP = 6e-6
#: How far the estimates may differ relative to their size for `Estimate.smooth`.
SMOOTH = 1e-3
#: Relative rounding of one evaluation of ``<fn(args), cotangents>`` in float64 (a few eps of
#: its value), divided by the step: the rounding part of an estimate's error.
ROUNDING = 1e-12
#: The one-sided differences' gap must shrink by at least this factor as the step halves for the
#: function to count as smooth (curvature halves it; a kink keeps it).
SHRINKS = 0.75
#: The smallest magnitude a step is relative to (float64's normal range, with room for h/4).
TINY_SIZE = 1e-290


@dataclass(frozen=True)
class Estimate:
    """A derivative by finite differences, with what the differences themselves can vouch for.

    ``value`` is the Richardson extrapolation of central differences at two steps, ``error`` a
    bound on its error (the spread of the estimates at three steps, plus rounding over the
    smallest step), and ``left``, ``right`` the one-sided differences at the point (at the
    smaller step): at a kink every value between them is a valid (sub)derivative."""

    value: float
    error: float
    left: float
    right: float
    kink: bool
    #: The rounding part of ``error``: estimates closer than this agree.
    error_floor: float = 0.0
    #: No output element changed at any step (`widened` then tries a wider step).
    flat: bool = False

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.error, self.left, self.right))

    @property
    def smooth(self) -> bool:
        """Whether the differences show the function smooth here: no kink, and estimates that
        agree with each other (to `SMOOTH` of their size)."""
        bound = SMOOTH * abs(self.value) + self.error_floor
        return self.finite and not self.kink and self.error <= bound

    def between(self, value: float, slack: float) -> bool:
        """Whether ``value`` lies between the one-sided differences, within ``slack`` (plus
        their own error)."""
        lo, hi = sorted((self.left, self.right))
        pad = slack + self.error
        return lo - pad <= value <= hi + pad

    def describe(self) -> str:
        """The estimate as a report shows it: value, bound, and a kink's one-sided values."""
        text = f"{self.value:.6g} (+-{self.error:.2g})"
        if self.kink:
            text += f", one-sided {self.left:.6g} and {self.right:.6g} (a kink)"
        return text


def step_for(x: float, scale: float) -> float:
    """The step for an element ``x``: `STEP` relative to ``|x|`` (a step of 6e-6 at an input
    of 1e-30 would measure another function), or, at 0, relative to ``scale``, the largest
    magnitude of the inputs (1 where every input is 0); never below `TINY_SIZE` (a subnormal
    input's relative step would round to 0)."""
    size = abs(x) if x != 0 else scale
    return STEP * (max(size, TINY_SIZE) if size > 0 else 1.0)


def estimate(phi, h: float) -> Estimate | None:
    """An `Estimate` of the derivative at 0 of ``t -> phi(t).sum()``, where ``phi(t)`` is the
    float64 vector of weighted output elements at step ``t`` (differences are taken elementwise
    before summing, so outputs the step leaves alone add no rounding), from steps ``h``,
    ``h/2``, ``h/4``; None where an evaluation raises or is not finite, or the step is 0."""
    if not h / 4 > 0 or not math.isfinite(h):
        return None
    values = {}
    for t in (0.0, h, -h, h / 2, -h / 2, h / 4, -h / 4):
        try:
            values[t] = phi(t).to(torch.float64).reshape(-1)
        except Exception:  # noqa: BLE001 - a step left the math's domain
            return None
        if not bool(values[t].isfinite().all()):
            return None
    f0 = values[0.0]
    changed = torch.zeros_like(f0, dtype=torch.bool)
    for v in values.values():
        changed |= v != f0

    def diff(a: float, b: float) -> float:
        return float((values[a] - values[b]).sum())

    def central(t: float) -> float:
        return diff(t, -t) / (2 * t)

    d1, d2, d3 = central(h), central(h / 2), central(h / 4)
    size = max(float(v[changed].abs().sum()) for v in values.values()) if changed.any() else 0.0
    noise = ROUNDING * size / (h / 4)
    spread = max(abs(d1 - d2), abs(d2 - d3))
    # right minus left one-sided difference, at steps h and h/2: curvature halves it, a kink not
    gap = [(diff(t, 0.0) - diff(0.0, -t)) / t for t in (h, h / 2)]
    kink = abs(gap[1]) > SHRINKS * abs(gap[0]) + 4 * noise and abs(gap[1]) > 2 * (spread + noise)
    t = h / 2
    return Estimate(
        value=(4 * d2 - d1) / 3,
        error=spread + noise,
        left=diff(0.0, -t) / t,
        right=diff(t, 0.0) / t,
        kink=kink,
        error_floor=noise,
        flat=not bool(changed.any()),
    )


def widened(phi, h: float, wide: float) -> Estimate | None:
    """`estimate` at step ``h``, or, where no output changed at all there, at the wider step
    ``wide`` (`STEP` of an input of size 1). A step relative to a tiny input (1e-38 moves by
    1e-43) is below the resolution of a forward that computes coarser than that (a bisection
    resolves 1e-18 at best): a flat output there says nothing about the derivative, and read
    as an exact 0 it called a correct backward wrong. Where the wider step leaves the output
    flat too, the derivative is 0."""
    found = estimate(phi, h)
    if found is None or not found.flat or not wide > h:
        return found
    return estimate(phi, wide) or found


def _weighted(fn, cts):
    """``args -> `` the float64 vector of ``fn(args)``'s output elements times ``cts``."""

    def weighted(shifted) -> torch.Tensor:
        with torch.no_grad():
            outs = fn(*shifted)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        parts = [
            (o.to(torch.float64) * c).reshape(-1)
            for o, c in zip(outs, cts)
            if c is not None and isinstance(o, torch.Tensor)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    return weighted


def _wide(args) -> list:
    """Contiguous float64 copies of the floating inputs (a step is written through
    ``reshape(-1)``: a transposed clone keeps its strides, and the step would go into a copy)."""
    return [
        a.detach().to(torch.float64).clone(memory_format=torch.contiguous_format)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else a
        for a in args
    ]


def _scale(base, wrt) -> float:
    """The largest finite magnitude of the inputs differentiated (0 if all are 0)."""
    sizes = [
        float(base[i].abs().nan_to_num(0.0, 0.0, 0.0).amax())
        for i in wrt
        if isinstance(base[i], torch.Tensor) and base[i].numel()
    ]
    return max(sizes, default=0.0)


def numerical_vjp(
    fn, args, wrt, cotangents, *, directions: int = 2, seed: int = 0
) -> list[tuple[dict[int, torch.Tensor], Estimate | None, float]]:
    """Finite differences of ``<fn(args), cotangents>`` along random directions.

    Returns ``(direction, estimate, scale)`` per direction (``direction``: input index to its
    part; ``estimate``: an `Estimate`, None where the function is not finite nearby;
    ``scale``: ``|<fn(args), cotangents>| + 1``); the VJP ``g`` is right when ``<g,
    direction>`` matches the estimate. Used for targets without any reference."""
    gen = torch.Generator().manual_seed(seed)
    base = _wide(args)
    cts = [c.detach().to(torch.float64) if c is not None else None for c in cotangents]
    f0 = float(_weighted(fn, cts)(base).sum())
    results = []
    for _ in range(directions):
        dirs = {i: torch.randn(base[i].shape, generator=gen, dtype=torch.float64) for i in wrt}
        results.append((dirs, along(fn, args, wrt, cotangents, dirs), abs(f0) + 1.0))
    return results


def along(fn, args, wrt, cotangents, dirs: dict[int, torch.Tensor]) -> Estimate | None:
    """An `Estimate` of the derivative of ``<fn(args), cotangents>`` along the direction
    ``dirs`` (input index to its part), the step scaled so that the inputs move by `STEP`
    of their largest magnitude; None where the function is not finite nearby."""
    base = _wide(args)
    cts = [c.detach().to(torch.float64) if c is not None else None for c in cotangents]
    weighted = _weighted(fn, cts)
    length = max((float(d.abs().amax()) for d in dirs.values() if d.numel()), default=0.0)
    if not length > 0 or not math.isfinite(length):
        return None

    def phi(t: float) -> torch.Tensor:
        moved = list(base)
        for i, d in dirs.items():
            moved[i] = base[i] + t * d.to(torch.float64)
        return weighted(moved)

    return widened(phi, step_for(0.0, _scale(base, wrt)) / length, STEP / length)


def element_estimates(fn, args, wrt, cotangents, positions) -> list[Estimate | None]:
    """An `Estimate`, in float64, of the derivative of ``<fn(args), cotangents>`` with respect
    to each single element of ``positions`` (``(argument index, flat index)`` pairs); None where
    the function is not finite around it. Costs six evaluations of ``fn`` per position: for a
    few elements only."""
    base = _wide(args)
    cts = [c.detach().to(torch.float64) if c is not None else None for c in cotangents]
    weighted = _weighted(fn, cts)
    scale = _scale(base, wrt)
    out: list[Estimate | None] = []
    for i, j in positions:
        x = base[i]
        if i not in wrt or not isinstance(x, torch.Tensor):
            out.append(None)
            continue
        value = float(x.reshape(-1)[j])

        def phi(t: float, i=i, j=j, x=x, value=value) -> float:
            moved = list(base)
            moved[i] = x.clone()
            moved[i].reshape(-1)[j] = value + t
            return weighted(moved)

        out.append(widened(phi, step_for(value, scale), STEP * max(1.0, abs(value))))
    return out


def grad_elements(fn, args, wrt, cotangents, positions) -> list[float | None]:
    """`element_estimates`' values where the differences show the function smooth (else None)."""
    return [
        e.value if e is not None and e.smooth else None
        for e in element_estimates(fn, args, wrt, cotangents, positions)
    ]
