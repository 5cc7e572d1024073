"""The verdict's excuses at their edges (issue #24): each forgives a correct Function on an input
that looked wrong before it, and still fails a planted bug on the same input."""

from __future__ import annotations

from pathlib import Path

import torch

from fuzzgrad.engine.replay import replay
from fuzzgrad.registry.discovery import load_targets

CORPUS = Path(__file__).parent / "corpus"


CORRECT = {t.name: t for t in load_targets([str(CORPUS / "correct_verdict.py")])}
BUGGY = {t.name: t for t in load_targets([str(CORPUS / "buggy_verdict.py")])}
F16 = torch.float16


def h16(*values):
    return torch.tensor(values, dtype=F16)


# -- calibration at the dtype: forward mode --------------------------------------------------------

#: x * y in float16 whose jvp (tangents of direction seed 0: 0.3923, -0.2235) is -0.0883 exactly,
#: a difference of products of ~275 that float16 rounds to -0.25, as the reference math does.
JVP_CANCELLING = [h16(1230.0), h16(700.5)]


def test_a_half_precision_jvp_is_allowed_the_references_error_at_that_dtype():
    args = JVP_CANCELLING
    assert replay(CORRECT["MulJvpHalf"], "forward_ad", args, [0, 1], [h16(1.0)]) == 0


def test_a_jvp_from_float8_copies_still_fails_on_the_same_input():
    args = JVP_CANCELLING
    assert replay(BUGGY["MulJvpHalfFloat8Saved"], "forward_ad", args, [0, 1], [h16(1.0)]) == 1
