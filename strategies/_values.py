"""Recipes: small drawn records from which tensors are built in bulk.

Hypothesis draws a handful of knobs (a seed, a scale, a few edge-value injections, a layout) and
torch builds the tensor from them, so a 1M-element tensor costs what torch's generator costs, not
a million draws. Every knob is ordered simplest-first, so a shrunk case is a constant or seed-0
tensor, contiguous, with no injections, unless the failure needs otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Edge-value classes injected at drawn positions. Order is shrink order (simplest first).
EDGE_CLASSES = (
    "zero",
    "one",
    "integer",
    "half",
    "neg_zero",
    "low",
    "high",
    "tiny",
    "subnormal",
    "large",
    "max",
)
NONFINITE_CLASSES = ("inf", "neg_inf", "nan")

#: Layout kinds, simplest first.
LAYOUTS = ("contiguous", "transposed", "sliced", "offset", "expanded", "channels_last")


@dataclass(frozen=True)
class Values:
    """How to fill a tensor: a constant, or seeded random values times a scale, plus injections."""

    constant: float | None = None  # when set, every element is this value
    seed: int = 0
    scale: float = 1.0
    injections: tuple[tuple[int, str, bool], ...] = ()  # (position, edge class, negative)


@dataclass(frozen=True)
class Layout:
    """How a tensor sits in memory: a kind plus its parameters (see `LAYOUTS`)."""

    kind: str = "contiguous"
    perm: tuple[int, ...] = ()
    step: int = 2
    offset: int = 1
    dim: int = 0
    expand: tuple[bool, ...] = ()


def edge_value(
    kind: str,
    negative: bool,
    dtype: torch.dtype,
    low: float | None,
    high: float | None,
    position: int,
) -> float:
    """The float that an edge class stands for at this dtype, kept inside ``[low, high]``."""
    if kind == "low" and low is not None:
        return low
    if kind == "high" and high is not None:
        return high
    fin = torch.finfo(dtype)
    value = {
        "zero": 0.0,
        "neg_zero": -0.0,
        "one": 1.0,
        "integer": float(2 + position % 5),
        "half": 0.5 + position % 4,
        "tiny": fin.tiny,
        "subnormal": fin.tiny * fin.eps if fin.tiny * fin.eps > 0 else fin.tiny / 2,
        "large": math.sqrt(fin.max),
        "max": fin.max,
        "low": -1.0,
        "high": 1.0,
        "inf": math.inf,
        "neg_inf": -math.inf,
        "nan": math.nan,
    }[kind]
    if negative and kind not in ("neg_zero", "neg_inf", "nan"):
        value = -value
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value


def fill(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: str,
    values: Values,
    low: float | None = None,
    high: float | None = None,
) -> torch.Tensor:
    """A contiguous tensor of ``shape`` filled as ``values`` says (no Python loop over elements)."""
    if not dtype.is_floating_point and not dtype.is_complex:
        return _fill_integer(shape, dtype, device, values, low, high)
    if values.constant is not None:
        t = torch.full(shape, values.constant, dtype=torch.float64)
    else:
        g = torch.Generator().manual_seed(values.seed)
        if low is not None and high is not None:
            t = low + (high - low) * torch.rand(shape, generator=g, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) * values.scale
            if low is not None:
                t = low + t.abs()
            elif high is not None:
                t = high - t.abs()
    n = t.numel()
    if n and values.injections:
        flat = t.view(-1)
        for position, kind, negative in values.injections:
            flat[position % n] = edge_value(kind, negative, dtype, low, high, position)
    if dtype != torch.float64:
        fin = torch.finfo(dtype)
        t = torch.where(t.isfinite(), t.clamp(-fin.max, fin.max), t)
    return t.to(dtype=dtype, device=device)


def _fill_integer(shape, dtype, device, values, low, high) -> torch.Tensor:
    if dtype == torch.bool:
        g = torch.Generator().manual_seed(values.seed)
        return (torch.rand(shape, generator=g) < 0.5).to(device)
    lo = int(low) if low is not None else -10
    hi = int(high) if high is not None else 10
    if values.constant is not None:
        return torch.full(
            shape, min(max(int(values.constant), lo), hi - 1), dtype=dtype, device=device
        )
    g = torch.Generator().manual_seed(values.seed)
    return torch.randint(lo, hi, shape, generator=g, dtype=dtype).to(device)


def _garbage(dtype: torch.dtype) -> float:
    return math.nan if dtype.is_floating_point else -7


def arrange(t: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Lay a contiguous tensor out in memory as ``layout`` says, keeping its values.

    ``expanded`` is the exception: it repeats the first slice along the expanded dims (that is
    what a stride-0 tensor can hold). Views are cut from larger NaN-filled bases, so a Function
    that reads outside its view sees NaN.
    """
    kind = effective_kind(t.shape, layout)
    if kind == "contiguous":
        return t
    if kind == "transposed":
        perm = layout.perm if _is_shuffle(layout.perm, t.dim()) else tuple(range(t.dim()))[::-1]
        inverse = [0] * len(perm)
        for i, p in enumerate(perm):
            inverse[p] = i
        return t.permute(perm).contiguous().permute(inverse)
    if kind == "sliced":
        dim = layout.dim % t.dim()
        step = max(layout.step, 2)
        big = list(t.shape)
        big[dim] = t.shape[dim] * step + 1
        base = torch.full(big, _garbage(t.dtype), dtype=t.dtype, device=t.device)
        view = base.narrow(dim, 1, big[dim] - 1)[(slice(None),) * dim + (slice(None, None, step),)]
        view.copy_(t)
        return view
    if kind == "offset":
        offset = max(layout.offset, 1)
        base = torch.full(
            (t.numel() + 2 * offset,), _garbage(t.dtype), dtype=t.dtype, device=t.device
        )
        view = base[offset : offset + t.numel()].view(t.shape)
        view.copy_(t)
        return view
    if kind == "expanded":
        dims = [d for d in range(t.dim()) if t.shape[d] > 1]
        chosen = [d for d, e in zip(dims, layout.expand) if e] or dims[:1]
        index = tuple(slice(0, 1) if d in chosen else slice(None) for d in range(t.dim()))
        return t[index].contiguous().expand(t.shape)
    if kind == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    raise ValueError(f"unknown layout kind {layout.kind!r}")


def _is_shuffle(perm: tuple[int, ...], ndim: int) -> bool:
    return len(perm) == ndim and sorted(perm) == list(range(ndim)) and list(perm) != sorted(perm)


def effective_kind(shape: torch.Size | tuple[int, ...], layout: Layout) -> str:
    """The layout kind that can actually be realised for ``shape`` (a 0-d tensor is contiguous)."""
    ndim = len(shape)
    numel = math.prod(shape)
    kind = layout.kind
    if numel == 0:
        return "contiguous"
    if ndim == 0:
        return "offset" if kind == "offset" else "contiguous"
    if kind == "channels_last" and (ndim != 4 or shape[1] == 1 or shape[2] * shape[3] == 1):
        kind = "transposed"
    if kind == "transposed" and sum(s > 1 for s in shape) < 2:
        kind = "sliced"
    if kind == "expanded" and not any(s > 1 for s in shape):
        kind = "offset"
    return kind


def describe_layout(t: torch.Tensor) -> str:
    """Classify a tensor's memory layout from its strides (for reports and coverage tables)."""
    if t.dim() == 0 or t.numel() <= 1:
        return "contiguous" if t.storage_offset() == 0 else "offset"
    if any(st == 0 and s > 1 for st, s in zip(t.stride(), t.shape)):
        return "expanded"
    if (
        t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
        and not t.is_contiguous()
    ):
        return "channels_last"
    if t.is_contiguous():
        return "contiguous" if t.storage_offset() == 0 else "offset"
    if _dense(t):
        return "transposed" if t.storage_offset() == 0 else "offset"
    return "sliced"


def _dense(t: torch.Tensor) -> bool:
    """Whether the elements fill a gap-free block of memory in some order."""
    expected = 1
    for stride, size in sorted((st, s) for st, s in zip(t.stride(), t.shape) if s > 1):
        if stride != expected:
            return False
        expected *= size
    return True
