"""Argument specs, and how one call's arguments are drawn from them.

`TensorSpec` (what `fuzzgrad.tensor` makes) is a Hypothesis strategy of tensors: drawn inside a
user's ``@st.composite``, ``st.tuples`` or ``st.one_of``, it keeps every fuzzing dimension
(layouts, edge values, structures) and shares with the other tensors of the same test case a
`Call`: one dtype, one device and one size per name (``"b n"`` and ``"n"`` agree), unless a spec
names its own ``dtypes``. The other specs of a mixed ``inputs=[...]`` list are `DimSpec` (a
valid dimension index of another argument), `SizeSpec` (the size of a name), `Constant` (passed
as is) and `StrategyArg` (a user's strategy, drawn in the case's `Call`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

from fuzzgrad.registry.grammar import Bound, parse_shape

from ._choices import integer, pick
from ._layouts import Layout, arrange
from ._shapes import DEFAULT_MAX_ELEMENTS, shapes
from ._structures import check_structure, impose, inject_indices, protected_dims
from ._tensors import (
    _DRAWN_KINDS,
    FLOAT_DTYPES,
    InvalidStrategyArgument,
    device_names,
    draw_layout,
    for_device,
    tiled,
    values,
)
from ._values import Values, fill


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
    structure: str | None = None
    max_cond: float | None = None

    def build(self, **changes: Any) -> torch.Tensor:
        """The tensor, optionally with some knobs changed (``dtype=torch.float64`` ...)."""
        r = dataclasses.replace(self, **changes) if changes else self
        t = fill(r.shape, r.dtype, r.device, r.values, r.low, r.high)
        if r.structure == "index":
            assert r.high is not None  # registration requires high= for indices
            t = inject_indices(t, r.values.injections, int(r.low or 0), int(r.high))
        elif r.structure is not None:
            scale = r.values.scale if r.values.constant is None else 1.0
            t = impose(r.structure, t, scale=scale, max_cond=r.max_cond, high=r.high)
        return arrange(t, r.layout, protected_dims(r.structure))


_FIELDS = ("shape", "low", "high", "dtypes", "requires_grad", "structure", "max_cond", "max_side")


class TensorSpec(st.SearchStrategy):
    """One tensor argument, made by `fuzzgrad.tensor` (see there); a strategy of tensors."""

    kind = "tensor"

    def __init__(
        self,
        shape: str | None = None,
        low: float | None = None,
        high: float | str | None = None,
        dtypes: tuple[torch.dtype, ...] | None = None,
        requires_grad: bool = True,
        structure: str | None = None,
        max_cond: float | None = None,
        max_side: int | None = None,
    ):
        super().__init__()
        self.shape, self.low, self.high, self.dtypes = shape, low, high, dtypes
        self.requires_grad, self.structure = requires_grad, structure
        self.max_cond, self.max_side = max_cond, max_side

    def _key(self) -> tuple:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TensorSpec) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [repr(self.shape)] if self.shape is not None else []
        for key in _FIELDS[1:]:
            value = getattr(self, key)
            if key == "requires_grad":
                parts += [] if value else ["requires_grad=False"]
            elif value is not None:
                parts.append(f"{key}={value!r}")
        return f"tensor({', '.join(parts)})"

    def replace(self, **changes: Any) -> TensorSpec:
        return TensorSpec(**{**{f: getattr(self, f) for f in _FIELDS}, **changes})

    @property
    def dims(self):
        """The parsed shape (empty for the shared default shape)."""
        return _parsed(self.shape) if self.shape is not None else ()

    @property
    def size_name(self) -> str | None:
        """The name bounding an index tensor's values (``high="n"``), if any."""
        return self.high if isinstance(self.high, str) else None

    def do_validate(self) -> None:
        self.dims  # noqa: B018 - raises ShapeSpecError on a bad shape string

    def do_draw(self, data) -> torch.Tensor:
        call = call_of(data)
        _check_alone(self, call.dtypes)
        t = call.tensor(data, self)[0]
        if not self.requires_grad:
            call.frozen.append(t)
        return t


@functools.lru_cache(maxsize=1024)
def _check_alone(spec: TensorSpec, dtypes) -> None:
    """What a registration checks of a spec in its ``inputs=`` list (a structure fits the
    shape and the call's ``dtypes``: a real structure takes no complex dtype), for one drawn
    inside a user's strategy: raises `InvalidRegistration`."""
    check_structure(spec, spec.dims, dtypes, "fuzzgrad.tensor: ")


@functools.lru_cache(maxsize=1024)
def _parsed(shape: str):
    return parse_shape(shape, where="fuzzgrad.tensor: ")


@dataclass(frozen=True)
class DimSpec:
    """A dimension index of argument ``of`` (made by `fuzzgrad.dim`): 0..r-1 or -r..-1 for an
    argument of rank r (a 0-d one takes 0 and -1, as torch's reductions accept); with
    ``keepdim`` one more, -(r+1)..r, an index into the shape with one more (kept) dim, as
    ``unsqueeze`` and ``stack`` take. Shrinks toward 0, then -1."""

    of: int
    keepdim: bool = False
    kind = "dim"
    requires_grad = False

    def __repr__(self) -> str:
        return f"dim({self.of}{', keepdim=True' if self.keepdim else ''})"

    def span(self, arg: Any) -> int:
        rank = arg.dim()
        return rank + 1 if self.keepdim else max(rank, 1)

    def draw(self, data, arg: Any) -> int:
        r = self.span(arg)
        k = integer(data, 0, 2 * r - 1)
        return k if k < r else r - 1 - k

    def admits(self, value: Any, arg: Any) -> bool:
        if not isinstance(arg, torch.Tensor) or isinstance(value, bool):
            return False
        r = self.span(arg)
        return isinstance(value, int) and -r <= value < r


@dataclass(frozen=True)
class SizeSpec:
    """The size of a name in this call (made by `fuzzgrad.size`), drawn like any named size."""

    name: str
    bounds: tuple = ()
    text: str = ""
    kind = "size"
    requires_grad = False

    def __repr__(self) -> str:
        return f"size({self.text or self.name!r})"


@dataclass(frozen=True)
class _Given:
    """An argument the user gave: a value, or a strategy to draw it; shown as that."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)


class Constant(_Given):
    """A plain value, passed as is (a tensor is passed as a fresh copy per call)."""

    kind = "constant"
    requires_grad = False

    def get(self) -> Any:
        v = self.value
        return v.detach().clone() if isinstance(v, torch.Tensor) else v


class StrategyArg(_Given):
    """One argument drawn by a user's Hypothesis strategy ``value`` (in the case's `Call`)."""

    kind = "strategy"
    requires_grad = True

    @property
    def strategy(self) -> Any:
        return self.value


class Call:
    """What the tensors of one call share (one per Hypothesis test case): the dtype and device
    (drawn by the first tensor that needs them, or by the case), and the size of each name."""

    def __init__(
        self,
        dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES,
        *,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        nonfinite: bool = False,
        dtype: torch.dtype | None = None,
        device: str | None = None,
        bounds: tuple[Bound, ...] = (),
    ):
        self.dtypes, self.max_elements, self.nonfinite = dtypes, max_elements, nonfinite
        self.dtype, self.device, self.bounds = dtype, device, bounds
        self.sizes: dict[str, Any] = {}
        #: the size bounds of the tensors drawn so far (of a user's strategy)
        self.seen: tuple[Bound, ...] = ()
        #: the tensors drawn by a ``requires_grad=False`` spec (never made to require grad)
        self.frozen: list[torch.Tensor] = []
        # fills of small tensors, and of tensors with a dim past 64 (`tiled`)
        self._values = (values(nonfinite=nonfinite), values(nonfinite=nonfinite, tiled=True))

    def tensor(
        self, data, spec: TensorSpec, shape=None, *, kinds: tuple[str, ...] = _DRAWN_KINDS
    ) -> tuple[torch.Tensor, ArgRecipe]:
        """Draw a tensor for ``spec`` (its shape too, unless given) and the recipe it came from;
        its layout among ``kinds``."""
        if spec.dtypes is not None:
            dtype = pick(data, spec.dtypes)
        else:
            if self.dtype is None:
                self.dtype = pick(data, self.dtypes)
            dtype = self.dtype
        if self.device is None:
            self.device = pick(data, device_names())
        dtype, device = for_device(dtype, self.device)
        if shape is None:
            plan = _alone(spec, self.max_elements, self.bounds)
            shape = plan.draw_into(data, self.sizes, self.seen)[0]
            self.seen += tuple(b for b in plan.all_bounds if b not in self.seen)
        layout = draw_layout(data, kinds, conj=dtype.is_complex)
        vals = data.draw(self._values[tiled(shape)])
        high = self.sizes[spec.high] if isinstance(spec.high, str) else spec.high
        if spec.structure == "index" and not (high or 0) > (spec.low or 0) and math.prod(shape):
            raise InvalidStrategyArgument(
                f"{spec!r}: {spec.high} is {high} in this call (an earlier tensor drew it), so "
                f"no index is valid; bound it ('{spec.high}>=1' in that tensor's shape) or draw "
                "the index tensor first."
            )
        recipe = ArgRecipe(
            shape, dtype, device, layout, vals, spec.low, high, spec.structure, spec.max_cond
        )
        return recipe.build(), recipe


def _alone(spec: TensorSpec, cap: int, bounds: tuple[Bound, ...] = ()):
    """The shapes strategy of a tensor drawn on its own (inside a user's strategy), under the
    registration's ``sizes=`` ``bounds``."""
    return shapes(
        [spec.dims if spec.shape is not None else None],
        cap,
        extra=(spec.size_name,) if spec.size_name else (),
        bounds=index_bounds([spec]) + bounds,
        max_sides=(spec.max_side,),
    )


def index_bounds(specs) -> tuple:
    """An index tensor's bounding name is at least 1 (some index must be valid)."""
    return tuple(
        Bound(s.size_name, False, 1) for s in specs if getattr(s, "size_name", None) is not None
    )


_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def call_of(data) -> Call:
    """The `Call` of a test case (its ``data``), begun with the defaults if none was."""
    call = _CALLS.get(data)
    if call is None:
        call = _CALLS[data] = Call()
    return call


def begin_call(data, **kwargs: Any) -> Call:
    """Start the `Call` of a test case (a target's dtypes, cap, drawn dtype and device)."""
    call = _CALLS[data] = Call(**kwargs)
    return call
