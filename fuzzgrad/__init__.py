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
from fuzzgrad.registry.spec import dim, size, tensor
from fuzzgrad.registry.target import Target, register, registered


def __getattr__(name: str):  # noqa: ANN202 - the spec class is a Hypothesis strategy: lazy
    if name == "TensorSpec":
        from fuzzgrad.strategies import TensorSpec

        return TensorSpec
    raise AttributeError(f"module 'fuzzgrad' has no attribute {name!r}")


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
    "dim",
    "register",
    "registered",
    "size",
    "tensor",
    "__version__",
]
