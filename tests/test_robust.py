"""No finding lost to an error of fuzzgrad's own (issue 23): a saved tensor without storage in
the second-order hint, ``fuzzgrad.tensor`` specs nested in a plain strategy, and size bounds
that a draw could break (``1<=k<n`` drawing ``n = 0``)."""

from __future__ import annotations

import itertools
import random
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine import explore as _explore
from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.oracles.evaluation import place
from fuzzgrad.registry.grammar import intervals, parse_size
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import cases, contract_violation

FAST = settings(max_examples=60, derandomize=True, suppress_health_check=list(HealthCheck))


def _square(x, *rest):
    return x * x


# -- 1. the second-order hint reads any saved tensor ---------------------------------------------


class SquareSavesSparse(Function):
    """x * x, whose forward saves a sparse copy of x without a graph: first order is right, the
    double backward misses d(2x)/dx."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.detach().to_sparse())
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (s,) = ctx.saved_tensors
        return grad * 2 * s.to_dense()


def test_a_function_saving_a_sparse_tensor_fails_second_order_instead_of_erroring():
    target = make_target(
        SquareSavesSparse, reference=_square, jax_reference=_square, name="SquareSavesSparse"
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


class Add(Function):
    @staticmethod
    def forward(ctx, x, y):
        return x + y

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


def _add(x, y):
    return x + y


def test_tensor_specs_nested_in_st_tuples_share_a_variadic_and_pass():
    target = make_target(
        Add,
        reference=_add,
        jax_reference=_add,
        inputs=st.tuples(fg.tensor("*b n"), fg.tensor("*b n")),
        name="AddNested",
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


class Take(Function):
    """x[..., :k] (any k the spec allows)."""

    @staticmethod
    def forward(ctx, x, k):
        ctx.k, ctx.n = k, x.shape[-1]
        return x[..., :k].clone()

    @staticmethod
    def backward(ctx, grad):
        pad = grad.new_zeros(grad.shape[:-1] + (ctx.n - ctx.k,))
        return torch.cat([grad, pad], -1), None


def _take(x, k):
    return x[..., :k]


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
        Take, reference=_take, inputs=[fg.tensor(shape), fg.size(size)], name="Take"
    )
    for case in _explored(target, 300):
        assert contract_violation(target, case, case) is None, case
    name, bounds = parse_size(size)
    assert intervals(bounds)[name][0] == 1 and min(v[0] for v in intervals(bounds).values()) >= 1


def test_an_impossible_bound_is_a_registration_error_naming_target_and_bound():
    with pytest.raises(fg.InvalidRegistration, match=r"'TakeNone'.*k<=n-1") as info:
        make_target(
            Take, reference=_take, inputs=[fg.tensor("b n<=1"), fg.size("1<=k<n")], name="TakeNone"
        )
    assert "k>=1" in str(info.value) and "n<=1" in str(info.value)
    result = fuzz_target(
        make_target(Take, reference=_take, inputs=[fg.tensor("b n<=1"), fg.size("k<n")]),
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


class TripleAndCount(Function):
    """(3 * x, x.numel()): a non-tensor output, compared by value with the reference's."""

    @staticmethod
    def forward(ctx, x):
        return x * 3, x.numel()

    @staticmethod
    def backward(ctx, grad, _count):
        return grad * 3


def test_a_non_tensor_output_equal_to_the_references_passes():
    target = make_target(
        TripleAndCount,
        reference=lambda x: (x * 3, x.numel()),
        jax_reference=lambda x: (x * 3, x.size),
        name="TripleAndCount",
    )
    result = fuzz_target(target, max_examples=30, derandomize=True)
    assert result.status == "passed", (result.status, result.error, result.failures)


class Double(Function):
    """2 * x; y is not differentiated (None gradient)."""

    @staticmethod
    def forward(ctx, x, y):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2, None


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
    ("spec", "says"),
    [
        (lambda: fg.tensor(structure="positive_definite"), "square matrix"),
        (lambda: fg.tensor("n<=1 m n>=2"), "n>=2"),
    ],
)
def test_a_wrong_spec_inside_a_strategy_is_a_registration_error_naming_the_target(spec, says):
    target = make_target(_square, reference=_square, inputs=st.tuples(spec()), name="Wrong")
    result = fuzz_target(target, max_examples=10, derandomize=True)
    assert result.status == "error" and result.error["kind"] == "registration", result.error
    assert "'Wrong'" in result.error["message"] and says in result.error["message"]
