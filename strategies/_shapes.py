"""Shapes for one call: a shape per spec string, consistent across all of them.

Sizes are drawn per name (``n``), per variadic (``*batch``) and per anonymous dim (``_``, ``...``),
in order of first appearance. Each size is drawn below the element cap of *every* input that uses
it, given what is already known about those inputs, so no input of the call can exceed the cap
however names are shared (``"b n", "n m", "b m"``). Broadcast dims (``#n``, ``*#batch``) count at
full size, so turning one back to full size while shrinking never breaks the cap either.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from fuzzgrad.registry.spec import DEFAULT_SHAPE_NAME, Dim, parse_shape

from ._choices import pick

#: Sizes a free dim takes, simplest first: small, zero, then both sides of block boundaries.
SIZES = (1, 2, 3, 4, 0, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64)
#: The most elements one drawn tensor may have (fixed sizes in a spec may exceed it).
DEFAULT_MAX_ELEMENTS = 4096
MAX_VARIADIC_RANK = 4


@functools.cache
def _sizes_upto(budget: int) -> tuple[int, ...]:
    return tuple(s for s in SIZES if s <= budget)


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
    """The name under which a dim's size is shared (None: drawn afresh for each use)."""
    if dim.name is None or dim.name == "_":
        return None
    return ("*" if dim.variadic else "") + dim.name


class Shapes(st.SearchStrategy):
    """Strategy for a tuple of shapes, one per spec; see the module docstring."""

    def __init__(self, specs: tuple, max_elements: int, fixed: tuple[tuple[str, Any], ...]):
        super().__init__()
        self.specs, self.max_elements, self.fixed = specs, max_elements, fixed
        self.dims = tuple(dims_of(s) for s in specs)
        users: dict[str, list[int]] = {}
        for i, dims in enumerate(self.dims):
            for d in dims:
                if _key(d) is not None and i not in users.setdefault(_key(d), []):
                    users[_key(d)].append(i)
        self.users = users

    def __repr__(self) -> str:
        args = [repr(list(self.specs))]
        if self.max_elements != DEFAULT_MAX_ELEMENTS:
            args.append(f"max_elements={self.max_elements}")
        if self.fixed:
            args.append(f"fixed={dict(self.fixed)!r}")
        return f"shapes({', '.join(args)})"

    def do_draw(self, data) -> tuple[tuple[int, ...], ...]:
        sizes: dict[str, Any] = dict(self.fixed)
        drawn: list[list[int]] = [[] for _ in self.dims]  # anonymous sizes, per input
        out = []
        for i, dims in enumerate(self.dims):
            shape: list[int] = []
            for d in dims:
                key = _key(d)
                if d.variadic:
                    if key is None or key not in sizes:
                        batch: list[int] = []
                        for _ in range(data.draw_integer(0, MAX_VARIADIC_RANK)):
                            batch.append(self._size(data, key, i, sizes, drawn, batch))
                        if key is not None:
                            sizes[key] = tuple(batch)
                        else:
                            drawn[i].extend(batch)
                    batch = list(sizes.get(key, batch))
                    if d.broadcast and batch:
                        batch = batch[data.draw_integer(0, len(batch)) :]
                        mask = data.draw_integer(0, 2 ** len(batch) - 1)
                        batch = [1 if mask >> j & 1 else s for j, s in enumerate(batch)]
                    shape.extend(batch)
                    continue
                if d.size is not None:
                    size = d.size
                elif key is None:
                    size = self._size(data, None, i, sizes, drawn, [])
                    drawn[i].append(size)
                elif key in sizes:
                    size = sizes[key]
                else:
                    size = sizes[key] = self._size(data, key, i, sizes, drawn, [])
                if d.broadcast and data.draw_boolean():
                    size = 1
                shape.append(size)
            out.append(tuple(shape))
        return tuple(out)

    def _size(self, data, key, current, sizes, drawn, partial) -> int:
        """Draw a size that keeps every input using ``key`` (or the current one) under the cap."""
        budget = self.max_elements
        extra = math.prod(s for s in partial if s)
        for i in self.users[key] if key is not None else (current,):
            room = self.max_elements // max(self._known(i, sizes, drawn[i]) * extra, 1)
            uses = sum(_key(d) == key for d in self.dims[i]) if key is not None else 1
            budget = min(budget, _root(room, uses))
        return pick(data, _sizes_upto(min(max(budget, 1), max(SIZES))))

    def _known(self, i: int, sizes: dict[str, Any], anonymous: list[int]) -> int:
        """Product of the nonzero sizes input ``i`` already has (unknown ones count as 1)."""
        known = math.prod(s for s in anonymous if s)
        for d in self.dims[i]:
            value = d.size if d.size is not None else sizes.get(_key(d)) if _key(d) else None
            if isinstance(value, tuple):
                known *= math.prod(s for s in value if s)
            elif value:
                known *= value
        return known


def shapes(
    specs: Sequence[str | tuple[Dim, ...] | None],
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    fixed: dict[str, Any] | None = None,
) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """One shape per spec string, consistent across them (equal names, equal sizes).

    ``None`` in ``specs`` means the shared default shape (any rank up to 4). ``fixed`` pins names
    (``{"n": 3}``, ``{"*batch": (2, 5)}``). Every drawn tensor keeps at most ``max_elements``
    elements unless fixed sizes alone exceed it. Cached: equal arguments give the same strategy.
    """
    return _shapes(tuple(specs), int(max_elements), tuple(sorted((fixed or {}).items())))


@functools.lru_cache(maxsize=512)
def _shapes(specs: tuple, max_elements: int, fixed: tuple) -> Shapes:
    if max_elements < 1:
        raise ValueError(f"max_elements must be at least 1, got {max_elements}")
    return Shapes(specs, max_elements, fixed)
