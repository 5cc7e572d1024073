"""Properties: the named checks run on each drawn case, one module each.

Every module of this package that defines a `Property` subclass adds it: `PROPERTIES` lists
them in run order, and `select` picks those that apply to a target. The verdict rules they share
live in `fuzzgrad.verdict`; the evaluations of a case they share, in `CaseRun`.
"""

from __future__ import annotations

import functools
import importlib

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.properties.base import Property, PropertyFailure, failure_type
from fuzzgrad.registry.target import property_names


@functools.cache
def catalog() -> dict[str, Property]:
    """Every property, by name, in run order."""
    found: list[Property] = []
    for name in property_names():  # each module is named as the one property it defines
        module = importlib.import_module(f"{__name__}.{name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Property)
                and value is not Property
                and value.__module__ == module.__name__
            ):
                found.append(value())
                if value.name != name:
                    raise TypeError(f"{module.__name__} defines property {value.name!r}")
    found.sort(key=lambda p: (p.order, p.name))
    return {p.name: p for p in found}


def names() -> tuple[str, ...]:
    """Every property's name, in run order."""
    return tuple(catalog())


def __getattr__(name: str):
    if name == "PROPERTIES":  # computed on first use: importing every property costs torch
        return names()
    if name == "DEFAULT_PROPERTIES":
        return tuple(n for n, p in catalog().items() if p.default)
    raise AttributeError(name)


def check_names(properties, where: str) -> tuple[str, ...]:
    """``properties`` as a tuple of known names; otherwise `InvalidRegistration` naming them."""
    known = names()
    if isinstance(properties, str) or not all(p in known for p in properties or ()):
        raise InvalidRegistration(
            f"{where}properties must be a list drawn from {', '.join(known)}; got {properties!r}."
        )
    return tuple(properties)


def select(target, properties=None) -> tuple[Property, ...]:
    """The properties to run on ``target``: those asked for (default: the registration's, else
    every default property), in run order, that apply to it."""
    table = catalog()
    wanted = properties or target.options.get("properties")
    if wanted:
        wanted = set(check_names(wanted, f"fuzzgrad: target {target.name!r}: "))
    else:
        wanted = {n for n, p in table.items() if p.default}
    return tuple(p for n, p in table.items() if n in wanted and p.applies(target))


__all__ = [
    "PROPERTIES",
    "Property",
    "PropertyFailure",
    "catalog",
    "check_names",
    "failure_type",
    "names",
    "select",
]
