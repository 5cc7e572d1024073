"""The published libraries in examples/, fuzzed at a small budget, and their verified findings.

Each library's targets are fuzzed once, derandomized: the targets registered as known wrong must
fail (`xfailed`, on the property of their finding) and every other target must pass. Each
reproduction in examples/FINDINGS.md runs as a strict xfail, so a release that fixes a defect
shows up here. A library that is not installed skips, saying how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTALL = "pip install -e '.[examples]'"

# The property each known-wrong target is fuzzed on here (its finding's), and the examples that
# take to find it; the other targets run every property on a few examples.
FINDING_PROPERTIES = {
    "SparsemaxFunction": (["forward"], 40),
    "Entmax15Function": (["forward"], 15),
    "EntmaxBisectFunction": (["second_order"], 10),
    "NormmaxBisectFunction": (["forward"], 15),
    "BudgetBisectFunction": (["vjp"], 20),  # its gradient's wrong shape is one autograd sums
    "SparsemaxLossFunction": (["second_order"], 5),
    "Entmax15LossFunction": (["second_order"], 5),
    "EntmaxBisectLossFunction": (["second_order"], 10),
    "so3_Exp": (["vmap"], 5),
    "_NullSpaceBasis": (["second_order"], 5),
}
PASSING_EXAMPLES = 15


def _needs(library: str) -> None:
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed: {INSTALL}")
    with warnings.catch_warnings():  # its own deprecations (pypose: torch.jit.script) are not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(library)


def _reproductions() -> list:
    text = (EXAMPLES / "FINDINGS.md").read_text()
    blocks = re.findall(r"### ([A-Z]\d+)\n\n```python\n(.*?)```", text, re.S)
    return [
        pytest.param(
            re.search(r"^from (\w+)", code, re.M).group(1),
            code,
            id=finding,
            marks=pytest.mark.xfail(strict=True, reason=f"{finding} in examples/FINDINGS.md"),
        )
        for finding, code in blocks
    ]


@pytest.mark.parametrize("library, code", _reproductions())
def test_finding_reproduces(library, code):
    _needs(library)
    exec(compile(code, f"FINDINGS.md ({library})", "exec"), {})


LIBRARIES = ["entmax", "pypose", "kornia"]
SLOW_TO_FIND = {"entmax"}


def _fuzz(library: str, report_dir: Path, *, known_wrong: bool) -> tuple[dict, dict]:
    """Fuzz the library's targets that are (or are not) registered as known wrong: what each
    gave (status, failing properties) and what it should give."""
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.discovery import load_targets

    got, expected = {}, {}
    for target in load_targets([str(EXAMPLES / f"{library}_ops.py")]):
        if bool(target.xfail) != known_wrong:
            continue
        properties, examples = FINDING_PROPERTIES.get(target.name, (None, PASSING_EXAMPLES))
        result = fuzz_target(
            target,
            max_examples=examples,
            properties=properties,
            derandomize=True,
            report_dir=report_dir,
        )
        got[target.name] = (result.status, sorted({f.property for f in result.failures}))
        expected[target.name] = ("xfailed", properties) if known_wrong else ("passed", [])
    return got, expected


@pytest.mark.parametrize("library", LIBRARIES)
def test_examples_pass(library, tmp_path):
    _needs(library)
    got, expected = _fuzz(library, tmp_path, known_wrong=False)
    assert got == expected


@pytest.mark.parametrize("library", LIBRARIES)
def test_examples_find_their_findings(library, tmp_path):
    # entmax's eight known-wrong targets take minutes to find and shrink on two cores: CI asserts
    # their findings through the reproductions above, and fuzzes them where FUZZGRAD_EXAMPLES=full.
    if library in SLOW_TO_FIND and os.environ.get("FUZZGRAD_EXAMPLES") != "full":
        pytest.skip(f"finding {library}'s defects takes minutes: FUZZGRAD_EXAMPLES=full")
    _needs(library)
    got, expected = _fuzz(library, tmp_path, known_wrong=True)
    assert got == expected
