"""Hand-checked equivalent mutants: no oracle can tell them from the original Function.

Each entry survived every tool (fuzzgrad also with the longer confirm budget), was read, and
was run through the dense test (``python -m bench.mutants.dense ID``: 400 cases from
fuzzgrad's own strategy, every dtype and layout, plus every finite float16 and bfloat16 value
for one-input Functions), comparing gradients and Hessian-vector products with the original's
bit for bit. The benchmark lists these and does not count them; a listed mutant that some tool
kills is reported as stale. Survivors that the dense test shows to differ are *not* listed
here: they are misses, discussed in benchmarks.md.
"""

_INDEX = (
    "the saved tensor is an int64 index: it never requires grad, so detaching it changes "
    "nothing (dense test: identical)"
)
_ONCE = (
    "backward is once_differentiable, so no double backward can see the detach "
    "(dense test: identical)"
)
_PROMOTED = (
    "the other operand is already float32, so type promotion upcasts anyway "
    "(dense test: bitwise identical)"
)

EQUIVALENT: dict[str, str] = {
    "Gather:detach_saved:0": _INDEX,
    "ScatterAdd:detach_saved:0": _INDEX,
    "IndexSelect:detach_saved:0": _INDEX,
    "MaxWithIndex:detach_saved:0": _INDEX,
    "MaskedMean:detach_saved:0": "the saved mask is bool and never requires grad (identical)",
    "NumpyTanh:detach_saved:0": _ONCE,
    "LogCosh:detach_saved:0": _ONCE,
    "StraightThroughSign:detach_saved:0": (
        "x only selects a mask (|x| <= 1) whose derivative is zero everywhere it exists, so the "
        "double backward is unchanged (dense test: identical)"
    ),
    "CausalAttention:swap_grads:0": (
        "the swapped returns are zeros for an empty input, and q and k share the shape "
        "'b s d' and the dtype, so zeros_like(k) is zeros_like(q) (dense test: identical)"
    ),
    "InplaceReLU:detach_saved:0": (
        "the saved output only feeds the mask out > 0, whose derivative is zero wherever it "
        "exists, so the double backward is unchanged (dense test: identical)"
    ),
    "StableSoftplus:low_precision:0": _PROMOTED,
    "LogSumExp:low_precision:0": _PROMOTED,
    "LogCosh:low_precision:0": _PROMOTED,
    "SmoothL1:low_precision:0": _PROMOTED,
    "MaskedMean:low_precision:0": (
        "grad / count is one correctly rounded division either way, then cast to the input "
        "dtype (dense test: identical)"
    ),
    "CumSum:low_precision:0": (
        "CPU cumsum accumulates half in float32 anyway; only the rounding order differs "
        "(dense test: < 0.5 ulp of the largest element, float16 only; second order identical)"
    ),
}
