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
from hypothesis.errors import UnsatisfiedAssumption

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.registry.grammar import Bound

from ._choices import integer, pick
from ._layouts import Layout, arrange
from ._shapes import DEFAULT_MAX_ELEMENTS, shapes
from ._spec import ArgRecipe, begin_call, index_bounds
from ._tensors import _DRAWN_KINDS, FLOAT_DTYPES, device_names, draw_layout, for_device
from ._values import Values, fill

#: Scales of cotangents: never all ones, so a backward that ignores grad_output is caught.
COTANGENT_SCALES = (1.0, 0.5, 3.0, 1e-3, 1e3)
#: Layout kinds of cotangents (channels_last is left to inputs; it falls back for most outputs).
#: The first outputs whose cotangent a case may leave out (`CotangentRecipe.unused`).
UNUSED_OUTPUTS = 4
COTANGENT_KINDS = ("contiguous", "expanded", "transposed", "sliced", "offset")
#: Layout kinds of an input the Function declares it writes in place (``mutates_inputs``): no
#: stride 0, which torch refuses to write even for its own in-place ops.
WRITABLE_KINDS = tuple(k for k in _DRAWN_KINDS if k != "expanded")


@dataclass(frozen=True)
class CotangentRecipe:
    """How to build the cotangent (grad_output) for an output of whatever shape it has."""

    values: Values = Values(seed=0)
    layout: Layout = Layout()
    #: Outputs that get no cotangent at all (bit k: output k), as when a caller uses only some
    #: of a multi-output Function's results: its backward then receives None for them (with
    #: ``ctx.set_materialize_grads(False)``) or zeros. At least one output keeps a cotangent.
    unused: int = 0

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
                    f"{describe_layout(a)}{', conj' if a.is_conj() else ''}"
                    f"{', requires_grad' if rg else ''})"
                )
            else:
                parts.append(repr(a)[:80])
        layouts_ = ", ".join(c.layout.kind + " conj" * c.layout.conj for c in self.cotangents)
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

    @property
    def unused_outputs(self) -> int:
        """The bitmask of outputs that get no cotangent (`CotangentRecipe.unused`)."""
        return self.cotangents[0].unused if self.cotangents else 0


def _any_complex(args) -> bool:
    return any(isinstance(a, torch.Tensor) and a.is_complex() for a in args)


def is_differentiable(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex)


class _Cotangents(st.SearchStrategy):
    def __init__(self, complex_: bool = False):
        super().__init__()
        self.complex = complex_

    def __repr__(self) -> str:
        return f"cotangent_recipes({'complex_=True' if self.complex else ''})"

    def do_draw(self, data) -> tuple[CotangentRecipe, ...]:
        scale = pick(data, COTANGENT_SCALES)
        seed = integer(data, 0, 2**32 - 1)
        layout = draw_layout(data, COTANGENT_KINDS, conj=self.complex)
        # Every output used (the simplest) three times in four; else a drawn set left unused.
        unused = integer(data, 1, 2**UNUSED_OUTPUTS - 1) if data.draw_boolean(0.25) else 0
        return (CotangentRecipe(Values(seed=seed, scale=scale), layout, unused),)


@functools.cache
def cotangent_recipes(complex_: bool = False) -> st.SearchStrategy[tuple[CotangentRecipe, ...]]:
    """One cotangent recipe (outputs after the first reseed it): seeded normal values at a drawn
    scale, laid out contiguously, expanded (stride 0), transposed, sliced or at an offset; with
    ``complex_`` (a call with complex inputs) complex cotangents are lazy conjugate views one
    time in four (see `Layout`)."""
    return _Cotangents(complex_)


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


def written_inputs(target, n: int) -> frozenset[int]:
    """The arguments a target declares its Function writes in place: its ``mutates_inputs``
    option, True for every argument or a list of their indices."""
    declared = getattr(target, "options", {}).get("mutates_inputs", False)
    if isinstance(declared, bool):
        return frozenset(range(n)) if declared else frozenset()
    if isinstance(declared, (list, tuple)) and all(
        isinstance(i, int) and -n <= i < n for i in declared
    ):
        return frozenset(i % n for i in declared)
    raise InvalidRegistration(
        f"fuzzgrad: {getattr(target, 'name', '?')}: mutates_inputs={declared!r}; pass True (the "
        f"Function writes into its inputs in place) or the indices of those it writes, among "
        f"its {n} arguments, as mutates_inputs=[0]."
    )


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
    """Cases for a target whose inputs are a list of argument specs (`fuzzgrad.tensor`,
    `fuzzgrad.dim`, `fuzzgrad.size`, plain values and strategies).

    Choices, in shrink order: the call's dtype and device, the shapes of all tensor specs (and
    the sizes only `fuzzgrad.size` uses), then argument by argument a tensor's layout and values
    or a strategy's draws, then the dimension indices, the requires_grad subset and the
    cotangent recipe.
    """

    def __init__(self, target, specs: tuple, dtypes: tuple, cap: int, nonfinite: bool):
        super().__init__()
        self.target_name = getattr(target, "name", "?")
        self.specs = specs
        self.dtypes = dtypes
        self.cap, self.nonfinite = cap, nonfinite
        self._devices = _target_devices(target)
        tensors = [s for s in specs if s.kind == "tensor"]
        sized = [s.name for s in specs if s.kind == "size"]
        sized += [s.size_name for s in tensors if s.size_name]
        #: the registration's ``sizes=`` bounds, which also hold for the names that only a
        #: strategy entry's ``fuzzgrad.tensor`` uses
        self._sizes_bounds = size_bounds(getattr(target, "options", {}).get("sizes"))
        bounds = list(self._sizes_bounds)
        bounds += [b for s in specs if s.kind == "size" for b in s.bounds]
        bounds += index_bounds(tensors)
        self._shapes = shapes(
            [s.dims if s.shape is not None else None for s in tensors],
            cap,
            bounds=bounds,
            extra=tuple(dict.fromkeys(sized)),
            max_sides=[s.max_side for s in tensors],
        )
        self._dims = [i for i, s in enumerate(specs) if s.kind == "dim"]
        self._written = written_inputs(target, len(specs))
        self._guarded = _Guarded(self.target_name)
        self._cotangents = cotangent_recipes()

    def __repr__(self) -> str:
        return f"cases({self.target_name})"

    def do_draw(self, data) -> Case:
        dtype, dev = for_device(pick(data, self.dtypes), pick(data, self._devices))
        call = begin_call(
            data,
            dtypes=self.dtypes,
            max_elements=self.cap,
            nonfinite=self.nonfinite,
            dtype=dtype,
            device=dev,
            bounds=self._sizes_bounds,
        )
        shapes_ = iter(self._shapes.draw_into(data, call.sizes))
        args: list[Any] = [None] * len(self.specs)
        recipes: list[ArgRecipe | None] = [None] * len(self.specs)
        for i, spec in enumerate(self.specs):
            kind = spec.kind
            if kind == "tensor":
                kinds = WRITABLE_KINDS if i in self._written else _DRAWN_KINDS
                args[i], recipes[i] = call.tensor(data, spec, next(shapes_), kinds=kinds)
            elif kind == "strategy":
                args[i] = self._guarded.draw(data, spec.strategy)
            elif kind == "constant":
                args[i] = spec.get()
            elif kind == "size":
                args[i] = call.sizes[spec.name]
        for i in self._dims:
            spec = self.specs[i]
            of = args[spec.of]
            if not isinstance(of, torch.Tensor):
                raise InvalidRegistration(
                    f"fuzzgrad: target {self.target_name!r}: inputs[{i}] is {spec!r}, but "
                    f"inputs[{spec.of}] drew {type(of).__name__} {of!r}, not a tensor. Point "
                    "fuzzgrad.dim at a tensor argument."
                )
            args[i] = spec.draw(data, of)
        wants = [is_differentiable(a) and s.requires_grad for a, s in zip(args, self.specs)]
        mask = iter(_draw_mask(data, sum(wants)))
        rg = tuple(next(mask) if w else False for w in wants)
        cts = data.draw(cotangent_recipes(True) if _any_complex(args) else self._cotangents)
        return Case(tuple(args), rg, cts, tuple(recipes), dtype, dev)


#: A user's strategy whose ``fuzzgrad.tensor`` draws are discarded this often (sizes an earlier
#: tensor drew break a later one's bounds), past `MIN_REJECTED` draws, makes a registration error.
MAX_REJECTED_SHARE = 0.9
MIN_REJECTED = 100


class _Guarded:
    """Draws a user's strategy for one target: a ``fuzzgrad.tensor`` in it that is wrong in
    itself is a registration error naming the target, and so is one whose draws are nearly
    always discarded (Hypothesis would end the run ``Unsatisfiable``)."""

    def __init__(self, target_name: str):
        self.target_name = target_name
        self.drawn = self.rejected = 0

    def draw(self, data, strategy: st.SearchStrategy) -> Any:
        where = f"fuzzgrad: target {self.target_name!r}: "
        try:
            value = data.draw(strategy)
        except InvalidRegistration as exc:
            raise InvalidRegistration(f"{where}{exc}") from exc
        except UnsatisfiedAssumption as exc:
            self.rejected += 1
            if self.rejected >= MIN_REJECTED and self.rejected > MAX_REJECTED_SHARE * (
                self.rejected + self.drawn
            ):
                raise InvalidRegistration(
                    f"{where}{self.rejected} of {self.rejected + self.drawn} draws of its inputs "
                    f"were discarded ({exc or 'a filter or assume in the strategy'}): draw the "
                    "tensor with the bounds first, or state them in the earlier tensor's shape too."
                ) from exc
            raise
        self.drawn += 1
        return value


class _StrategyCases(st.SearchStrategy):
    """Cases for a target whose inputs are a strategy of the whole argument tuple."""

    def __init__(
        self,
        inputs: st.SearchStrategy,
        dtypes=FLOAT_DTYPES,
        cap=None,
        nonfinite=False,
        *,
        bounds: tuple[Bound, ...] = (),
        target_name: str = "?",
    ):
        super().__init__()
        self.inputs, self.bounds, self.target_name = inputs, bounds, target_name
        self._guarded = _Guarded(target_name)
        self.dtypes, self.cap, self.nonfinite = dtypes, cap or DEFAULT_MAX_ELEMENTS, nonfinite
        self._cotangents = cotangent_recipes()

    def __repr__(self) -> str:
        return f"cases(inputs={self.inputs!r})"

    def do_draw(self, data) -> Case:
        # fuzzgrad.tensor drawn inside the user's strategy shares one dtype (the target's)
        # (and the registration's sizes= bounds)
        call = begin_call(
            data,
            dtypes=self.dtypes,
            max_elements=self.cap,
            nonfinite=self.nonfinite,
            bounds=self.bounds,
        )
        args = self._guarded.draw(data, self.inputs)
        if not isinstance(args, tuple):
            args = tuple(args) if isinstance(args, list) else (args,)
        # a tensor its fuzzgrad.tensor(requires_grad=False) drew never requires grad
        wants = [is_differentiable(a) and not any(a is t for t in call.frozen) for a in args]
        mask = iter(_draw_mask(data, sum(wants)))
        rg = tuple(next(mask) if w else False for w in wants)
        floats = [a.dtype for a in args if is_differentiable(a)]
        devs = [str(a.device) for a in args if isinstance(a, torch.Tensor)]
        return Case(
            args,
            rg,
            data.draw(cotangent_recipes(True) if _any_complex(args) else self._cotangents),
            (None,) * len(args),
            floats[0] if floats else None,
            devs[0] if devs else "cpu",
        )


def size_bounds(sizes) -> tuple[Bound, ...]:
    """The bounds a registration's ``sizes={"n": (3, 300)}`` option states (None: open)."""
    out = []
    for name, (low, high) in (sizes or {}).items():
        if low is not None:
            out.append(Bound(name, False, low))
        if high is not None:
            out.append(Bound(name, True, high))
    return tuple(out)


def cases(target, *, max_elements: int | None = None) -> st.SearchStrategy[Case]:
    """Every call the harness makes of ``target``: args, requires_grad subset and cotangents.

    Reads ``target.dtypes`` (default `FLOAT_DTYPES`; complex ones are opt-in there), and the
    options ``max_elements`` (per input, default `DEFAULT_MAX_ELEMENTS`), ``nonfinite``
    (inject inf/NaN too) and ``sizes`` (bounds per name).
    """
    cap = max_elements or target.options.get("max_elements", DEFAULT_MAX_ELEMENTS)
    nonfinite = bool(target.options.get("nonfinite", False))
    if isinstance(target.inputs, st.SearchStrategy):
        return _StrategyCases(
            target.inputs,
            _target_dtypes(target),
            cap,
            nonfinite,
            bounds=size_bounds(target.options.get("sizes")),
            target_name=getattr(target, "name", "?"),
        )
    return _SpecCases(target, tuple(target.inputs), _target_dtypes(target), cap, nonfinite)
