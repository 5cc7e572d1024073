"""Hypothesis strategies for tensors: dtypes, devices, layouts, value recipes, and `tensors`.

What this adds on top of hypothesis-torch and ``hypothesis.extra.numpy``: their array strategies
draw every element through Hypothesis (slow for big tensors; hypothesis-torch fills large ones
with one repeated value) and always return contiguous tensors, and their shape strategies know
nothing of names shared across inputs. Here a tensor is a handful of drawn knobs, built in bulk by
torch, laid out non-contiguously on purpose (`strategies._layouts`), with edge values injected at
drawn positions (`strategies._values`), its shape from a jaxtyping-style string
(`strategies._shapes`). From hypothesis-torch we take device discovery: it finds CUDA and MPS
lazily, and there is nothing to draw where neither exists.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzzgrad.errors import FuzzgradError

from ._choices import integer, pick
from ._layouts import LAYOUTS, PARAM_KINDS, Layout, arrange
from ._shapes import DEFAULT_MAX_ELEMENTS, LONG_SIDE, shapes
from ._values import EDGE_CLASSES, NONFINITE_CLASSES, Values, fill

#: Default float dtypes, simplest (float64) first.
FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
#: Opt-in complex dtypes, simplest first.
COMPLEX_DTYPES = (torch.complex128, torch.complex64)
#: Scales of normal fills, simplest first; the last mode spreads magnitudes over decades.
SCALES = (1.0, 0.5, 2.0, 1e-3, 10.0, 1e3, 1e-6, 1e6)
_MODES = ("constant", *SCALES, "spread")
#: The modes of a tensor with a side past `LONG_SIDE`, constant last: such a size is drawn to
#: reach tile and block bugs, which a constant fill (every tile alike) hides, and Hypothesis draws
#: a choice's first option far more often than the others (about 40% of fills were constants).
#: Such a tensor's fill shrinks toward normal values at scale 1; small tensors draw as before.
_TILED_MODES = (*SCALES, "spread", "constant")
#: Layout kinds as drawn: contiguous twice, so plain inputs stay common (shrinks to the first).
_DRAWN_KINDS = ("contiguous", *LAYOUTS)
_MAX_PARAM = 255
_MAX_SEED = 2**32 - 1
_CONSTANTS = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
#: An injection's place: bit 0 its sign, bits 1-2 == 3 sprinkled, the rest its position.
_MAX_WHERE = 2**19 - 1


class InvalidStrategyArgument(FuzzgradError, InvalidArgument):
    """A knob given to a fuzzgrad strategy is not valid (also a Hypothesis ``InvalidArgument``)."""


@functools.cache
def dtypes(*, complex: bool = False) -> st.SearchStrategy[torch.dtype]:
    """The float dtypes, float64 first; with ``complex=True`` complex128/complex64 after them."""
    return st.sampled_from(FLOAT_DTYPES + (COMPLEX_DTYPES if complex else ()))


@functools.cache
def device_names() -> tuple[str, ...]:
    """``"cpu"`` first, then each accelerator this machine has."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return tuple(found)


@functools.cache
def devices() -> st.SearchStrategy[str]:
    """``"cpu"`` first, then each accelerator this machine has (nothing to draw where none)."""
    return st.sampled_from(device_names())


def draw_layout(data, kinds: tuple[str, ...], conj: bool = False) -> Layout:
    """A `Layout` among ``kinds``: one choice, two for kinds with a parameter; with ``conj``
    (a complex tensor) one more, a lazy conjugate view one time in four."""
    kind = pick(data, kinds)
    param = integer(data, 0, _MAX_PARAM) if kind in PARAM_KINDS else 0
    return Layout(kind, param, conj and data.draw_boolean(0.25))


class _Layouts(st.SearchStrategy):
    def __init__(self, kinds: tuple[str, ...]):
        super().__init__()
        self.kinds = kinds

    def __repr__(self) -> str:
        return "layouts()" if self.kinds == _DRAWN_KINDS else f"layouts(kinds={self.kinds!r})"

    def do_draw(self, data) -> Layout:
        return draw_layout(data, self.kinds)


@functools.cache
def layouts(kinds: Sequence[str] | None = None) -> st.SearchStrategy[Layout]:
    """Memory layouts, contiguous first (see `Layout`); one draw, two for kinds with a parameter."""
    kinds = _DRAWN_KINDS if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in LAYOUTS]
    if unknown or not kinds:
        raise InvalidStrategyArgument(f"layouts(kinds={kinds!r}): kinds must be among {LAYOUTS}.")
    return _Layouts(kinds)


def tiled(shape: Sequence[int]) -> bool:
    """Whether a tensor of ``shape`` has a side past the small sizes (and any elements)."""
    return max(shape, default=0) > LONG_SIDE and 0 not in shape


class _Values(st.SearchStrategy):
    def __init__(self, nonfinite: bool, max_injections: int, tiled: bool = False):
        super().__init__()
        self.nonfinite, self.max_injections, self.tiled = nonfinite, max_injections, tiled
        self._classes = EDGE_CLASSES + (NONFINITE_CLASSES if nonfinite else ())
        self._modes = _TILED_MODES if tiled else _MODES

    def __repr__(self) -> str:
        args = ["nonfinite=True"] if self.nonfinite else []
        args += [f"max_injections={self.max_injections}"] if self.max_injections != 3 else []
        args += ["tiled=True"] if self.tiled else []
        return f"values({', '.join(args)})"

    def do_draw(self, data) -> Values:
        mode = pick(data, self._modes)
        if mode == "constant":
            head: dict[str, Any] = {"constant": data.draw(_CONSTANTS)}
        else:
            head = {"seed": integer(data, 0, _MAX_SEED)}
            head.update(spread=True) if mode == "spread" else head.update(scale=mode)
        # Half of the recipes inject nothing; the rest 1..max_injections values.
        most = self.max_injections
        count = max(0, data.draw_integer(0, 2 * most - 1) - most + 1) if most else 0
        injections = []
        for _ in range(count):
            kind = pick(data, self._classes)
            where = integer(data, 0, _MAX_WHERE)
            position = -1 if (where >> 1) & 3 == 3 else where >> 3
            injections.append((position, kind, bool(where & 1)))
        return Values(injections=tuple(injections), **head)


@functools.cache
def values(
    *, nonfinite: bool = False, max_injections: int = 3, tiled: bool = False
) -> st.SearchStrategy[Values]:
    """Fill recipes (see `Values`): a constant or seeded values (normal at a drawn scale, or spread
    over decades), plus up to ``max_injections`` edge values (inf/NaN only if ``nonfinite``).

    ``tiled=True`` (for a tensor with a side past 64, see `tiled`) draws the same recipes with
    the constant last in shrink order, so a long row is seldom one repeated value.
    """
    if not isinstance(max_injections, int) or max_injections < 0:
        raise InvalidStrategyArgument(f"values(max_injections={max_injections!r}) must be >= 0.")
    return _Values(bool(nonfinite), max_injections, bool(tiled))


def tensors(
    shape: Any = None,
    *,
    dtype: Any = None,
    device: Any = None,
    layout: Any = None,
    values: Any = None,
    low: float | None = None,
    high: float | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> st.SearchStrategy[torch.Tensor]:
    """Tensors; each knob is a value or a strategy for one, ``None`` meaning every choice.

    ``shape``: a tuple of ints, a spec string (``"b n"``, ``"*batch 3"``, ``""`` for 0-d), or
    ``None`` for any rank up to 4. ``dtype``: default `dtypes()`. ``device``: default `devices()`.
    ``layout``: a `Layout` or kind name, default `layouts()`. ``values``: a `Values` recipe,
    default `values()`. ``low``/``high`` bound the values, edge values included.
    """
    return _Tensors(shape, dtype, device, layout, values, low, high, max_elements)


_KNOBS = ("shape", "dtype", "device", "layout", "values", "low", "high", "max_elements")


class _Tensors(st.SearchStrategy):
    def __init__(self, shape, dtype, device, layout, values_, low, high, max_elements):
        super().__init__()
        self.args = (shape, dtype, device, layout, values_, low, high, max_elements)
        if low is not None and high is not None and not low < high:
            raise InvalidStrategyArgument(f"tensors(low={low!r}, high={high!r}): need low < high.")
        if shape is None or isinstance(shape, str):
            spec = shape
            shape = shapes([spec], max_elements).map(lambda s: s[0])
        self.knobs = {
            "shape": shape,
            "dtype": dtypes() if dtype is None else dtype,
            "device": devices() if device is None else device,
            "layout": layouts() if layout is None else layout,
            "values": values() if values_ is None else values_,
        }
        concrete = {k: v for k, v in self.knobs.items() if not isinstance(v, st.SearchStrategy)}
        self.concrete = _checked(concrete)

    def __repr__(self) -> str:
        defaults = (None, None, None, None, None, None, None, DEFAULT_MAX_ELEMENTS)
        parts = [repr(self.args[0])] if self.args[0] is not None else []
        parts += [
            f"{n}={a!r}" for n, a, d in zip(_KNOBS[1:], self.args[1:], defaults[1:]) if a != d
        ]
        return f"tensors({', '.join(parts)})"

    def do_draw(self, data) -> torch.Tensor:
        drawn: dict[str, Any] = {}
        for k, v in self.knobs.items():
            if k in self.concrete:
                continue
            if k == "values" and self.args[4] is None:  # the default knows the shape
                known = self.concrete if "shape" in self.concrete else _checked(drawn)
                v = values(tiled=tiled(known["shape"]))
            drawn[k] = data.draw(v)
        knobs = {**self.concrete, **_checked(drawn)}
        low, high = self.args[5], self.args[6]
        dtype, device = for_device(knobs["dtype"], knobs["device"])
        t = fill(knobs["shape"], dtype, device, knobs["values"], low, high)
        return arrange(t, knobs["layout"])


def for_device(dtype: torch.dtype, device: str) -> tuple[torch.dtype, str]:
    """MPS has no 64-bit floats: there the 64-bit dtypes become their 32-bit ones."""
    if str(device).startswith("mps"):
        dtype = {torch.float64: torch.float32, torch.complex128: torch.complex64}.get(dtype, dtype)
    return dtype, device


def _checked(knobs: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise concrete knobs, naming the bad one and what it should be."""
    out = dict(knobs)
    if "shape" in knobs:
        shape = knobs["shape"]
        if not (isinstance(shape, (tuple, list)) and all(_is_size(s) for s in shape)):
            _bad("shape", shape, "a tuple of non-negative ints, a spec string, or a strategy")
        out["shape"] = tuple(int(s) for s in shape)
    if "dtype" in knobs and not isinstance(knobs["dtype"], torch.dtype):
        _bad("dtype", knobs["dtype"], "a torch.dtype such as torch.float32, or a strategy")
    if "device" in knobs:
        try:
            out["device"] = str(torch.device(knobs["device"]))
        except (RuntimeError, TypeError):
            _bad("device", knobs["device"], "a device such as 'cpu' or 'cuda', or a strategy")
    if "layout" in knobs:
        layout = knobs["layout"]
        layout = Layout(layout) if isinstance(layout, str) else layout
        if not isinstance(layout, Layout) or layout.kind not in LAYOUTS:
            _bad("layout", knobs["layout"], f"a Layout or one of {LAYOUTS}, or a strategy")
        out["layout"] = layout
    if "values" in knobs and not isinstance(knobs["values"], Values):
        _bad("values", knobs["values"], "a fuzzgrad.strategies.Values recipe, or a strategy")
    return out


def _is_size(s: Any) -> bool:
    return isinstance(s, int) and not isinstance(s, bool) and s >= 0


def _bad(knob: str, value: Any, want: str) -> None:
    raise InvalidStrategyArgument(f"tensors({knob}={value!r}): {knob} must be {want}.")
