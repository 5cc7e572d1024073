"""Leaf choices made straight on Hypothesis's ``ConjectureData``, without a strategy per choice.

``data.draw(st.sampled_from(options))`` wraps one integer choice in a span, a validation and a
filter loop: about as costly as the choice itself, and a small case makes some twenty of them.
`pick` and `integer` make the very same choices as ``st.sampled_from`` and ``st.integers``
(same values, same shrink order, same odds, so a derandomized run draws the same cases), as does
``data.draw_boolean()`` for ``st.booleans()``; stored failures replay unchanged. Composite
strategies (shapes, value recipes, cotangents) are still drawn with ``data.draw``, keeping the
spans the shrinker uses.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pick(data, options: Sequence[T]) -> T:
    """``options[i]`` for a drawn index, as ``st.sampled_from(options)`` draws it (no choice
    at all where there is one option)."""
    if len(options) == 1:
        return options[0]
    return options[data.draw_integer(0, len(options) - 1)]


@functools.cache
def _weights(low: int, high: int) -> dict[int, float] | None:
    # The bounds and their neighbours are likelier, as in st.integers over a wide range.
    if high - low <= 127:
        return None
    return {low: 2 / 128, low + 1: 1 / 128, high - 1: 1 / 128, high: 2 / 128}


def integer(data, low: int, high: int) -> int:
    """An integer in ``[low, high]``, drawn as ``st.integers(low, high)`` draws it."""
    return data.draw_integer(low, high, weights=_weights(low, high))
