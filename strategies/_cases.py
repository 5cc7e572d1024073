"""Cases: everything one call of a target needs (args, requires_grad subset, cotangent recipes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st

from ._tensors import (
    DEFAULT_MAX_ELEMENTS,
    FLOAT_DTYPES,
    devices,
    layouts,
    shapes,
    values,
)
from ._values import Layout, Values, arrange, fill


@dataclass(frozen=True)
class ArgRecipe:
    """How one tensor argument was built (kept for coverage tables and diagnosis)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: str
    layout: Layout
    values: Values
    low: float | None = None
    high: float | None = None

    def build(self, **changes: Any) -> torch.Tensor:
        """The tensor, optionally with some knobs changed (``dtype=torch.float64`` ...)."""
        r = self if not changes else _replace(self, **changes)
        return arrange(fill(r.shape, r.dtype, r.device, r.values, r.low, r.high), r.layout)


@dataclass(frozen=True)
class CotangentRecipe:
    """How to build the cotangent (grad_output) for an output of whatever shape it has."""

    values: Values = Values(seed=0)
    layout: Layout = Layout()

    def build(self, like: torch.Tensor) -> torch.Tensor:
        return arrange(
            fill(tuple(like.shape), like.dtype, str(like.device), self.values), self.layout
        )


@dataclass
class Case:
    """One drawn call: the exact args, which floating args require grad, cotangent recipes."""

    args: tuple[Any, ...]
    requires_grad: tuple[bool, ...]
    cotangents: tuple[CotangentRecipe, ...]
    recipes: tuple[ArgRecipe | None, ...] = ()
    dtype: torch.dtype | None = None
    device: str = "cpu"
    notes: dict[str, Any] = field(default_factory=dict)

    def cotangent_for(self, index: int, like: torch.Tensor) -> torch.Tensor:
        recipe = self.cotangents[min(index, len(self.cotangents) - 1)]
        if index >= len(self.cotangents):
            recipe = CotangentRecipe(
                Values(seed=recipe.values.seed + index, scale=recipe.values.scale), recipe.layout
            )
        return recipe.build(like)


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def is_differentiable(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex)


@functools.cache
def cotangent_recipes(max_outputs: int = 4) -> st.SearchStrategy[tuple[CotangentRecipe, ...]]:
    """Cotangents: seeded random (never all ones), and laid out non-contiguously or expanded."""
    one = st.builds(
        CotangentRecipe,
        st.builds(
            Values,
            seed=st.integers(0, 2**31 - 1),
            scale=st.sampled_from((1.0, 0.5, 3.0, 1e-3, 1e3)),
        ),
        layouts(kinds=("contiguous", "expanded", "transposed", "sliced", "offset")),
    )
    return st.lists(one, min_size=1, max_size=max_outputs).map(tuple)


@functools.cache
def requires_grad_masks(n: int) -> st.SearchStrategy[tuple[bool, ...]]:
    """Which of ``n`` floating inputs require grad: all (simplest), or a drawn subset.

    One draw: a bitmask of inputs to drop, zero (nothing dropped) most of the time.
    """
    if n == 0:
        return st.just(())
    drops = st.one_of(st.just(0), st.just(0), st.integers(0, 2**n - 1))
    return drops.map(lambda m: tuple(not (m >> i & 1) for i in range(n)))


@st.composite
def spec_args(
    draw,
    specs: Sequence[Any],
    dtypes: Sequence[torch.dtype],
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    device: Any = None,
):
    """Args for a list of `fuzzgrad.tensor` specs: one shared float dtype and device per call."""
    dtype = draw(_sampled(tuple(dtypes)))
    dev = draw(device if device is not None else devices())
    shape_list = draw(
        shapes([s.dims if s.shape is not None else None for s in specs], max_elements=max_elements)
    )
    recipes = []
    for spec, shape in zip(specs, shape_list):
        d = draw(_sampled(spec.dtypes)) if spec.dtypes else dtype
        recipes.append(
            ArgRecipe(
                shape=shape,
                dtype=d,
                device=dev,
                layout=draw(layouts(len(shape))),
                values=draw(values()),
                low=spec.low,
                high=spec.high,
            )
        )
    return dtype, dev, tuple(recipes)


@functools.cache
def _sampled(options: tuple) -> st.SearchStrategy:
    return st.sampled_from(options)


def _target_dtypes(target) -> tuple[torch.dtype, ...]:
    return tuple(target.dtypes) if target.dtypes else FLOAT_DTYPES


def cases(target, *, max_elements: int | None = None) -> st.SearchStrategy[Case]:
    """Every call the harness makes of ``target``: args, requires_grad subset and cotangents."""
    cap = max_elements or target.options.get("max_elements", DEFAULT_MAX_ELEMENTS)
    if isinstance(target.inputs, st.SearchStrategy):
        return _strategy_cases(target.inputs)
    return _spec_cases(target.inputs, _target_dtypes(target), cap)


@st.composite
def _spec_cases(draw, specs, dtypes, cap):
    dtype, dev, recipes = draw(spec_args(specs, dtypes, cap))
    args = tuple(r.build() for r in recipes)
    wants = [is_differentiable(a) and s.requires_grad for a, s in zip(args, specs)]
    mask = iter(draw(requires_grad_masks(sum(wants))))
    rg = tuple(next(mask) if w else False for w in wants)
    return Case(args, rg, draw(cotangent_recipes()), recipes, dtype, dev)


@st.composite
def _strategy_cases(draw, inputs):
    args = draw(inputs)
    if not isinstance(args, tuple):
        args = tuple(args) if isinstance(args, list) else (args,)
    wants = [is_differentiable(a) for a in args]
    mask = iter(draw(requires_grad_masks(sum(wants))))
    rg = tuple(next(mask) if w else False for w in wants)
    floats = [a.dtype for a in args if is_differentiable(a)]
    devs = [str(a.device) for a in args if isinstance(a, torch.Tensor)]
    return Case(
        args,
        rg,
        draw(cotangent_recipes()),
        (None,) * len(args),
        floats[0] if floats else None,
        devs[0] if devs else "cpu",
    )
