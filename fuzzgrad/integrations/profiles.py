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
    #: ``--hypothesis-seed``: every target fuzzed with this seed (a repeatable session).
    seed: int | None = None
    #: Opt-in properties this profile turns on (``compile`` in ``nightly``).
    opt_in: tuple[str, ...] = ()

    def describe(self) -> str:
        how = "derandomized" if self.derandomize else "random"
        if self.seed is not None:
            how = f"seed {self.seed}"
        keep = f", database {self.database_dir}" if self.database_dir else ""
        return f"profile {self.name} ({self.max_examples} examples per target, {how}{keep})"


PROFILES = {
    # Hypothesis registers a ``ci`` profile of its own (100 derandomized examples, no database)
    # and loads it on a CI system: fuzzgrad's ``ci`` is that one, or the project's own
    "ci": Profile("ci", max_examples=100, derandomize=True, database=False),
    "dev": Profile("dev", max_examples=200, derandomize=False, database=True),
    "nightly": Profile(
        "nightly", max_examples=2000, derandomize=False, database=True, opt_in=("compile",)
    ),
}
DEFAULT_PROFILE = "dev"


def default_profile_name() -> str:
    """The profile of a session that names none: ``ci`` where Hypothesis has loaded its ``ci``
    profile (it does on a CI system, as fuzzgrad's verdicts there should not depend on luck),
    else ``dev``."""
    from hypothesis import settings

    return "ci" if settings.get_current_profile_name() == "ci" else DEFAULT_PROFILE


def register_hypothesis_profiles() -> None:
    """Register ``ci``, ``dev`` and ``nightly`` as Hypothesis profiles, each only where no
    profile of that name exists yet (a user's own, from a conftest, is never shadowed), so that
    ``--hypothesis-profile`` chooses fuzzgrad's budget as it chooses Hypothesis's."""
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    for name, profile in PROFILES.items():
        try:
            settings.get_profile(name)
        except InvalidArgument:
            extra = {} if profile.database else {"database": None}
            settings.register_profile(
                name,
                # Hypothesis's defaults, not the loaded profile's: on a CI system that is ``ci``,
                # and ``dev`` would inherit its derandomization and lack of a database
                parent=settings.get_profile("default"),
                max_examples=profile.max_examples,
                derandomize=profile.derandomize,
                deadline=None,
                **extra,
            )


def from_hypothesis(name: str) -> Profile | None:
    """The fuzzing budget of the Hypothesis profile ``name`` (None where there is none): its
    examples, derandomization and whether it keeps a database; a fuzzgrad profile of that name
    adds its opt-in properties."""
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    try:
        s = settings.get_profile(name)
    except InvalidArgument:
        return None
    ours = PROFILES.get(name)
    return Profile(
        name, s.max_examples, s.derandomize, s.database is not None,
        opt_in=ours.opt_in if ours else (),
    )  # fmt: skip


#: The profiles of running pytest sessions, innermost last (pytester nests them): each a
#: function that resolves it (the plugin pushes one when a session starts).
_active: list[Callable[[], Profile]] = []


def current_profile() -> Profile:
    """The profile of the running pytest session (``dev`` outside one), for `fuzzgrad.check`."""
    if not _active:
        return PROFILES[DEFAULT_PROFILE]
    return _active[-1]()
