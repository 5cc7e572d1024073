"""Hypothesis strategies for fuzzing autograd Functions (imported as ``fuzzgrad.strategies``).

Public API. Strategies are values: each knob of `tensors` takes a value or a strategy, and every
choice is ordered simplest-first (float64, CPU, contiguous, small, plain values) so that
shrinking leaves only the factor that matters. `TensorSpec` (what ``fuzzgrad.tensor`` makes) is
a strategy too, for a user's own ``@st.composite``: the tensors of one test case share a `Call`
(one dtype, one size per name). `shapes` draws consistent shapes for spec strings, `cases` whole
calls of a registered target, and `contract_violation` says whether a case is one a target's
inputs can produce.
"""

from ._cases import (
    Case,
    CotangentRecipe,
    cases,
    cotangent_recipes,
    requires_grad_masks,
)
from ._contract import contract_dtypes
from ._contract import violation as contract_violation
from ._layouts import LAYOUTS, Layout, arrange, describe_layout, describe_view, effective_kind
from ._shapes import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_SIDE, SIZES, ladder, shapes
from ._spec import ArgRecipe, Call, Constant, DimSpec, SizeSpec, StrategyArg, TensorSpec
from ._structures import STRUCTURES
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
    "DEFAULT_MAX_SIDE",
    "EDGE_CLASSES",
    "FLOAT_DTYPES",
    "LAYOUTS",
    "NONFINITE_CLASSES",
    "SIZES",
    "STRUCTURES",
    "ArgRecipe",
    "Call",
    "Case",
    "Constant",
    "CotangentRecipe",
    "DimSpec",
    "InvalidStrategyArgument",
    "Layout",
    "SizeSpec",
    "StrategyArg",
    "TensorSpec",
    "Values",
    "arrange",
    "cases",
    "contract_dtypes",
    "contract_violation",
    "cotangent_recipes",
    "describe_layout",
    "describe_view",
    "devices",
    "dtypes",
    "edge_value",
    "effective_kind",
    "fill",
    "ladder",
    "layouts",
    "requires_grad_masks",
    "shapes",
    "tensors",
    "values",
]
