"""No finding lost to an error of fuzzgrad's own (issue 23): a saved tensor without storage in
the second-order hint, ``fuzzgrad.tensor`` specs nested in a plain strategy, and size bounds
that a draw could break (``1<=k<n`` drawing ``n = 0``)."""

from __future__ import annotations

import itertools
import random
import sys
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzgrad as fg
from fuzzgrad.engine import explore as _explore
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.oracles.evaluation import place
from fuzzgrad.registry.grammar import intervals, parse_size
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import cases, contract_violation

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.self_fuzz_family import (  # noqa: E402
    SAVING,
    Double,
    Mul,
    Take,
    TripleAndCount,
    count,
    count_jax,
    mul,
    take,
)

FAST = settings(max_examples=60, derandomize=True, suppress_health_check=list(HealthCheck))


def _square(x, *rest):
    return x * x


# -- 1. the second-order hint reads any saved tensor ---------------------------------------------


def test_a_function_saving_a_sparse_tensor_fails_second_order_instead_of_erroring():
    # x * x, whose forward saves a sparse copy of x (without a graph) that its backward reads
    target = make_target(
        SAVING["sparse"], reference=_square, jax_reference=_square, name="SquareSavesSparse"
    )
    result = fuzz_target(target, max_examples=60, derandomize=True, properties=["second_order"])
    assert result.status == "failed", (result.status, result.error)
    (failure,) = result.failures
    assert failure.property == "second_order"
    assert "1 tensor(s) its forward computed" in failure.message, failure.message


SAVED_KINDS = (
    "sparse_coo",
    "sparse_csr",
    "complex",
    "zero_size",
    "non_contiguous",
    "meta",
    "nested",
)


def _saved(kind: str) -> torch.Tensor:
    x = torch.arange(6.0).reshape(2, 3)
    with warnings.catch_warnings():  # sparse CSR and nested tensors warn that they are beta
        warnings.simplefilter("ignore")
        made = {
            "sparse_coo": lambda: x.to_sparse(),
            "sparse_csr": lambda: x.to_sparse_csr(),
            "complex": lambda: torch.complex(x, x),
            "zero_size": lambda: torch.empty(0, 3),
            "non_contiguous": lambda: x.t(),
            "meta": lambda: torch.empty(2, 3, device="meta"),
            "nested": lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        }
        return made[kind]()


@pytest.mark.parametrize("kind", SAVED_KINDS)
def test_place_never_raises_and_tells_tensors_apart(kind):
    t = _saved(kind)
    got = place(t)
    if kind in ("meta", "nested"):
        assert got is None
    elif kind == "zero_size":  # no storage, no elements: any two are alike
        assert got == place(t.clone())
    else:
        assert got is not None and got == place(t) and got != place(t.clone())


# -- 2. fuzzgrad.tensor inside a plain strategy ------------------------------------------------


def test_tensor_specs_nested_in_st_tuples_share_a_variadic_and_pass():
    target = make_target(
        Mul,
        reference=mul,
        jax_reference=mul,
        inputs=st.tuples(fg.tensor("*b n"), fg.tensor("*b n")),
        name="MulNested",
    )
    result = fuzz_target(target, max_examples=30, derandomize=True, properties=["vjp"])
    assert result.status == "passed", (result.status, result.error)


def test_nested_tensor_specs_keep_bounds_drawn_by_an_earlier_tensor():
    # the second tensor bounds a name the first drew: a draw breaking it is discarded
    @given(st.tuples(fg.tensor("n"), fg.tensor("k<n")))
    @FAST
    def test(pair):
        x, y = pair
        assert y.shape[0] < x.shape[0]

    test()


# -- 3. size bounds hold on every draw ---------------------------------------------------------


def _explored(target, n: int, seed: int = 0) -> list:
    """``n`` cases of ``target`` as exploration draws them (seeded `FastData`)."""
    rng, strategy, out = random.Random(seed), cases(target), []
    for _ in range(n):
        data = _explore.FastData(rng, rng.choice(_explore.SIMPLICITY))
        with data.drawing():
            out.append(strategy.do_draw(data))
    return out


@pytest.mark.parametrize(("shape", "size"), [("b n", "1<=k<n"), ("n m", "1<=n<m")])
def test_a_size_bounded_below_by_one_never_leaves_its_partner_too_small(shape, size):
    target = make_target(
        Take, reference=take, inputs=[fg.tensor(shape), fg.size(size)], name="Take"
    )
    for case in _explored(target, 300):
        assert contract_violation(target, case, case) is None, case
    name, bounds = parse_size(size)
    assert intervals(bounds)[name][0] == 1 and min(v[0] for v in intervals(bounds).values()) >= 1


def test_an_impossible_bound_is_a_registration_error_naming_target_and_bound():
    with pytest.raises(fg.InvalidRegistration, match=r"'TakeNone'.*k<=n-1") as info:
        make_target(
            Take, reference=take, inputs=[fg.tensor("b n<=1"), fg.size("1<=k<n")], name="TakeNone"
        )
    assert "k>=1" in str(info.value) and "n<=1" in str(info.value)
    result = fuzz_target(
        make_target(Take, reference=take, inputs=[fg.tensor("b n<=1"), fg.size("k<n")]),
        max_examples=20,
        derandomize=True,
        properties=["vjp"],
    )
    assert result.status == "passed", (result.status, result.error)  # k = 0 is allowed


NAMES = ("n", "m", "k")
OPS = ("<", "<=", ">", ">=")


@st.composite
def bounded_registrations(draw):
    """Shape strings and fuzzgrad.size entries with random bounds: each name has constant
    bounds and bounds by names before it (registration rejects cycles)."""
    names = NAMES[: draw(st.integers(1, 3))]
    tokens = []
    for j, name in enumerate(names):
        for _ in range(draw(st.integers(0, 2))):
            op = draw(st.sampled_from(OPS))
            other = draw(st.sampled_from([str(c) for c in range(4)] + list(names[:j])))
            tokens.append(f"{name}{op}{other}")
    inputs: list = [fg.tensor(" ".join(names))]
    for token in tokens:
        inputs.append(fg.size(token) if draw(st.booleans()) else fg.tensor(f"_ {token}"))
    return inputs, tokens


def _feasible(tokens: list[str]) -> bool:
    """Whether some sizes 0..8 meet every token (by brute force, independently of intervals)."""
    parsed = [parse_size(t)[1][0] for t in tokens]
    for values in itertools.product(range(9), repeat=len(NAMES)):
        sizes = dict(zip(NAMES, values))
        if all(
            (sizes[b.name] <= b.limit(sizes)) if b.upper else (sizes[b.name] >= b.limit(sizes))
            for b in parsed
        ):
            return True
    return False


@given(bounded_registrations())
@settings(FAST, max_examples=80)
def test_drawn_sizes_never_break_a_bound_and_impossible_ones_are_registration_errors(drawn):
    inputs, tokens = drawn
    try:
        target = make_target(_square, reference=_square, inputs=inputs, name="Bounded")
    except fg.InvalidRegistration as exc:
        assert "'Bounded'" in str(exc)
        assert not _feasible(tokens), (tokens, str(exc))
        return
    assert _feasible(tokens), tokens
    for case in _explored(target, 25, seed=len(tokens)):
        assert contract_violation(target, case, case) is None, (tokens, case)


# -- found by fuzzgrad fuzzing itself (tests/test_robust_self_fuzz.py) -------------------------


def test_a_non_tensor_output_equal_to_the_references_passes():
    target = make_target(
        TripleAndCount,
        reference=count,
        jax_reference=count_jax,
        name="TripleAndCount",
    )
    result = fuzz_target(target, max_examples=30, derandomize=True)
    assert result.status == "passed", (result.status, result.error, result.failures)


def test_second_order_where_only_an_ignored_input_requires_grad_is_no_crash():
    # x never requires grad: the outputs of the reference depend on nothing differentiated
    target = make_target(
        Double,
        reference=lambda x, y: x * 2,
        inputs=[fg.tensor("n", requires_grad=False), fg.tensor("m")],
        name="DoubleFrozen",
    )
    result = fuzz_target(target, max_examples=40, derandomize=True, properties=["second_order"])
    assert result.status == "passed", (result.status, result.error)


def test_nested_specs_keep_requires_grad_false_and_the_registrations_sizes():
    target = make_target(
        Double,
        reference=lambda x, y: x * 2,
        inputs=st.tuples(fg.tensor("n"), fg.tensor("n m", requires_grad=False)),
        options={"sizes": {"m": (2, 5)}},
        name="DoubleNested",
    )
    drawn = []

    @given(cases(target))
    @FAST
    def test(case):
        drawn.append(case)
        assert not case.requires_grad[1]
        assert 2 <= case.args[1].shape[1] <= 5

    test()
    assert any(case.requires_grad[0] for case in drawn)


@pytest.mark.parametrize(
    ("specs", "says"),
    [
        (lambda: [fg.tensor(structure="positive_definite")], "square matrix"),
        (lambda: [fg.tensor("n<=1 m n>=2")], "n>=2"),
        (lambda: [fg.tensor("n<=1"), fg.tensor("m n>=2")], "n>=2"),  # bounds of two tensors
        # the first tensor keeps to one element, the second needs m >= 3: always discarded
        (lambda: [fg.tensor("b m #m"), fg.tensor("m>=3")], "m>=3"),
    ],
)
def test_a_wrong_spec_inside_a_strategy_is_a_registration_error_naming_the_target(specs, says):
    target = make_target(
        _square,
        reference=_square,
        inputs=st.tuples(*specs()),
        name="Wrong",
        options={"max_elements": 1},
    )
    result = fuzz_target(target, max_examples=10, derandomize=True)
    assert result.status == "error" and result.error["kind"] == "registration", result.error
    assert "'Wrong'" in result.error["message"] and says in result.error["message"]


@pytest.mark.parametrize("low", [None, 0.0])
def test_a_positive_structure_keeps_its_high(low):
    # a zero became 1 (above high=0.5), and |x| of a value below -0.5 went past high too
    target = make_target(
        _square, reference=_square, inputs=[fg.tensor("n", low=low, high=0.5, structure="positive")]
    )
    for case in _explored(target, 200):
        assert contract_violation(target, case, case) is None, case


def test_a_real_structure_drawn_in_a_strategy_for_complex_dtypes_is_a_registration_error():
    """Self-fuzzing found structure='sorted' inside a user's strategy, with complex dtypes,
    crashing in torch's sort (an internal exception): it is the registration's mistake."""
    target = make_target(
        lambda x: x * x,
        reference=lambda x: x * x,
        name="square",
        inputs=st.tuples(fg.tensor("n", structure="sorted")),
        dtypes=[torch.complex128],
    )
    result = fuzz_target(target, max_examples=5, derandomize=True)
    assert result.error["kind"] == "registration", result.error
    assert "'square'" in result.error["message"] and "real" in result.error["message"]
