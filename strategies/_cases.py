"""Cases: everything one call of a target needs (args, requires_grad subset, cotangent recipes).

A case draws, in shrink order: the call's float dtype, its device, the shapes of all inputs, then
for each input a layout and a value recipe, then which inputs require grad, then one cotangent
recipe. That is about 20 Hypothesis draws for a two-input target; the strategies are built once
per target, never inside a draw.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st

from fuzzgrad.errors import InvalidRegistration

from ._choices import integer, pick
from ._layouts import Layout, arrange
from ._shapes import DEFAULT_MAX_ELEMENTS, shapes
from ._tensors import _DRAWN_KINDS, FLOAT_DTYPES, device_names, draw_layout, for_device, values
from ._values import Values, fill

#: Scales of cotangents: never all ones, so a backward that ignores grad_output is caught.
COTANGENT_SCALES = (1.0, 0.5, 3.0, 1e-3, 1e3)
#: Layout kinds of cotangents (channels_last is left to inputs; it falls back for most outputs).
COTANGENT_KINDS = ("contiguous", "expanded", "transposed", "sliced", "offset")


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
        r = dataclasses.replace(self, **changes) if changes else self
        return arrange(fill(r.shape, r.dtype, r.device, r.values, r.low, r.high), r.layout)


@dataclass(frozen=True)
class CotangentRecipe:
    """How to build the cotangent (grad_output) for an output of whatever shape it has."""

    values: Values = Values(seed=0)
    layout: Layout = Layout()

    def build(self, like: torch.Tensor) -> torch.Tensor:
        """A cotangent with ``like``'s shape, dtype and device, laid out as ``layout`` says."""
        t = fill(tuple(like.shape), like.dtype, str(like.device), self.values)
        return arrange(t, self.layout)


@dataclass(repr=False)
class Case:
    """One drawn call: the exact args, which floating args require grad, cotangent recipes."""

    args: tuple[Any, ...]
    requires_grad: tuple[bool, ...]
    cotangents: tuple[CotangentRecipe, ...]
    recipes: tuple[ArgRecipe | None, ...] = ()
    dtype: torch.dtype | None = None
    device: str = "cpu"
    notes: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """A few lines a person reads: shapes, dtypes, strides (never the values of big tensors)."""
        from ._layouts import describe_layout

        parts = []
        for a, rg in zip(self.args, self.requires_grad):
            if isinstance(a, torch.Tensor):
                parts.append(
                    f"tensor(shape={tuple(a.shape)}, {str(a.dtype).replace('torch.', '')}, "
                    f"stride={a.stride()}, offset={a.storage_offset()}, {a.device}, "
                    f"{describe_layout(a)}{', requires_grad' if rg else ''})"
                )
            else:
                parts.append(repr(a)[:80])
        layouts_ = ", ".join(c.layout.kind for c in self.cotangents)
        return f"Case({', '.join(parts)}; cotangent layout: {layouts_})"

    @property
    def direction_seed(self) -> int:
        """The first cotangent's seed: what selects and seeds a case's higher-order checks."""
        return self.cotangents[0].values.seed if self.cotangents else 0

    def cotangent_for(self, index: int, like: torch.Tensor) -> torch.Tensor:
        """The cotangent for output ``index``; outputs past the drawn recipes reseed the last."""
        recipe = self.cotangents[min(index, len(self.cotangents) - 1)]
        if index >= len(self.cotangents):
            reseeded = dataclasses.replace(recipe.values, seed=recipe.values.seed + index)
            recipe = CotangentRecipe(reseeded, recipe.layout)
        return recipe.build(like)


def is_differentiable(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex)


class _Cotangents(st.SearchStrategy):
    def __repr__(self) -> str:
        return "cotangent_recipes()"

    def do_draw(self, data) -> tuple[CotangentRecipe, ...]:
        scale = pick(data, COTANGENT_SCALES)
        seed = integer(data, 0, 2**32 - 1)
        return (
            CotangentRecipe(Values(seed=seed, scale=scale), draw_layout(data, COTANGENT_KINDS)),
        )


@functools.cache
def cotangent_recipes() -> st.SearchStrategy[tuple[CotangentRecipe, ...]]:
    """One cotangent recipe (outputs after the first reseed it): seeded normal values at a drawn
    scale, laid out contiguously, expanded (stride 0), transposed, sliced or at an offset."""
    return _Cotangents()


@functools.cache
def requires_grad_masks(n: int) -> st.SearchStrategy[tuple[bool, ...]]:
    """Which of ``n`` floating inputs require grad, in one draw: all of them (simplest, and half
    of the draws), or a drawn subset (possibly none)."""
    if n == 0:
        return st.just(())
    return st.integers(0, 2 ** (n + 1) - 1).map(functools.partial(_mask, n))


def _mask(n: int, m: int) -> tuple[bool, ...]:
    return tuple(m >= 2**n or not (m >> i & 1) for i in range(n))


def _draw_mask(data, n: int) -> tuple[bool, ...]:
    """What `requires_grad_masks` draws, as one choice made directly."""
    return _mask(n, integer(data, 0, 2 ** (n + 1) - 1)) if n else ()


def _target_dtypes(target) -> tuple[torch.dtype, ...]:
    return tuple(target.dtypes) if target.dtypes else FLOAT_DTYPES


def _target_devices(target) -> tuple[str, ...]:
    """The devices to draw: this machine's, kept to the target's ``devices`` option's types."""
    wanted = getattr(target, "options", {}).get("devices")
    here = device_names()
    if wanted is None:
        return here
    kept = tuple(d for d in here if d.split(":")[0] in wanted)
    if not kept:
        raise InvalidRegistration(
            f"fuzzgrad: {getattr(target, 'name', '?')} runs only on {', '.join(wanted)}, and this "
            f"machine has {', '.join(here)}: fuzz it where one of them exists."
        )
    return kept


class _SpecCases(st.SearchStrategy):
    """Cases for a target whose inputs are `fuzzgrad.tensor` specs."""

    def __init__(self, target, specs: tuple, dtypes: tuple, cap: int, nonfinite: bool):
        super().__init__()
        self.target_name = getattr(target, "name", "?")
        self.specs = specs
        self.dtypes = dtypes
        self._devices = _target_devices(target)
        self._shapes = shapes([s.dims if s.shape is not None else None for s in specs], cap)
        self._arg_dtypes = tuple(tuple(s.dtypes) if s.dtypes else None for s in specs)
        self._layouts = _DRAWN_KINDS
        self._values = values(nonfinite=nonfinite)
        self._cotangents = cotangent_recipes()

    def __repr__(self) -> str:
        return f"cases({self.target_name})"

    def do_draw(self, data) -> Case:
        dtype, dev = for_device(pick(data, self.dtypes), pick(data, self._devices))
        recipes = []
        for spec, shape, own in zip(self.specs, data.draw(self._shapes), self._arg_dtypes):
            d = for_device(pick(data, own), dev)[0] if own is not None else dtype
            layout, vals = draw_layout(data, self._layouts), data.draw(self._values)
            recipes.append(ArgRecipe(shape, d, dev, layout, vals, spec.low, spec.high))
        args = tuple(r.build() for r in recipes)
        wants = [is_differentiable(a) and s.requires_grad for a, s in zip(args, self.specs)]
        mask = iter(_draw_mask(data, sum(wants)))
        rg = tuple(next(mask) if w else False for w in wants)
        return Case(args, rg, data.draw(self._cotangents), tuple(recipes), dtype, dev)


class _StrategyCases(st.SearchStrategy):
    """Cases for a target whose inputs are a strategy of the whole argument tuple."""

    def __init__(self, inputs: st.SearchStrategy):
        super().__init__()
        self.inputs = inputs
        self._cotangents = cotangent_recipes()

    def __repr__(self) -> str:
        return f"cases(inputs={self.inputs!r})"

    def do_draw(self, data) -> Case:
        args = data.draw(self.inputs)
        if not isinstance(args, tuple):
            args = tuple(args) if isinstance(args, list) else (args,)
        wants = [is_differentiable(a) for a in args]
        mask = iter(_draw_mask(data, sum(wants)))
        rg = tuple(next(mask) if w else False for w in wants)
        floats = [a.dtype for a in args if is_differentiable(a)]
        devs = [str(a.device) for a in args if isinstance(a, torch.Tensor)]
        return Case(
            args,
            rg,
            data.draw(self._cotangents),
            (None,) * len(args),
            floats[0] if floats else None,
            devs[0] if devs else "cpu",
        )


def cases(target, *, max_elements: int | None = None) -> st.SearchStrategy[Case]:
    """Every call the harness makes of ``target``: args, requires_grad subset and cotangents.

    Reads ``target.dtypes`` (default `FLOAT_DTYPES`; complex ones are opt-in there), and the
    options ``max_elements`` (per input, default `DEFAULT_MAX_ELEMENTS`) and ``nonfinite``
    (inject inf/NaN too).
    """
    if isinstance(target.inputs, st.SearchStrategy):
        return _StrategyCases(target.inputs)
    cap = max_elements or target.options.get("max_elements", DEFAULT_MAX_ELEMENTS)
    nonfinite = bool(target.options.get("nonfinite", False))
    return _SpecCases(target, tuple(target.inputs), _target_dtypes(target), cap, nonfinite)
