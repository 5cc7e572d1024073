"""Value recipes: a few drawn knobs from which torch fills a tensor in bulk.

Hypothesis draws a handful of knobs (a mode, a seed, a few edge-value injections) and torch's
generator fills the tensor from them, so a 1M-element tensor costs what ``torch.randn`` costs, not
a million draws. Every knob is ordered simplest-first: a shrunk recipe is a constant (toward 0,
then 1) with no injections, unless the failure needs otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Edge-value classes injected at drawn positions, in shrink order (simplest first). ``bound`` is
#: the domain's ``low`` (negative) or ``high`` bound, and +-1 where the domain is unbounded.
EDGE_CLASSES = (
    "zero",
    "one",
    "integer",
    "half",
    "neg_zero",
    "bound",
    "tiny",
    "subnormal",
    "large",
    "max",
    "exp_limit",
)
#: Opt-in classes (``values(nonfinite=True)``).
NONFINITE_CLASSES = ("inf", "nan")
#: Share of elements a sprinkled injection (position -1) overwrites.
SPRINKLE_SHARE = 0.25
#: Decades a ``spread`` fill covers: magnitudes log-uniform in [1e-4, 1e4], inside float16's range.
SPREAD_DECADES = 4.0
LN10 = math.log(10.0)
SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Values:
    """How to fill a tensor.

    ``constant`` set: every element is that value. Otherwise seeded random values: normal times
    ``scale``, or with ``spread`` magnitudes spread log-uniformly over many decades (both within
    ``low``/``high`` when given). Between two bounds a fill is uniform at scale 1 and above; a
    scale below 1 zooms it in on the point of the range nearest zero (0 itself where the range
    holds it), so drawn scales down to 1e-6 reach small magnitudes (small angles, values near a
    bound at zero) that a uniform fill over the range never draws. Then ``injections``:
    ``(position, edge class, negative)``, where position -1 means "sprinkled by the generator
    over about a quarter of the elements".
    """

    constant: float | None = None
    seed: int = 0
    scale: float = 1.0
    injections: tuple[tuple[int, str, bool], ...] = ()
    spread: bool = False


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of a complex one (the dtype itself otherwise)."""
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def edge_value(
    kind: str,
    negative: bool,
    dtype: torch.dtype,
    low: float | None,
    high: float | None,
    position: int = 0,
) -> float:
    """The float an edge class stands for at ``dtype`` (a real dtype), kept inside [low, high]."""
    fin = torch.finfo(dtype)
    if kind == "bound":
        if low is None and high is None:
            value: float | None = -1.0 if negative else 1.0
        elif negative:
            value = low if low is not None else high
        else:
            value = high if high is not None else low
        assert value is not None  # one bound at least is set
        return float(value)
    if kind == "subnormal":
        mantissa_bits = round(-math.log2(fin.eps))
        value = fin.tiny * 2.0 ** -(1 + position % mantissa_bits)
    else:
        value = {
            "zero": 0.0,
            "neg_zero": -0.0,
            "one": 1.0,
            "integer": float(2 + position % 5),
            "half": 0.5 + position % 4,
            "tiny": fin.tiny,
            "large": math.sqrt(fin.max),
            "max": fin.max,
            # just past where exp(x) (even positions) or exp(2x) (odd) overflows at the dtype:
            # where overflow guards tuned for another dtype give way (11.6 and 5.8 in float16)
            "exp_limit": math.log(fin.max) / (1 + position % 2) + 0.5,
            "inf": math.inf,
            "nan": math.nan,
        }[kind]
    if negative and kind not in ("zero", "neg_zero", "nan"):
        value = -value
    if low is not None and value < low:
        value = float(low)
    if high is not None and value > high:
        value = float(high)
    return value


def fill(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    values: Values,
    low: float | None = None,
    high: float | None = None,
) -> torch.Tensor:
    """A contiguous tensor of ``shape`` filled as ``values`` says, without a loop over elements.

    Values are made in float64 for 64-bit dtypes and in float32 for the others (float64 random
    numbers cost several times more), then cast: the same recipe gives the same numbers, rounded,
    at every dtype of 32 bits or fewer. Complex tensors get independent real and imaginary parts;
    an injection lands in one of them.
    """
    if dtype == torch.bool or not (dtype.is_floating_point or dtype.is_complex):
        return _fill_integer(shape, dtype, device, values, low, high)
    real = real_dtype(dtype)
    work = torch.float64 if real == torch.float64 else torch.float32
    parts = tuple(shape) + (2,) if dtype.is_complex else tuple(shape)
    if values.constant is not None:
        t = torch.full(parts, _clip(values.constant, low, high), dtype=work)
    else:
        t = _random(parts, work, values, low, high, torch.Generator().manual_seed(values.seed))
    fin = torch.finfo(real)
    if real != work and _reach(values, low, high) > fin.max:
        t.clamp_(-fin.max, fin.max)
    if values.injections and t.numel():
        _inject(t, values.injections, real, low, high, values.seed)
    if dtype.is_complex:
        t = torch.view_as_complex(t)
    return t.to(dtype=dtype, device=device)


def _clip(value: float, low: float | None, high: float | None) -> float:
    if low is not None and value < low:
        return float(low)
    if high is not None and value > high:
        return float(high)
    return value


def _reach(values: Values, low: float | None, high: float | None) -> float:
    """An upper bound of the magnitudes a fill draws before injections."""
    if values.constant is not None:
        return abs(values.constant)
    if low is not None and high is not None:
        return max(abs(low), abs(high))
    reach = 10.0**SPREAD_DECADES if values.spread else 10.0 * values.scale
    return reach + abs(low if low is not None else high if high is not None else 0.0)


def _random(parts, work, values: Values, low, high, g) -> torch.Tensor:
    """Seeded values from one ``torch.rand`` stream, so a tensor's first elements do not change
    when its shape shrinks (``torch.randn`` lacks that; normals come from the inverse CDF)."""
    u = torch.rand(parts, generator=g, dtype=work)
    if values.spread or (low is not None and high is not None):
        side = u < 0.5  # the first bit picks a sign or a bound, the rest a magnitude
        u.mul_(2).frac_()
    if low is not None and high is not None:
        if not values.spread:
            t = u.mul_(high - low).add_(low)
            if values.scale < 1:  # zoomed in on the point of [low, high] nearest zero
                anchor = min(max(0.0, float(low)), float(high))
                t.sub_(anchor).mul_(values.scale).add_(anchor)
            return t
        # Distances from a bound spread over decades: probes the domain's edges (log near 0).
        gap = u.mul_(-6.0 * LN10).exp_().mul_(high - low)
        return torch.where(side, gap.add(low), gap.neg().add_(high))
    if values.spread:
        t = u.mul_(2 * SPREAD_DECADES * LN10).sub_(SPREAD_DECADES * LN10).exp_()
        t = torch.where(side, t.neg(), t)
    else:
        tail = torch.finfo(work).eps
        t = u.mul_(2).sub_(1).clamp_(tail - 1, 1 - tail).erfinv_().mul_(SQRT2 * values.scale)
    if low is not None:
        return t.abs_().add_(low)
    if high is not None:
        return t.abs_().neg_().add_(high)
    return t


def _inject(t: torch.Tensor, injections, dtype, low, high, seed: int) -> None:
    flat = t.view(-1)
    n = flat.numel()
    g = None
    for position, kind, negative in injections:
        value = edge_value(kind, negative, dtype, low, high, max(position, 0))
        if position >= 0:
            flat[position % n] = value
            continue
        g = g or torch.Generator().manual_seed(seed + 1)  # apart from the values' stream
        flat.masked_fill_(torch.rand(n, generator=g, dtype=flat.dtype) < SPRINKLE_SHARE, value)


def _fill_integer(shape, dtype, device, values, low, high) -> torch.Tensor:
    """Integer and bool tensors (index-like inputs): values in ``[low, high)``, default -10..9."""
    g = torch.Generator().manual_seed(values.seed)
    if dtype == torch.bool:
        return (torch.rand(shape, generator=g) < 0.5).to(device)
    unsigned = torch.iinfo(dtype).min == 0
    lo = int(low) if low is not None else (0 if unsigned else -10)
    hi = int(high) if high is not None else 10
    hi = max(hi, lo + 1)
    if values.constant is not None:
        value = min(max(int(values.constant), lo), hi - 1)
        return torch.full(shape, value, dtype=dtype, device=device)
    return torch.randint(lo, hi, shape, generator=g, dtype=dtype).to(device)
