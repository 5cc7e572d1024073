"""Planted bugs, part 4: Triton kernels (twins of `fuzzgrad.targets.triton_kernels`, written in
`_triton_twins`), each right on a row that fits in one block of the kernel.

Registered only where Triton is usable (see `fuzzgrad.targets._triton`): on a CPU the kernels
run in Triton's interpreter. ``planted`` is as in `buggy`; ``crosses`` adds what the shrunk
first input must span, the smallest size that crosses a block boundary: ``("columns", k)``, a last
dim of k, or ``("rows", k)``, k rows in its leading dims together (``("rows", k, m)``: k to m,
for a bug that also needs values just so: kept in half precision, the shares of a weight
gradient are wrong beyond an ulp only where they cancel, and a shrunk case keeps the rows that
make them cancel); ``max_elements`` allows the elements that takes.
"""

import fuzzgrad as fg
from fuzzgrad.targets import _triton

if _triton.USABLE:
    # The corpus folder is on sys.path while fuzzgrad imports a corpus file.
    from _triton_twins import (
        TritonRMSNormHalfShares,
        TritonRMSNormMissingStride,
        TritonRMSNormOwnPrecisionSum,
        TritonRMSNormStoredWeightGrad,
        TritonSoftmaxLastBlockMask,
        like,
    )

    from fuzzgrad.targets._triton_kernels import BLOCK_M, BLOCK_N

    fg.register(
        TritonSoftmaxLastBlockMask,
        **like("TritonSoftmax"),
        planted={
            "property": "forward",
            "bug_class": "off-by-one mask on the later blocks",
            "needs": "none",
            "crosses": ("columns", BLOCK_N + 1),
        },
    )
    fg.register(
        TritonRMSNormMissingStride,
        **like("TritonRMSNorm"),
        planted={
            "property": "forward",
            "bug_class": "pointer bumped without the column stride",
            "needs": "layout",
            "crosses": ("columns", BLOCK_N + 1),
            "max_elements": 20,
        },
    )
    fg.register(
        TritonRMSNormOwnPrecisionSum,
        **like("TritonRMSNorm"),
        planted={
            "property": "forward",
            "bug_class": "accumulation in the input's half precision, not float32",
            "needs": "low_precision",
        },
    )
    rows_2d = [fg.tensor("rows n"), fg.tensor("n")]
    fg.register(
        TritonRMSNormHalfShares,
        **like("TritonRMSNorm", inputs=rows_2d),
        planted={
            "property": "vjp",
            "bug_class": "weight-gradient shares kept in half precision",
            "needs": "low_precision",
            "crosses": ("rows", BLOCK_M + 1, 2 * BLOCK_M + 1),
            "max_elements": 20,
            # caught only where the shares cancel: 2 of 8 seeds at 150 examples
            # (bench/catch_rates.py), so not a meta-test (tests/test_meta.py) but a catch rate
            "luck": True,
        },
    )
    fg.register(
        TritonRMSNormStoredWeightGrad,
        **like("TritonRMSNorm", inputs=rows_2d),
        planted={
            "property": "vjp",
            "bug_class": "block shares stored where an atomic add is needed",
            "needs": "none",
            "crosses": ("rows", BLOCK_M + 1),
            "max_elements": 20,
        },
    )
