"""Correct Functions, part 3: Triton kernels (see `buggy_triton`), registered where Triton is
usable. The built-in `fuzzgrad.targets.triton_kernels` are the other correct twins."""

import fuzzgrad as fg
from fuzzgrad.registry.target import property_names
from fuzzgrad.targets import _triton

if _triton.USABLE:
    # The corpus folder is on sys.path while fuzzgrad imports a corpus file.
    from _triton_twins import TritonRMSNormAtomicWeightGrad, like

    options = like("TritonRMSNorm")
    if not _triton.INTERPRETED:
        # On a GPU the order of float atomic adds varies from run to run, and so may the last
        # bits of the weight gradient: `determinism` would say so, rightly. (The interpreter
        # runs the programs one after another.)
        options["properties"] = [p for p in property_names() if p != "determinism"]
    fg.register(TritonRMSNormAtomicWeightGrad, **options)
