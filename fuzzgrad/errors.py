"""The one error family that user mistakes raise.

Every class subclasses both `FuzzgradError` (catch all of ours) and the built-in exception that
fits, so `except ValueError` in user code keeps working.
"""

from __future__ import annotations


class FuzzgradError(Exception):
    """Base class of every error fuzzgrad raises for a user mistake."""


class InvalidRegistration(FuzzgradError, ValueError):
    """A `register(...)` call or an `fg.tensor(...)` spec is wrong; the message names the target."""


class ShapeSpecError(InvalidRegistration):
    """A jaxtyping-style shape string could not be parsed."""


class TargetNotFound(FuzzgradError, LookupError):
    """A module, path or target name given on the command line or in options does not exist."""


class TargetImportError(FuzzgradError, ImportError):
    """A module that registers targets raised while it was imported (its own bug, or a missing
    dependency); the message names the module, the exception and its last frames."""


class OracleUnavailable(FuzzgradError, ImportError):
    """An optional oracle backend (JAX) is needed but not installed."""


class ReproducerError(FuzzgradError, ValueError):
    """A reproducer file or failure id could not be read."""
