"""Functions used the way their authors use them (issue #24): no false alarm where correct code
is written as torch's own tests and AMP training write it, and no blind spot there either.
The corpus pairs are in tests/corpus/correct_usage.py and buggy_usage.py."""

from __future__ import annotations

import pytest
import torch
from corpus._usage import exp_backward, numpy_exp_

from fuzzgrad.properties.case import WRITES_EXPANDED
from fuzzgrad.properties.checker import Checker
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import Case, CotangentRecipe
from fuzzgrad.verdict.judge import Discard

NumpyExp_ = numpy_exp_(exp_backward)


@pytest.mark.parametrize("requires_grad", [True, False])
def test_an_expanded_input_an_in_place_function_writes_is_a_counted_discard(requires_grad):
    """numpy writes into an expanded input without a word (each element several times), then
    autograd refuses it (a leaf that requires grad) or fuzzgrad sees the input returned: the
    input is restored through its one stored slice and the case discarded, not failed."""
    target = make_target(NumpyExp_, reference=torch.exp, name="numpy_exp_")
    x = torch.tensor([0.5, -1.0]).reshape(2, 1).expand(2, 3)
    before = x.clone()
    case = Case((x,), (requires_grad,), (CotangentRecipe(),), dtype=torch.float32)
    checker = Checker(target, ["forward", "vjp", "purity"])
    with pytest.raises(Discard, match="expanded"):
        checker.check(case)
    assert torch.equal(x, before)
    assert checker.stats.discards == {WRITES_EXPANDED: 1}
