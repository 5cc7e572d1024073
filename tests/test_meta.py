"""Meta-tests: planted bugs are caught by the intended property and shrunk; correct Functions
raise no false alarm. The corpus lives in tests/corpus; `bench/meta_corpus.py` runs the same at
nightly scale (1,000 examples per correct Function) and prints the table."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.registry.discovery import load_targets

CORPUS = Path(__file__).parent / "corpus"
BUGGY_EXAMPLES = 150
CORRECT_EXAMPLES = 100

#: What a bug's "needs" means for the diagnosis: the factor key it must name.
NEEDS_FACTOR = {
    "layout": "layout",
    "stride0": "layout",
    "cotangent_layout": "cotangent_layout",
    "dtype:float16": "dtype",
    "dtype:float32": "dtype",
    "low_precision": "dtype",
    "requires_grad": "requires_grad",
    "unused_outputs": "unused_outputs",
    "conj_view": "conj_view",
}


def _targets(prefix: str):
    return [t for f in sorted(CORPUS.glob(f"{prefix}*.py")) for t in load_targets([str(f)])]


#: Planted bugs caught only with luck (values just so) have a catch rate in bench/catch_rates.py
#: instead of a meta-test here: a derandomized draw that misses them says nothing.
BUGGY = [t for t in _targets("buggy") if not t.options["planted"].get("luck")]
CORRECT = _targets("correct")


def test_corpus_is_large_enough_and_covers_every_property():
    from fuzzgrad.properties import PROPERTIES

    assert len(BUGGY) >= 20 and len(CORRECT) >= 15
    planted = {t.options["planted"]["property"] for t in BUGGY}
    # cuda needs a GPU; reference_disagreement is about references, not the Function: its
    # planted cases (a wrong torch or JAX reference) are in tests/corpus/broken.py
    assert planted >= set(PROPERTIES) - {"cuda", "reference_disagreement"}, (
        set(PROPERTIES) - planted
    )


@pytest.mark.parametrize("target", BUGGY, ids=[t.name for t in BUGGY])
def test_planted_bug_is_caught_by_its_property_and_shrunk(target, tmp_path):
    planted = target.options["planted"]
    # A slow target (a Triton kernel in the CPU interpreter) is fuzzed for its planted property
    # alone here (a fifth of the time); bench/catch_rates.py runs it with every property.
    only = [planted["property"]] if target.slow else None
    result = fuzz_target(
        target, max_examples=BUGGY_EXAMPLES, derandomize=True, report_dir=tmp_path, properties=only
    )
    assert result.error is None, result.error
    by_property = {f.property: f for f in result.failures}
    assert planted["property"] in by_property, (
        f"{target.name}: expected a {planted['property']} failure, got {sorted(by_property)}"
    )
    failure = by_property[planted["property"]]
    elements = sum(max(1, a.numel()) for a in failure.case.args if hasattr(a, "numel"))
    assert elements <= planted.get("max_elements", 16), f"not shrunk: {failure.inputs}"
    if "crosses" in planted:  # a kernel bug past a block boundary: shrunk to just past it
        what, *sizes = planted["crosses"]
        shape = failure.case.args[0].shape
        spans = shape[-1] if what == "columns" else math.prod(shape[:-1])
        assert sizes[0] <= spans <= sizes[-1], f"{what}: {spans}, not {sizes} ({failure.inputs})"
    factor = NEEDS_FACTOR.get(planted["needs"])
    if factor is not None:
        assert factor in failure.factors, (failure.diagnosis, failure.factors)
    assert Path(failure.reproducer).exists()


@pytest.mark.parametrize("target", CORRECT, ids=[t.name for t in CORRECT])
def test_correct_function_raises_no_false_alarm(target):
    result = fuzz_target(target, max_examples=CORRECT_EXAMPLES, derandomize=True)
    assert result.error is None, result.error
    assert not result.failures, [f"{f.property}: {f.message}" for f in result.failures]
