"""Exploring cases fast, then handing each failure to Hypothesis to replay and shrink.

Hypothesis's engine books every choice a strategy makes (spans, the tree of choices seen,
mutation and replay bookkeeping), about 20 microseconds a choice; a case of a two-input target
makes some 25 of them. For a cheap Function that bookkeeping costs more than the three
computations being checked. So `fuzz_target` explores with the very same strategies, driven by
`FastData`: a plain seeded random source that makes each choice as Hypothesis would be asked to
(bounded integers, booleans, bounded floats) and records it. A case that fails is then handed to
Hypothesis as a stored failure (its recorded choices, through `HandOff`, an example database):
Hypothesis replays it exactly, and shrinks it like any failure of its own.

Exploration is only a faster source of the same choices. Targets whose ``inputs=`` is one
strategy of the whole argument tuple are fuzzed by Hypothesis itself, as are runs whose settings
leave out the generate phase. In a mixed ``inputs=[...]`` list, a user's strategy is drawn by
`FastData` too where it can be (``st.integers``, ``st.floats``, ``st.sampled_from``,
``st.tuples``, ``.map`` ...); one that needs the rest of Hypothesis's engine (``@st.composite``,
``st.lists``) raises `Unsupported`, and Hypothesis generates the rest of that run.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

from hypothesis.database import ExampleDatabase, InMemoryExampleDatabase

from fuzzgrad.engine.hypothesis_compat import available, build_context, encode_choices

#: Chance that a bounded float is one of the bounds, 0, +-1 or 0.5 rather than uniform.
SPECIAL_FLOAT = 0.25


#: How simple each explored case is: the chance that each of its choices is the simplest value
#: (a size of 1, a contiguous layout, no injected edge value ...), one drawn per case. The
#: first case of a run is the simplest of all, as Hypothesis's is.
SIMPLICITY = (0.0, 0.0, 0.25, 0.5, 0.9)


class Unsupported(Exception):
    """A strategy asked `FastData` for something only Hypothesis's engine provides."""


class FastData:
    """Enough of Hypothesis's ``ConjectureData`` for fuzzgrad's own strategies, without the
    bookkeeping: draws bounded integers (with the same optional ``weights``), booleans and bounded
    floats from ``rng``, and records each choice in ``choices`` in the order a replay makes it."""

    #: Nesting depth, which some of Hypothesis's strategies read.
    depth = 0

    def __init__(self, rng: random.Random, simplest: float = 0.0):
        self.rng = rng
        #: The chance that each choice is its simplest value (where Hypothesis shrinks it to).
        self.simplest = simplest
        self.choices: list[Any] = []

    def _simple(self) -> bool:
        return self.simplest > 0 and (self.simplest >= 1 or self.rng.random() < self.simplest)

    def draw_integer(
        self,
        min_value=None,
        max_value=None,
        *,
        weights=None,
        shrink_towards=0,
        forced=None,
        observe=True,
    ) -> int:
        if min_value is None or max_value is None:
            raise Unsupported("an unbounded integer")
        if forced is not None:
            value = forced
        elif self._simple():
            value = min(max(shrink_towards, min_value), max_value)
        else:
            value = None
            if weights:
                u, acc = self.rng.random(), 0.0
                for v, p in weights.items():
                    acc += p
                    if u < acc:
                        value = v
                        break
            if value is None:
                value = self.rng.randint(min_value, max_value)
        self.choices.append(value)
        return value

    def draw_boolean(self, p=0.5, *, forced=None, observe=True) -> bool:
        if forced is not None:
            value = forced
        elif p >= 1 or p <= 0:
            value = p >= 1
        else:
            value = not self._simple() and self.rng.random() < p
        self.choices.append(bool(value))
        return bool(value)

    def draw_float(
        self,
        min_value=-math.inf,
        max_value=math.inf,
        *,
        allow_nan=True,
        smallest_nonzero_magnitude=5e-324,
        forced=None,
        observe=True,
    ) -> float:
        if not (math.isfinite(min_value) and math.isfinite(max_value)):
            raise Unsupported("an unbounded float")
        if forced is not None:
            value = forced
        elif self._simple():
            value = min(max(0.0, min_value), max_value)
        elif self.rng.random() < SPECIAL_FLOAT:
            candidates = (0.0, 1.0, -1.0, 0.5, min_value, max_value)
            specials = [x for x in candidates if min_value <= x <= max_value]
            value = self.rng.choice(specials)
        else:
            value = self.rng.uniform(min_value, max_value)
        if value != 0 and abs(value) < smallest_nonzero_magnitude:
            value = 0.0 if min_value <= 0.0 <= max_value else min_value
        self.choices.append(float(value))
        return float(value)

    def draw(self, strategy, label=None, observe_as=None) -> Any:
        return strategy.do_draw(self)

    def start_span(self, label) -> None:
        pass

    @contextlib.contextmanager
    def track_arg_label(self, label: str):
        yield {}

    def drawing(self):
        """The context a case is drawn in (Hypothesis's build context: ``st.tuples`` and
        ``.map`` of a user's strategy need one)."""
        return build_context(self)

    def stop_span(self, discard: bool = False) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise Unsupported(f"ConjectureData.{name}")

    def to_bytes(self) -> bytes:
        """The choices as Hypothesis's example database stores a test case."""
        return encode_choices(tuple(self.choices))


class HandOff(ExampleDatabase):
    """The database a hand-off run of Hypothesis sees: the explored failures (``stored``), as
    if stored by an earlier run, in front of the run's own database (``backing``, may be None).

    Reads come from the hand-off only, so entries already in ``backing`` (a property this run
    leaves out, say) are never replayed and so never deleted for passing. What Hypothesis saves
    while shrinking goes to both; it deletes only what it saved in this run.
    """

    def __init__(self, backing: ExampleDatabase | None):
        super().__init__()
        self.backing = backing
        self.memory = InMemoryExampleDatabase()
        self._ours: set[tuple[bytes, bytes]] = set()

    def __repr__(self) -> str:
        return f"HandOff({self.backing!r})"

    def stored(self, key: bytes, value: bytes) -> None:
        """Put an explored failure where Hypothesis's replay phase finds it: in the secondary
        corpus of ``key`` (where Hypothesis keeps failures not yet shrunk), which it replays when
        the primary one is empty. A primary entry that still fails is taken as already shrunk,
        and is not shrunk again."""
        self.memory.save(key + b".secondary", value)

    def fetch(self, key: bytes):
        yield from self.memory.fetch(key)

    def save(self, key: bytes, value: bytes) -> None:
        self.memory.save(key, value)
        if self.backing is not None:
            self.backing.save(key, value)
            self._ours.add((key, value))

    def delete(self, key: bytes, value: bytes) -> None:
        self.memory.delete(key, value)
        if self.backing is not None and (key, value) in self._ours:
            self.backing.delete(key, value)
            self._ours.discard((key, value))


def has_stored(database: ExampleDatabase | None, key: bytes) -> bool:
    """Whether ``database`` holds a test case under ``key`` (a failure to replay first)."""
    if database is None:
        return False
    try:
        return next(iter(database.fetch(key)), None) is not None
    except Exception:  # noqa: BLE001 - an unreachable database: Hypothesis reports it itself
        return True


def rng_for(seed: int | None, derandomize: bool, name: str) -> random.Random:
    """The exploration's random source: ``seed``; fixed by the target's name when
    derandomized (a CI run draws the same cases every time); otherwise fresh."""
    import zlib

    if seed is not None:
        return random.Random(seed)
    if derandomize:
        return random.Random(zlib.crc32(name.encode()))
    return random.Random()


__all__ = ["FastData", "HandOff", "Unsupported", "available", "has_stored", "rng_for"]
