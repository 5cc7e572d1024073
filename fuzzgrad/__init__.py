"""fuzzgrad: property-based fuzzing of hand-written ``torch.autograd.Function`` backward passes.

Register a Function with its reference math (torch and JAX); fuzzgrad draws varied inputs,
compares outputs and gradients against both references and shrinks every failure to a standalone
reproducer. Importing this package is cheap: torch and JAX load only when something runs.
"""

from fuzzgrad._version import __version__
from fuzzgrad.errors import (
    FuzzgradError,
    InvalidRegistration,
    OracleUnavailable,
    ReproducerError,
    ShapeSpecError,
    TargetNotFound,
)
from fuzzgrad.registry.spec import TensorSpec, tensor
from fuzzgrad.registry.target import Target, register, registered


def check(fn, /, **kwargs):  # noqa: ANN001, ANN003, ANN201 - thin lazy wrapper
    """Fuzz one Function inside any test; raises AssertionError with the shrunk case on failure.

    See `fuzzgrad.integrations.check.check` for the arguments.
    """
    from fuzzgrad.integrations.check import check as _check

    return _check(fn, **kwargs)


__all__ = [
    "FuzzgradError",
    "InvalidRegistration",
    "OracleUnavailable",
    "ReproducerError",
    "ShapeSpecError",
    "Target",
    "TargetNotFound",
    "TensorSpec",
    "check",
    "register",
    "registered",
    "tensor",
    "__version__",
]
