"""Hypothesis strategies for fuzzing autograd Functions (imported as ``fuzzgrad.strategies``).

Strategies are values: each knob of `tensors` takes a value or a strategy, and every choice is
ordered simplest-first (float64, CPU, contiguous, small, plain values) so that shrinking leaves only
the factor that matters. `cases` draws whole calls of a registered target.
"""

from ._cases import (
    ArgRecipe,
    Case,
    CotangentRecipe,
    cases,
    cotangent_recipes,
    requires_grad_masks,
)
from ._layouts import LAYOUTS, Layout, arrange, describe_layout, effective_kind
from ._shapes import DEFAULT_MAX_ELEMENTS, SIZES, shapes
from ._tensors import (
    COMPLEX_DTYPES,
    FLOAT_DTYPES,
    InvalidStrategyArgument,
    devices,
    dtypes,
    layouts,
    tensors,
    values,
)
from ._values import EDGE_CLASSES, NONFINITE_CLASSES, Values, edge_value, fill

__all__ = [
    "COMPLEX_DTYPES",
    "DEFAULT_MAX_ELEMENTS",
    "EDGE_CLASSES",
    "FLOAT_DTYPES",
    "LAYOUTS",
    "NONFINITE_CLASSES",
    "SIZES",
    "ArgRecipe",
    "Case",
    "CotangentRecipe",
    "InvalidStrategyArgument",
    "Layout",
    "Values",
    "arrange",
    "cases",
    "cotangent_recipes",
    "describe_layout",
    "devices",
    "dtypes",
    "edge_value",
    "effective_kind",
    "fill",
    "layouts",
    "requires_grad_masks",
    "shapes",
    "tensors",
    "values",
]
