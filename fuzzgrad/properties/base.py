"""The interface every property implements, and what a failing property raises.

A property is a class with a ``name``, a run ``order`` (where it runs in a case), what it
``needs`` of a case (``"grads"``: the Function's backward; ``"retain"``: its graph kept for a
second backward), `Property.applies` (whether it means anything for a target: others are not
run, rather than passed) and `Property.check`, which inspects one `fuzzgrad.properties.case.CaseRun`
and calls ``run.fail(...)`` when the property does not hold. A module in this package that
defines one is all it takes to add a property (the README's table gets a row).
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import torch

from fuzzgrad.registry.target import defines
from fuzzgrad.verdict.compare import Mismatch
from fuzzgrad.verdict.judge import Discard


class PropertyFailure(AssertionError):
    """A property does not hold for a case.

    Subclassed per property (`failure_type`) so that Hypothesis shrinks each one separately.
    ``cause``: the exception of the Function (or of its backward, or of a transform of it) that
    the failure reports; by default the one being handled where the failure is made, as
    properties report a crash from inside ``except``. It is part of the failure's identity
    (`fuzzgrad.verdict.identity`).
    """

    property = "property"

    def __init__(
        self,
        message: str,
        *,
        mismatch: Mismatch | None = None,
        case: Any = None,
        details: dict | None = None,
        cause: BaseException | None = None,
    ):
        super().__init__(message)
        if cause is None:
            handled = sys.exception()
            if isinstance(handled, Exception) and not isinstance(
                handled, (PropertyFailure, Skip, Discard, ExceptionGroup)
            ):
                cause = handled
        self.cause = cause
        #: Set by the runner: the failure's search key and the properties that failed with it
        #: on its case (`fuzzgrad.verdict.identity`).
        self.search_key: tuple | None = None
        self.also: list[str] = []
        self.message = message
        self.mismatch = mismatch
        self.case = case
        self.details = details or {}


FAILURES: dict[str, type[PropertyFailure]] = {}


def failure_type(prop: str) -> type[PropertyFailure]:
    """The `PropertyFailure` subclass of property ``prop`` (one class per name)."""
    if prop not in FAILURES:
        name = "".join(p.title() for p in prop.split("_")) + "Failure"
        FAILURES[prop] = type(name, (PropertyFailure,), {"property": prop})
    return FAILURES[prop]


class Skip(Exception):
    """The property cannot be checked on this case: something it needs failed, and that
    failure is reported once, by the property it belongs to (counted in `Stats.skipped`)."""


class Property:
    """One named check of a case (see the module docstring)."""

    name: ClassVar[str] = ""
    #: Where the property runs within a case (and is listed): lower first.
    order: ClassVar[int] = 100
    #: On unless a registration or ``--properties`` leaves it out (an opt-in one: False).
    default: ClassVar[bool] = True
    #: What it needs of the case: ``"grads"`` (backward), ``"retain"`` (backward twice).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: One line for ``--help`` and the README table.
    summary: ClassVar[str] = ""

    def applies(self, target) -> bool:
        """Whether the property means anything for ``target`` (checked once per target)."""
        return True

    def check(self, run) -> None:
        """Inspect one case; call ``run.fail(self.name, ...)`` if the property does not hold."""
        raise NotImplementedError


def directions(case, like: list[torch.Tensor], salt: int) -> list[torch.Tensor]:
    """Seeded random directions shaped like ``like`` (tangents, second-order cotangents)."""
    seed = case.direction_seed + salt
    gen = torch.Generator().manual_seed(seed % (2**63))
    return [
        torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype).to(t.device)
        for t in like
    ]


def selected(case, every: int) -> bool:
    """Whether ``case`` is one of every ``every`` cases (by its cotangent seed, so a shrunk
    case still selects it)."""
    return case.direction_seed % every == 0


__all__ = [
    "Discard",
    "Property",
    "PropertyFailure",
    "Skip",
    "defines",
    "directions",
    "failure_type",
    "selected",
]
