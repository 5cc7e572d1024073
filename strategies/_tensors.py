"""Hypothesis strategies for tensors: shapes from spec strings, layouts, values, dtypes, devices.

What this adds on top of hypothesis-torch and ``hypothesis.extra.numpy``: those draw every element
through Hypothesis (slow for big tensors, and hypothesis-torch fills large tensors with one repeated
value) and always return contiguous tensors. Here a tensor is a few drawn knobs (see
`strategies._values`) built in bulk by torch, laid out non-contiguously on purpose, with edge values
injected at drawn positions; and shapes come from jaxtyping-style strings shared across inputs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import strategies as st

from fuzzgrad._spec import DEFAULT_SHAPE_NAME, Dim, parse_shape

from ._values import (
    EDGE_CLASSES,
    LAYOUTS,
    NONFINITE_CLASSES,
    Layout,
    Values,
    arrange,
    fill,
)

#: Sizes a free dim takes, simplest first; crosses the usual block boundaries (8, 16, 32, 64).
SIZES = (1, 2, 3, 4, 0, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64)
#: Default float dtypes, simplest (float64) first.
FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
SCALES = (1.0, 0.5, 2.0, 1e-3, 10.0, 1e3, 1e-6, 1e6)
DEFAULT_MAX_ELEMENTS = 4096
MAX_VARIADIC_RANK = 4


@functools.cache
def devices() -> st.SearchStrategy[str]:
    """``"cpu"`` first, then each accelerator this machine actually has."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return st.sampled_from(found)


@functools.cache
def values(*, nonfinite: bool = False, max_injections: int = 3) -> st.SearchStrategy[Values]:
    """Fill recipes: mostly seeded random values over a spread of scales, sometimes a constant,
    with up to ``max_injections`` edge values at drawn positions (inf/NaN only if ``nonfinite``)."""
    classes = EDGE_CLASSES + (NONFINITE_CLASSES if nonfinite else ())
    injection = st.tuples(st.integers(0, 2**16), st.sampled_from(classes), st.booleans())
    injections = st.one_of(
        st.just(()), st.lists(injection, min_size=1, max_size=max_injections).map(tuple)
    )
    # Mode 0 (what shrinking reaches) is a constant; generation mostly takes seeded random values.
    constant = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
    return st.builds(
        _make_values,
        st.integers(0, 9),
        constant,
        st.integers(0, 2**31 - 1),
        st.sampled_from(SCALES),
        injections,
    )


def _make_values(mode: int, constant: float, seed: int, scale: float, injections) -> Values:
    if mode == 0:
        return Values(constant=constant, injections=injections)
    return Values(seed=seed, scale=scale, injections=injections)


@functools.cache
def layouts(ndim: int | None = None, kinds: Sequence[str] = LAYOUTS) -> st.SearchStrategy[Layout]:
    """Memory layouts, contiguous first (see `strategies._values.LAYOUTS`).

    Parameters other than the kind are drawn only for the kind that uses them, so a contiguous
    layout costs one draw and shrinks trivially.
    """
    kinds = tuple(kinds)
    perms = st.permutations(range(ndim)).map(tuple) if ndim else st.just(())
    params = {
        "contiguous": st.just(Layout()),
        "transposed": st.builds(Layout, st.just("transposed"), perm=perms),
        "sliced": st.builds(
            Layout, st.just("sliced"), step=st.sampled_from((2, 3)), dim=st.integers(0, 7)
        ),
        "offset": st.builds(Layout, st.just("offset"), offset=st.integers(1, 5)),
        "expanded": st.builds(
            Layout,
            st.just("expanded"),
            expand=st.integers(0, 255).map(lambda m: tuple(bool(m >> i & 1) for i in range(8))),
        ),
        "channels_last": st.just(Layout("channels_last")),
    }
    return st.sampled_from(kinds).flatmap(params.__getitem__)


@st.composite
def shapes(
    draw,
    specs: Sequence[str | tuple[Dim, ...] | None],
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    fixed: dict[str, Any] | None = None,
):
    """One shape per spec string, consistent across them (equal names, equal sizes).

    ``None`` in ``specs`` means the shared default shape (any rank). Each drawn size keeps the
    tensor under ``max_elements`` (fixed sizes excepted).
    """
    sizes: dict[str, Any] = dict(fixed or {})
    out = []
    for spec in specs:
        dims = _dims_of(spec)
        out.append(tuple(_draw_shape(draw, dims, sizes, max_elements)))
    return tuple(out)


def _dims_of(spec) -> tuple[Dim, ...]:
    if spec is None:
        return (Dim(name=DEFAULT_SHAPE_NAME, variadic=True),)
    if isinstance(spec, str):
        return parse_shape(spec)
    return tuple(spec)


def _budget(shape: list[int], max_elements: int) -> int:
    return max(1, max_elements // max(1, math.prod(s for s in shape if s)))


@functools.cache
def _sizes_upto(budget: int) -> st.SearchStrategy[int]:
    return st.sampled_from([s for s in SIZES if s <= budget])


def _free_size(draw, shape: list[int], max_elements: int) -> int:
    return draw(_sizes_upto(min(_budget(shape, max_elements), SIZES[-1])))


_RANKS = st.integers(0, MAX_VARIADIC_RANK)


def _draw_shape(draw, dims, sizes, max_elements) -> list[int]:
    shape: list[int] = []
    for dim in dims:
        if dim.variadic:
            key = "*" + (dim.name or "_")
            if dim.name == "_" or key not in sizes:
                rank = draw(_RANKS)
                batch = []
                for _ in range(rank):
                    batch.append(_free_size(draw, shape + batch, max_elements))
                if dim.name != "_":
                    sizes[key] = tuple(batch)
            else:
                batch = list(sizes[key])
            if dim.broadcast and batch:
                drop = draw(st.integers(0, len(batch)))
                batch = [1 if draw(st.booleans()) else s for s in batch[drop:]]
            shape.extend(batch)
            continue
        if dim.size is not None:
            size = dim.size
        elif dim.name == "_":
            size = _free_size(draw, shape, max_elements)
        elif dim.name in sizes:
            size = sizes[dim.name]
        else:
            size = sizes[dim.name] = _free_size(draw, shape, max_elements)
        if dim.broadcast and draw(st.booleans()):
            size = 1
        shape.append(size)
    return shape


def tensors(
    shape: Any = None,
    *,
    dtype: Any = torch.float64,
    device: Any = "cpu",
    layout: Any = None,
    values: Any = None,
    low: float | None = None,
    high: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[torch.Tensor]:
    """Tensors: each knob is a value or a strategy for one.

    ``shape`` is a tuple of ints, a spec string (``"b n"``), ``None`` (any rank) or a strategy of
    tuples. ``layout`` defaults to `layouts()`, ``values`` to `values()`.
    """
    return _Tensors(shape, dtype, device, layout, values, low, high, max_elements)


class _Tensors(st.SearchStrategy):
    def __init__(self, shape, dtype, device, layout, values_, low, high, max_elements):
        super().__init__()
        self.args = (shape, dtype, device, layout, values_, low, high, max_elements)

    def __repr__(self) -> str:
        names = ("shape", "dtype", "device", "layout", "values", "low", "high", "max_elements")
        defaults = (None, torch.float64, "cpu", None, None, None, None, DEFAULT_MAX_ELEMENTS)
        parts = [
            f"{n}={a!r}" for n, a, d in zip(names, self.args, defaults) if a is not d and a != d
        ]
        return f"tensors({', '.join(parts)})"

    def do_draw(self, data):
        shape, dtype, device, layout, values_, low, high, max_elements = self.args
        draw = data.draw
        if isinstance(shape, st.SearchStrategy):
            shape = draw(shape)
        elif shape is None or isinstance(shape, str):
            shape = draw(shapes([shape], max_elements))[0]
        dtype = draw(dtype) if isinstance(dtype, st.SearchStrategy) else dtype
        device = draw(device) if isinstance(device, st.SearchStrategy) else device
        layout = draw(layout if layout is not None else layouts(len(shape)))
        if not isinstance(layout, Layout):
            raise TypeError(f"layout must be a strategies.Layout, got {layout!r}")
        vals = draw(values_ if values_ is not None else values())
        return arrange(fill(tuple(shape), dtype, device, vals, low, high), layout)
