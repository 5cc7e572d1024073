"""Shapes for one call: a shape per spec string, consistent across all of them.

Sizes are drawn per name (``n``), per variadic (``*batch``) and per anonymous dim (``_``, ``...``),
input by input, an input's names before the rest of it (a name bounded by another, ``k<=n``,
draws that one first). Each
size is drawn below the element cap of *every* input that uses it, given what is already known
about those inputs, so no input of the call can exceed the cap however names are shared
(``"b n", "n m", "b m"``). Broadcast dims (``#n``, ``*#batch``) count at full size, so turning
one back to full size while shrinking never breaks the cap either.

A size is one of `SIZES` (small ones first, then both sides of block boundaries up to 64) or,
through one last option, one of `ladder` (65, then 2^k - 1, 2^k and 2^k + 1 up to the side
limit, 4096 by default): tile and block bugs live past 64. The cap keeps such a size to one
dim at a time. Bounds (``n>=3``, ``k<=n``) narrow the choice and add their own values to it;
an explicit upper bound, or ``max_side`` on a tensor, moves the side limit (and that tensor's
element cap) past the default.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NoReturn

from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.registry.grammar import (
    DEFAULT_SHAPE_NAME,
    Bound,
    Dim,
    conflict,
    evaluate,
    intervals,
    parse_shape,
)

from ._choices import pick

#: Sizes a free dim takes, simplest first: small, zero, then both sides of block boundaries.
SIZES = (1, 2, 3, 4, 0, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64)
#: The largest small size: a dim past it (one of the `ladder`) is there to reach tiles and blocks.
LONG_SIDE = max(SIZES)
#: The most elements one drawn tensor may have (fixed sizes in a spec may exceed it).
DEFAULT_MAX_ELEMENTS = 4096
#: The largest size a dim takes unless a bound or ``max_side`` says otherwise.
DEFAULT_MAX_SIDE = 4096
MAX_VARIADIC_RANK = 4
#: How many of a size's options are "one of the `ladder`": one dim in about ten goes past 64
#: where the cap leaves room (shrinking tries the small sizes first).
LADDER_WEIGHT = 2


@functools.cache
def ladder(limit: int) -> tuple[int, ...]:
    """Sizes past `SIZES` up to ``limit``, smallest first: 65, then 2^k - 1, 2^k, 2^k + 1."""
    out = [max(SIZES) + 1]
    k = 7
    while 2**k - 1 <= limit:
        out += [2**k - 1, 2**k, 2**k + 1]
        k += 1
    return tuple(s for s in out if s <= limit)


@functools.cache
def size_options(low: int, high: int, edge: int | None = None) -> tuple[Any, ...]:
    """The choices for a size in ``[low, high]``, simplest first: `SIZES` in range (the lower
    bound first where it is not one of them, ``edge``, an explicit upper bound, after them),
    then, as the last `LADDER_WEIGHT` options, a tuple of the `ladder` sizes in range."""
    small = [s for s in SIZES if low <= s <= high]
    big = [s for s in ladder(high) if s >= low]
    top = max(SIZES)
    if low <= high and low not in small and low not in big:
        (small if low <= top else big).insert(0, low)
    if edge is not None and low <= edge <= high and edge not in small and edge not in big:
        (small if edge <= top else big).append(edge)
    return (*small, *(tuple(big),) * LADDER_WEIGHT) if big else tuple(small)


def _root(x: int, k: int) -> int:
    """The largest r with r**k <= x."""
    r = round(x ** (1 / k)) if k > 1 else x
    while r > 0 and r**k > x:
        r -= 1
    return r


def dims_of(spec: str | tuple[Dim, ...] | None) -> tuple[Dim, ...]:
    """The parsed dims of a spec; ``None`` is the shared default shape (``*__default__``)."""
    if spec is None:
        return (Dim(name=DEFAULT_SHAPE_NAME, variadic=True),)
    if isinstance(spec, str):
        return parse_shape(spec)
    return tuple(spec)


def _key(dim: Dim) -> str | None:
    """The name under which a dim's size is shared (None: drawn afresh for each use, or
    computed from a size expression)."""
    if dim.name is None or dim.name == "_":
        return None
    return ("*" if dim.variadic else "") + dim.name


def _keys(dim: Dim) -> tuple[str, ...]:
    """The names whose sizes make a dim's size: its own, or those its expression reads."""
    if dim.expr is not None:
        return dim.expr_names
    key = _key(dim)
    return () if key is None else (key,)


def _uses(dims: tuple[Dim, ...], key: str) -> int:
    """How many times ``key``'s size multiplies into the element count of ``dims``
    (a name in a product counts once per factor; in a sum, once)."""
    count = 0
    for d in dims:
        if d.expr is not None:
            count += max((term.count(key) for term in d.expr), default=0)
        else:
            count += _key(d) == key
    return count


class Shapes(st.SearchStrategy[tuple[tuple[int, ...], ...]]):
    """Strategy for a tuple of shapes, one per spec; see the module docstring."""

    def __init__(
        self,
        specs: tuple,
        max_elements: int,
        fixed: tuple[tuple[str, Any], ...],
        bounds: tuple[Bound, ...] = (),
        extra: tuple[str, ...] = (),
        max_sides: tuple[int | None, ...] = (),
    ):
        super().__init__()
        self.specs, self.max_elements, self.fixed = specs, max_elements, fixed
        self.extra, self.max_sides = extra, max_sides or (None,) * len(specs)
        self.dims = tuple(dims_of(s) for s in specs)
        users: dict[str, list[int]] = {}
        self.bounds: dict[str, list[Bound]] = {}
        for b in bounds:
            self.bounds.setdefault(b.name, []).append(b)
        for i, dims in enumerate(self.dims):
            for d in dims:
                for key in _keys(d):
                    if i not in users.setdefault(key, []):
                        users[key].append(i)
                for b in d.bounds:
                    self.bounds.setdefault(b.name, []).append(b)
        for name in extra:
            users.setdefault(name, [])
        self.users = users
        self.all_bounds = tuple(b for group in self.bounds.values() for b in group)
        self.bounded = {b.name for b in self.all_bounds} | {
            b.value for b in self.all_bounds if isinstance(b.value, str)
        }
        self.sides = {key: self._side(key) for key in users}
        self.caps = tuple(self._cap(i) for i in range(len(self.dims)))

    def _side(self, key: str) -> int:
        """The largest size ``key`` takes: its explicit upper bound, else the largest
        ``max_side`` among its users, else the default."""
        bounds = self.bounds.get(key, ())
        explicit = [b.value for b in bounds if b.upper and isinstance(b.value, int)]
        if explicit:
            return max(0, min(explicit))
        sides = [s for s in (self.max_sides[i] for i in self.users[key]) if s is not None]
        return max(sides) if sides else DEFAULT_MAX_SIDE

    def _cap(self, i: int) -> int:
        """Input ``i``'s element cap: at least its longest side where a bound or ``max_side``
        lets a side go past the default."""
        keys = [k for k in map(_key, self.dims[i]) if k is not None]
        longest = [self.sides[k] for k in keys if self.sides.get(k, 0) > DEFAULT_MAX_SIDE]
        return max([self.max_elements, self.max_sides[i] or 0] + longest)

    def __repr__(self) -> str:
        args = [repr(list(self.specs))]
        if self.max_elements != DEFAULT_MAX_ELEMENTS:
            args.append(f"max_elements={self.max_elements}")
        if self.fixed:
            args.append(f"fixed={dict(self.fixed)!r}")
        return f"shapes({', '.join(args)})"

    def do_draw(self, data) -> tuple[tuple[int, ...], ...]:
        return self.draw_into(data, dict(self.fixed))

    def draw_into(
        self, data, sizes: dict[str, Any], seen: tuple[Bound, ...] = ()
    ) -> tuple[tuple[int, ...], ...]:
        """Draw the shapes, reading names already in ``sizes`` and adding the ones drawn.
        ``seen``: the bounds of the draws that made ``sizes`` (with this plan's, they may
        leave no sizes at all: a registration error rather than a discarded draw)."""
        return _Draw(self, data, sizes, seen).shapes()


class _Draw:
    """The state of one draw of a `Shapes`."""

    def __init__(self, plan: Shapes, data, sizes: dict[str, Any], seen: tuple[Bound, ...] = ()):
        self.plan, self.data, self.sizes, self.seen = plan, data, sizes, seen
        self.drawn: list[list[int]] = [[] for _ in plan.dims]  # anonymous sizes, per input
        self.pending: set[str] = set()

    def shapes(self) -> tuple[tuple[int, ...], ...]:
        data, sizes, drawn = self.data, self.sizes, self.drawn
        if sizes and self.plan.all_bounds and intervals(self.plan.all_bounds, sizes) is None:
            _no_sizes(self.plan, self.seen)
        out = []
        for i, dims in enumerate(self.plan.dims):
            # an input's named dims before its variadic ones: in "*batch n" the row length n is
            # as likely as any dim to go past 64 (a batch drawn first would leave it no room)
            for d in dims:
                if not d.variadic and d.size is None:
                    for name in _keys(d):
                        self.ensure(name, i)
            shape: list[int] = []
            for d in dims:
                key = _key(d)
                if d.expr is not None:
                    size = evaluate(d.expr, sizes) or 0
                    shape.append(1 if d.broadcast and data.draw_boolean() else size)
                    continue
                if d.variadic:
                    batch: list[int] = []
                    if key is not None and key in sizes:  # drawn by an earlier input or tensor
                        batch = list(sizes[key])
                    else:
                        for _ in range(data.draw_integer(0, MAX_VARIADIC_RANK)):
                            batch.append(self.size(key, i, batch))
                        if key is not None:
                            sizes[key] = tuple(batch)
                        else:
                            drawn[i].extend(batch)
                    if d.broadcast and batch:
                        batch = batch[data.draw_integer(0, len(batch)) :]
                        mask = data.draw_integer(0, 2 ** len(batch) - 1)
                        batch = [1 if mask >> j & 1 else s for j, s in enumerate(batch)]
                    shape.extend(batch)
                    continue
                if d.size is not None:
                    size = d.size
                elif key is None:
                    size = self.size(None, i, [])
                    drawn[i].append(size)
                else:
                    size = self.ensure(key, i)
                if d.broadcast and data.draw_boolean():
                    size = 1
                shape.append(size)
            out.append(tuple(shape))
        for name in self.plan.extra:
            self.ensure(name, None)
        return tuple(out)

    def ensure(self, key: str, current: int | None) -> int:
        """The size of ``key``, drawn now if it is not known yet."""
        if key not in self.sizes:
            self.pending.add(key)
            self.sizes[key] = self.size(key, current, [])
            self.pending.discard(key)
        return self.sizes[key]

    def size(self, key, current, partial) -> int:
        """Draw a size that keeps every input using ``key`` (or the current one) under its cap,
        within ``key``'s bounds."""
        plan = self.plan
        low, high, edge = self.interval(key)
        budget = None
        extra = math.prod(s for s in partial if s)
        for i in plan.users.get(key, ()) if key is not None else (current,):
            room = plan.caps[i] // max(self.known(i) * extra, 1)
            uses = _uses(plan.dims[i], key) if key is not None else 1
            root = _root(room, uses)
            budget = root if budget is None else min(budget, root)
        if high is None and key is not None:
            high = plan.sides.get(key, DEFAULT_MAX_SIDE)
        elif high is None:
            high = plan.max_sides[current] or DEFAULT_MAX_SIDE
        high = min(high, max(budget, 1)) if budget is not None else high
        if low >= high:
            return low
        choice = pick(self.data, size_options(low, high, edge))
        return pick(self.data, choice) if isinstance(choice, tuple) else choice

    def interval(self, key) -> tuple[int, int | None, int | None]:
        """``key``'s lower and upper bounds given the sizes known (drawing a name it is bounded
        by first), and its upper bound again (an edge worth drawing). The bounds are the ones
        every bound of the call implies (`intervals`): a size inside them leaves every name
        drawn after it a size too, so no draw breaks a bound."""
        plan = self.plan
        if key is None or key not in plan.bounded:
            return 0, None, None
        for b in plan.bounds.get(key, ()):
            other = b.value
            if isinstance(other, str) and other not in self.sizes and other not in self.pending:
                self.ensure(other, None)  # (a name in pending: a cycle, which registration rejects)
        found = intervals(plan.all_bounds, self.sizes)
        if found is None:
            _no_sizes(plan, self.seen)
        low, high = found[key]
        return low, high, high

    def known(self, i: int) -> int:
        """Product of the nonzero sizes input ``i`` already has (unknown ones count as 1)."""
        known = math.prod(s for s in self.drawn[i] if s)
        for d in self.plan.dims[i]:
            value = d.size if d.size is not None else self.sizes.get(k) if (k := _key(d)) else None
            if d.expr is not None:
                value = evaluate(d.expr, self.sizes)
            if isinstance(value, tuple):
                known *= math.prod(s for s in value if s)
            elif value:
                known *= value
        return known


def _no_sizes(plan: Shapes, seen: tuple[Bound, ...]) -> NoReturn:
    """No size meets the bounds: where the bounds alone (with those of the earlier tensors of
    the call, ``seen``) leave none, the spec is wrong (a registration checks its own
    ``inputs=`` list; ``fuzzgrad.tensor``s in a user's strategy are checked here); else sizes
    an earlier tensor of a user's strategy drew (without this spec's bounds) leave none, and
    the draw is discarded, never a tensor outside its spec."""
    reason = conflict(plan.all_bounds + tuple(seen))
    shapes = ", ".join(repr(" ".join(map(str, dims))) for dims in plan.specs)
    if reason is not None:
        raise InvalidRegistration(f"shapes {shapes}: {reason}")
    raise UnsatisfiedAssumption(  # what hypothesis.reject() raises, saying which bounds
        f"sizes drawn earlier break the bounds {', '.join(map(str, plan.all_bounds))} of "
        f"shapes {shapes}"
    )


def shapes(
    specs: Sequence[str | tuple[Dim, ...] | None],
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    fixed: dict[str, Any] | None = None,
    *,
    bounds: Sequence[Bound] = (),
    extra: Sequence[str] = (),
    max_sides: Sequence[int | None] = (),
) -> Shapes:
    """One shape per spec string, consistent across them (equal names, equal sizes).

    ``None`` in ``specs`` means the shared default shape (any rank up to 4). ``fixed`` pins names
    (``{"n": 3}``, ``{"*batch": (2, 5)}``). Every drawn tensor keeps at most ``max_elements``
    elements unless fixed sizes or lower bounds alone exceed it, or a side may go further
    (``max_sides``, one per spec, or an explicit upper bound). ``bounds`` adds size bounds to
    those in the strings; ``extra`` names sizes to draw that no spec uses (``fuzzgrad.size``).
    Cached: equal arguments give the same strategy.
    """
    return _shapes(
        tuple(specs),
        int(max_elements),
        tuple(sorted((fixed or {}).items())),
        tuple(bounds),
        tuple(extra),
        tuple(max_sides),
    )


@functools.lru_cache(maxsize=512)
def _shapes(specs, max_elements, fixed, bounds, extra, max_sides) -> Shapes:
    if max_elements < 1:
        raise ValueError(f"max_elements must be at least 1, got {max_elements}")
    return Shapes(specs, max_elements, fixed, bounds, extra, max_sides)


def match_shapes(
    plan: Shapes, got: Sequence[tuple[int, ...]], known: dict[str, Any] | None = None
) -> dict[str, Any] | str:
    """The sizes under which ``plan`` draws the shapes ``got`` (given the ``known`` sizes of
    some names), or what rules them out (a wrong rank, a fixed size, two sizes of one name, a
    bound)."""
    sizes: dict[str, Any] = {**dict(plan.fixed), **(known or {})}
    suffixes: list[tuple[str, tuple[int, ...]]] = []
    computed: list[tuple[int, Dim, int]] = []  # (input, dim, size): checked once names are known
    for i, (dims, shape) in enumerate(zip(plan.dims, got)):
        reason = _match_one(dims, tuple(shape), sizes, suffixes, computed, i)
        if reason:
            return f"input {i} of shape {tuple(shape)}: {reason}"
    for i, d, s in computed:
        want = evaluate(d.expr or (), sizes)
        if want is not None and s != want and not (d.broadcast and s == 1):
            return f"input {i} of shape {tuple(got[i])}: a dim of size {s} where {d} is {want}"
    for key, batch in suffixes:
        full = sizes.get(key)
        if full is None:
            continue
        if len(batch) > len(full) or any(
            b not in (f, 1) for b, f in zip(batch[::-1], tuple(full)[::-1])
        ):
            return f"{batch} does not broadcast to {key} = {full}"
    for name, bounds in plan.bounds.items():
        if name not in sizes:
            continue
        for b in bounds:
            limit = b.limit(sizes)
            if limit is not None and (sizes[name] > limit if b.upper else sizes[name] < limit):
                return f"{name} = {sizes[name]} breaks {b}"
    return sizes


def _match_one(dims, shape, sizes, suffixes, computed, i) -> str | None:
    fixed = sum(not d.variadic for d in dims)
    spare = len(shape) - fixed
    if spare < 0 or (spare and not any(d.variadic for d in dims)):
        return f"rank {len(shape)} where the spec {' '.join(map(str, dims))!r} has {fixed}"
    j = 0
    for d in dims:
        key = _key(d)
        if d.variadic:
            batch, j = shape[j : j + spare], j + spare
            if key is None:
                continue
            if d.broadcast:
                suffixes.append((key, batch))
            elif sizes.setdefault(key, batch) != batch:
                return f"{key} is {batch} here and {sizes[key]} elsewhere"
            continue
        s, j = shape[j], j + 1
        if d.expr is not None:
            computed.append((i, d, s))
            continue
        if d.broadcast and s == 1:
            continue
        if d.size is not None:
            if s != d.size:
                return f"a dim of size {s} where the spec fixes {d.size}"
        elif key is not None and sizes.setdefault(key, s) != s:
            return f"{key} is {s} here and {sizes[key]} elsewhere"
    return None
