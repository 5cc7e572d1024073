"""Hypothesis strategies for fuzzing autograd Functions (imported as ``fuzzgrad.strategies``).

Strategies are values: each knob of `tensors` takes a value or a strategy, and every choice is
ordered simplest-first (float64, CPU, contiguous, small, plain values) so that shrinking leaves only
the factor that matters.
"""

from ._cases import (
    ArgRecipe,
    Case,
    CotangentRecipe,
    cases,
    cotangent_recipes,
    requires_grad_masks,
    spec_args,
)
from ._tensors import (
    DEFAULT_MAX_ELEMENTS,
    FLOAT_DTYPES,
    SIZES,
    devices,
    layouts,
    shapes,
    tensors,
    values,
)
from ._values import EDGE_CLASSES, LAYOUTS, Layout, Values, describe_layout

__all__ = [
    "DEFAULT_MAX_ELEMENTS",
    "EDGE_CLASSES",
    "FLOAT_DTYPES",
    "LAYOUTS",
    "SIZES",
    "ArgRecipe",
    "Case",
    "CotangentRecipe",
    "Layout",
    "Values",
    "cases",
    "cotangent_recipes",
    "describe_layout",
    "devices",
    "layouts",
    "requires_grad_masks",
    "shapes",
    "spec_args",
    "tensors",
    "values",
]
