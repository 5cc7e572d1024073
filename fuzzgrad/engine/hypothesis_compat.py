"""Every use fuzzgrad makes of Hypothesis beyond its documented API, in one place.

fuzzgrad explores with its own fast random source (`fuzzgrad.engine.explore.FastData`) and
hands failures to Hypothesis to replay and shrink; that needs a few of Hypothesis's internals,
all here, so that an upgrade breaks one small module (and `available` says whether the fast
path can run at all; without it Hypothesis generates every case itself):

- the serialisation of a choice sequence as the example database stores it
  (``hypothesis.database.choices_to_bytes``), to store an explored failure for replay;
- the database key and the fixed seed of a ``@given`` test (``_hypothesis_internal_*``
  attributes), so stored failures survive edits of the test function and a hand-off replays
  with a fixed seed while keeping its database (``hypothesis.seed`` would drop it);
- the shrinking time limit (``engine.MAX_SHRINKING_SECONDS``, read when shrinking starts), so a
  budgeted run shrinks within its budget;
- the ``ConjectureData`` methods fuzzgrad's strategies call in ``do_draw`` (``draw_integer``,
  ``draw_boolean``, ``draw_float``), which `FastData` provides, and what Hypothesis's simplest
  strategies (``st.tuples``, ``.map``, ``st.builds``) need besides when a user's strategy is one
  argument of a mixed ``inputs=[...]``: a build context (`build_context`), ``track_arg_label``
  and ``depth``. Any other strategy raises `fuzzgrad.engine.explore.Unsupported` there, and
  Hypothesis generates that target's cases itself.

Hypothesis's documented alternative-backend interface (``PrimitiveProvider``) replaces only the
source of choices, not the per-choice bookkeeping that exploration avoids: measured in
``bench/provider.py`` (see benchmarks.md). The range of Hypothesis these are tested against is
the one ``pyproject.toml`` declares.
"""

from __future__ import annotations

import contextlib
from typing import Any

try:  # Hypothesis's own serialisation of a choice sequence (what its database stores)
    from hypothesis.database import choices_to_bytes
except ImportError:  # pragma: no cover - an older or newer Hypothesis: no fast exploration
    choices_to_bytes = None


def available() -> bool:
    """Whether this Hypothesis can take hand-offs (it serialises choice sequences)."""
    return choices_to_bytes is not None


def encode_choices(choices: tuple[Any, ...]) -> bytes:
    """A choice sequence as Hypothesis's example database stores a test case."""
    return choices_to_bytes(choices)


def build_context(data: Any):
    """The context Hypothesis's strategies expect around a draw (``current_build_context``),
    for a draw from a `FastData`; a no-op context where this Hypothesis has none."""
    try:
        from hypothesis.control import BuildContext
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return BuildContext(data, wrapped_test=None)


def set_database_key(test: Any, key: bytes) -> None:
    """Store a ``@given`` test's failures under ``key`` (the default key hashes the test
    function's source, so any edit of it would orphan every stored failure)."""
    test._hypothesis_internal_database_key = key


def set_seed(test: Any, seed: int) -> None:
    """Run a ``@given`` test with a fixed seed, keeping its database (``hypothesis.seed``
    turns the database off)."""
    test._hypothesis_internal_use_seed = seed


@contextlib.contextmanager
def shrinking_deadline(seconds: float | None):
    """Cap the time Hypothesis spends shrinking (a module constant it reads when shrinking
    starts) for the duration of the block."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        engine = None
    default = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if seconds is None or default is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = max(0.5, seconds)
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = default


def set_shrinking_deadline(seconds: float) -> None:
    """Cap shrinking that starts from now on at ``seconds`` (undone by `shrinking_deadline`'s
    exit)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        return
    if hasattr(engine, "MAX_SHRINKING_SECONDS"):
        engine.MAX_SHRINKING_SECONDS = max(0.5, seconds)
