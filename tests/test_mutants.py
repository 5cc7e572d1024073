"""The mutation benchmark's own checks: operators make valid, distinct mutants that the tools
can run, and fuzzgrad kills a planted bug and shrinks it (the full benchmark is
``python -m bench.mutants.run``; see benchmarks.md)."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.mutants.mutants import build, builtin_targets, mutants_of  # noqa: E402
from bench.mutants.operators import FunctionInfo, analyse, mutations  # noqa: E402


@pytest.fixture(scope="module")
def targets():
    return builtin_targets()


@pytest.mark.parametrize(
    ("name", "operators"),
    [
        (
            "Linear",
            {
                "drop_grad",
                "flip_sign",
                "swap_grads",
                "drop_transpose",
                "view_for_reshape",
                "detach_saved",
                "change_constant",
            },
        ),
        (
            "LayerNorm",
            {
                "drop_grad",
                "flip_sign",
                "mean_for_sum",
                "wrong_dim",
                "low_precision",
                "inplace_grad",
                "swap_grads",
            },
        ),
    ],
)
def test_operators_make_valid_distinct_mutants(targets, name, operators):
    target = targets[name]
    mutants = mutants_of(target)
    assert operators <= {m.operator for m in mutants}
    sources = [m.source for m in mutants]
    assert len(set(sources)) == len(sources), "every mutant is distinct Python"
    assert len({m.id for m in mutants}) == len(mutants)
    for m in mutants:
        ast.parse(m.source)
        assert m.change.count("`") >= 2
        mutated = build(m, target)
        assert mutated.function is not target.function
        assert mutated.name == m.id and mutated.inputs == target.inputs


def test_skip_loop_tail_breaks_after_the_first_iteration():
    source = textwrap.dedent("""
        def backward(ctx, grad):
            out = grad
            for k in range(3):
                out = out * 2
            return out
    """)
    func = ast.parse(source).body[0]
    (mutant,) = mutations(func, "skip_loop_tail", analyse(func, {"grad"}, {}))
    namespace: dict = {}
    exec(compile(ast.unparse(mutant), "<mutant>", "exec"), namespace)
    assert namespace["backward"](None, 1) == 2
    assert not mutations(func, "swap_grads", FunctionInfo({"grad"}))


def test_fuzzgrad_kills_and_shrinks_a_sign_flip(targets):
    from bench.mutants.tools import run_fuzzgrad

    target = targets["MyElementWise"]
    (mutant,) = [m for m in mutants_of(target, ["flip_sign"]) if "-grad_x" in m.source]
    out = run_fuzzgrad(build(mutant, target), budget=5, seed=0)
    assert out.killed and out.size is not None and out.size <= 2, out


def test_a_crashing_mutant_counts_as_killed_for_gradcheck(targets):
    from bench.mutants.tools import run_gradcheck

    target = targets["Linear"]
    mutant = next(m for m in mutants_of(target, ["swap_grads"]) if "(dw, dx, db)" in m.source)
    out = run_gradcheck(build(mutant, target), budget=2, seed=0)
    assert out.killed and out.examples >= 1, out
