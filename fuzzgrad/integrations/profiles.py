"""How hard to fuzz: the ``ci``, ``dev`` and ``nightly`` profiles, and the running pytest
session's profile (what `fuzzgrad.check` uses inside a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Where dev and nightly runs keep failing examples, so they replay first (shared with the CLI).
DATABASE = Path(".fuzzgrad") / "examples"


@dataclass(frozen=True)
class Profile:
    """How hard to fuzz each target: examples, randomness, and whether to keep failures."""

    name: str
    max_examples: int
    derandomize: bool
    #: Replay and save failing examples in the example database (never in ``ci``, so its
    #: verdicts depend on the code alone).
    database: bool
    database_dir: Path | None = None

    def describe(self) -> str:
        how = "derandomized" if self.derandomize else "random"
        keep = f", database {self.database_dir}" if self.database_dir else ""
        return f"profile {self.name} ({self.max_examples} examples per target, {how}{keep})"


PROFILES = {
    "ci": Profile("ci", max_examples=50, derandomize=True, database=False),
    "dev": Profile("dev", max_examples=200, derandomize=False, database=True),
    "nightly": Profile("nightly", max_examples=2000, derandomize=False, database=True),
}
DEFAULT_PROFILE = "dev"


#: The profiles of running pytest sessions, innermost last (pytester nests them): each a
#: function that resolves it (the plugin pushes one when a session starts).
_active: list[Callable[[], Profile]] = []


def current_profile() -> Profile:
    """The profile of the running pytest session (``dev`` outside one), for `fuzzgrad.check`."""
    if not _active:
        return PROFILES[DEFAULT_PROFILE]
    return _active[-1]()
