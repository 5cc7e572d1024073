"""Input specs: mixed per-argument specs (`fuzzgrad.dim`, `fuzzgrad.size`, strategies, plain
values), `fuzzgrad.tensor` as a Hypothesis strategy, size bounds, sizes past 64, structures,
and the registration errors of each (issue 14, "Input specs"; issue 13, "Sizes past 64")."""

from __future__ import annotations

import functools
import math
import random
from collections import Counter

import hypothesis_torch
import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg
from fuzzgrad.engine import explore as _explore
from fuzzgrad.engine.runner import _TargetRun, fuzz_target
from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import (
    STRUCTURES,
    cases,
    contract_violation,
    describe_layout,
    ladder,
    shapes,
    tensors,
)
from fuzzgrad.strategies._structures import violation

#: The ci profile (derandomized, no database), without the explain phase's re-runs.
FAST = settings(
    settings.get_profile("ci"),
    max_examples=200,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
SHRINK = settings(FAST, max_examples=2000)


def _explored(strategy, n: int, seed: int = 0) -> list:
    """``n`` draws as exploration makes them (a seeded `FastData`, simplicity mixed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        data = _explore.FastData(rng, rng.choice(_explore.SIMPLICITY))
        with data.drawing():
            out.append(strategy.do_draw(data))
    return out


class RowSum(Function):
    """(x * scale).sum(dim) + 0 * y: a reduction taking a count, a scale, a dim and a tensor
    that needs no grad."""

    @staticmethod
    def forward(ctx, x, count, scale, dim, y):
        ctx.shape, ctx.scale, ctx.dim = x.shape, scale, dim
        return (x * scale).sum(dim)

    @staticmethod
    def backward(ctx, g):
        d = ctx.dim % max(len(ctx.shape), 1)
        g = g.unsqueeze(d) if len(ctx.shape) else g
        return g.expand(ctx.shape) * ctx.scale, None, None, None, None


def _row_sum(x, count, scale, dim, y):
    return (x * scale).sum(dim)


MIXED = [fg.tensor("b n"), st.integers(1, 4), 0.5, fg.dim(0), fg.tensor("n", requires_grad=False)]


def _mixed_target(**kw):
    return make_target(RowSum, reference=_row_sum, inputs=MIXED, name="row_sum", **kw)


# -- mixed per-argument specs --------------------------------------------------------------


def test_each_kind_of_spec_draws_its_argument_and_dtypes_still_apply():
    target = _mixed_target(dtypes=[torch.float32, torch.float16])
    kinds = [s.kind for s in target.inputs]
    assert kinds == ["tensor", "strategy", "constant", "dim", "tensor"]
    dims, counts, dtypes = Counter(), Counter(), Counter()
    for case in _explored(cases(target), 300):
        x, count, scale, dim, y = case.args
        assert 1 <= count <= 4 and scale == 0.5 and y.shape == (x.shape[1],)
        assert -2 <= dim < 2 and not case.requires_grad[4]
        assert x.dtype == y.dtype == case.dtype and x.dtype in (torch.float32, torch.float16)
        dims[dim] += 1
        counts[count] += 1
        dtypes[x.dtype] += 1
    assert set(dims) == {0, 1, -1, -2} and set(counts) == {1, 2, 3, 4} and len(dtypes) == 2


def test_a_mixed_spec_target_is_fuzzed_fast_and_passes():
    result = fuzz_target(_mixed_target(), max_examples=40, derandomize=True)
    assert result.status == "passed" and result.examples == 40, (result.error, result.failures)
    assert isinstance(cases(_mixed_target()), type(cases(make_target(RowSum, reference=_row_sum))))


def test_dims_of_every_rank_and_keepdim_and_sizes():
    target = make_target(
        lambda x, d, k, n, m: x * 1.0,
        reference=lambda x, d, k, n, m: x * 1.0,
        inputs=[fg.tensor(), fg.dim(0), fg.dim(0, keepdim=True), fg.size("k<=n"), "n"],
        name="dims",
    )
    seen_k_at_n = False
    for case in _explored(cases(target), 300):
        x, d, k_dim, k, m = case.args
        r = x.dim()
        assert -max(r, 1) <= d < max(r, 1) and -(r + 1) <= k_dim <= r
        assert 0 <= k <= m.shape[0]
        seen_k_at_n |= k == m.shape[0] > 4
    assert seen_k_at_n, "an explicit bound (k <= n) is itself an edge size worth drawing"


def test_plain_tensors_are_passed_as_a_fresh_copy_each_call():
    w = torch.arange(3.0)
    target = make_target(
        lambda x, w: x * w, reference=lambda x, w: x * w, inputs=[fg.tensor("3"), w], name="w"
    )
    a, b = _explored(cases(target), 2)
    assert torch.equal(a.args[1], w) and a.args[1] is not w and a.args[1] is not b.args[1]
    assert not a.requires_grad[1]


def test_non_tensor_arguments_shrink_too():
    case = find(
        cases(_mixed_target()),
        lambda c: c.args[1] >= 3 and c.args[3] < 0,
        settings=SHRINK,
    )
    assert case.args[1] == 3 and case.args[3] == -1
    assert case.args[0].shape == (1, 1) and case.dtype == torch.float64


class ScaleWrongAbove2(Function):
    """x * s, whose backward is wrong once s > 2."""

    @staticmethod
    def forward(ctx, x, s):
        ctx.s = s
        return x * s

    @staticmethod
    def backward(ctx, g):
        return g * ctx.s * (1.5 if ctx.s > 2 else 1.0), None


@st.composite
def _scales(draw):
    return float(draw(st.integers(1, 3)))


@pytest.mark.parametrize(
    "scale, explored",
    [(st.integers(1, 3).map(float), True), (_scales(), False)],
    ids=["explorable", "composite"],
)
def test_a_strategy_exploration_cannot_draw_falls_back_to_hypothesis(scale, explored, monkeypatch):
    """A composite needs Hypothesis's engine: exploration stops at once and Hypothesis draws
    the run's examples; the planted bug is found and shrunk either way."""
    fallbacks = []
    real = _TargetRun.generate_rest
    monkeypatch.setattr(_TargetRun, "generate_rest", lambda self: (fallbacks.append(1), real(self)))
    target = make_target(
        ScaleWrongAbove2, reference=lambda x, s: x * s, inputs=[fg.tensor(), scale], name="s"
    )
    result = fuzz_target(target, max_examples=60, derandomize=True, properties=["vjp"])
    assert bool(fallbacks) is not explored
    (failure,) = result.failures
    assert failure.case.args[1] == 3.0 and failure.case.args[0].numel() == 1


def test_a_quiet_fallback_runs_the_examples_asked_for():
    target = make_target(
        lambda x, s: x * s, reference=lambda x, s: x * s, inputs=[fg.tensor(), _scales()], name="q"
    )
    result = fuzz_target(target, max_examples=30, derandomize=True, properties=["vjp"])
    assert result.status == "passed" and result.examples >= 30


def test_hypothesis_torch_tensor_strategies_are_argument_specs():
    elements = st.floats(-2, 2, allow_nan=False, width=64)
    other = hypothesis_torch.tensor_strategy(dtype=torch.float64, shape=(3,), elements=elements)
    target = make_target(
        lambda x, y: x * y, reference=lambda x, y: x * y, inputs=[fg.tensor("3"), other], name="h"
    )
    result = fuzz_target(target, max_examples=20, derandomize=True, properties=["vjp"])
    assert result.status == "passed", result.failures
    assert target.inputs[1].requires_grad


# -- fg.tensor is a strategy ---------------------------------------------------------------


@st.composite
def _pair(draw):
    x = draw(fg.tensor("b n"))
    y = draw(fg.tensor("n"))
    w = draw(fg.tensor("n", dtypes=[torch.float32]))
    return x, y, w


def test_fg_tensor_inside_a_composite_shares_dtype_and_sizes_and_keeps_layouts_and_edges():
    dtypes, layouts, edges = Counter(), Counter(), 0
    for x, y, w in _explored(_pair(), 1) + [find(_pair(), lambda t: True, settings=FAST)]:
        assert x.shape[1] == y.shape[0] == w.shape[0] and x.dtype == y.dtype
    seen = []

    @settings(FAST, max_examples=300, phases=[Phase.generate])
    @given(_pair())
    def draw(pair):
        seen.append(pair)

    draw()
    for x, y, w in seen:
        assert x.shape[1] == y.shape[0] == w.shape[0] and x.dtype == y.dtype
        assert w.dtype == torch.float32
        dtypes[x.dtype] += 1
        layouts[describe_layout(x)] += 1
        finite = x[x.isfinite()]
        edges += bool(finite.numel() and finite.abs().max() >= torch.finfo(x.dtype).max / 2)
    assert len(dtypes) == 4 and {"transposed", "sliced", "expanded"} <= set(layouts)
    assert edges > 3, "edge values (the dtype's max) are injected as in a target's cases"


def test_fg_tensor_in_tuples_and_one_of_and_a_targets_dtypes():
    strategy = st.one_of(
        st.tuples(fg.tensor("n"), fg.tensor("n")),
        st.tuples(
            fg.tensor(""),
        ),
    )
    assert find(strategy, lambda t: len(t) == 2 and t[0].shape[0] > 3, settings=FAST)[0].shape == (
        4,
    )
    target = make_target(
        lambda x, y: x * y,
        reference=lambda x, y: x * y,
        inputs=st.tuples(fg.tensor("b n"), fg.tensor("n")),
        dtypes=[torch.float32],
        name="tuple",
    )
    got = find(cases(target), lambda c: c.args[0].numel() > 2, settings=FAST)
    assert got.args[0].dtype == got.args[1].dtype == torch.float32
    assert got.args[0].shape[1] == got.args[1].shape[0]


def test_fg_tensor_inside_a_mixed_specs_strategy_shares_the_cases_dtype_and_sizes():
    target = make_target(
        lambda x, pair: x,
        reference=lambda x, pair: x,
        inputs=[fg.tensor("b n"), st.tuples(fg.tensor("n"), fg.tensor("m"))],
        name="inner",
    )
    for case in _explored(cases(target), 100):
        x, (y, z) = case.args
        assert y.shape == (x.shape[1],) and x.dtype == y.dtype == z.dtype == case.dtype


def test_an_index_tensor_drawn_after_its_size_came_out_zero_is_a_discarded_draw():
    # an earlier tensor of the user's strategy drew n = 0, which leaves no valid index: that
    # draw is discarded (Hypothesis counts it), never an index tensor outside [0, n)
    @st.composite
    def late(draw):
        x = draw(fg.tensor("n"))
        return x, draw(fg.tensor("k", structure="index", high="n"))

    @settings(FAST, max_examples=100)
    @given(late())
    def test(pair):
        x, k = pair
        assert x.shape[0] >= 1 and bool(((k >= 0) & (k < x.shape[0])).all())

    test()


# -- sizes: bounds and past 64 ---------------------------------------------------------------


def test_size_bounds_in_the_spec_and_in_sizes_hold_and_shrink_to_the_lower_bound():
    got = find(shapes(["b n>=3", "k<=n"]), lambda s: True, settings=SHRINK)
    assert got == ((1, 3), (1,))
    for b_n, (k,) in _explored(shapes(["b n>=3", "k<=n"]), 300):
        assert b_n[1] >= 3 and k <= b_n[1]
    target = make_target(
        lambda x: x * 1.0,
        reference=lambda x: x * 1.0,
        inputs=["n"],
        options={"sizes": {"n": (3, 300)}},
    )
    sizes = {c.args[0].shape[0] for c in _explored(cases(target), 400)}
    assert min(sizes) == 3 and max(sizes) == 300 and 65 in sizes


def test_sizes_reach_both_sides_of_powers_of_two_up_to_4096_one_dim_at_a_time():
    assert ladder(4096)[:4] == (65, 127, 128, 129) and ladder(4096)[-2:] == (4095, 4096)
    seen, pairs = set(), set()
    for (n,), (a, b) in _explored(shapes(["n", "a b"]), 3000):
        seen.add(n)
        assert a * b <= 4096
        pairs.add((a > 64) + (b > 64))
    assert set(ladder(4096)) <= seen
    assert 1 in pairs and 2 not in pairs


def test_big_sizes_shrink_to_the_smallest_that_fails():
    assert find(shapes(["n"]), lambda s: s[0][0] > 64, settings=SHRINK) == ((65,),)
    assert find(shapes(["*batch n"]), lambda s: s[0][-1] >= 1000, settings=SHRINK) == ((1023,),)


def test_a_row_past_64_is_seldom_one_repeated_value_and_shrinks_to_varied_values():
    # A size past 64 is drawn for tile and block bugs, which a row of one value (a constant fill,
    # or stride 0 along it) hides: every tile alike. Such fills were about a third of long rows.
    target = make_target(
        lambda x: x.sum(-1), reference=lambda x: x.sum(-1), inputs=[fg.tensor("*batch n")]
    )
    rows = [c.args[0] for c in _explored(cases(target), 1500)]
    rows = [x for x in rows if x.shape[-1] > 64 and x.numel()]
    alike = [x for x in rows if bool((x == x[..., :1]).all())]
    assert len(rows) >= 30 and len(alike) <= len(rows) // 8
    assert all(x.stride(-1) != 0 for x in rows)
    simplest = find(tensors("n", device="cpu"), lambda x: x.shape[0] > 64, settings=SHRINK)
    assert simplest.shape == (65,) and simplest.unique().numel() == 65


def test_max_side_and_upper_bounds_let_a_dim_go_further_and_max_side_holds_it_back():
    wide = make_target(
        lambda x: x * 1.0,
        reference=lambda x: x * 1.0,
        inputs=[fg.tensor("b n", max_side=10_000)],
    )
    got = [c.args[0].shape for c in _explored(cases(wide), 3000)]
    assert max(s[1] for s in got) > 4096 and all(math.prod(s) <= 10_000 for s in got)
    bounded = [s for (s,) in _explored(shapes(["n<=20000"]), 2000)]
    assert max(s[0] for s in bounded) == 20000
    narrow = [s for (s,) in _explored(shapes(["b n"], max_sides=[16]), 500)]
    assert max(max(s) for s in narrow) == 16


# -- structures ----------------------------------------------------------------------------

STRUCTURED = {
    "symmetric": fg.tensor("b n n", structure="symmetric"),
    "positive_definite": fg.tensor("n n", structure="positive_definite", max_cond=50),
    "orthogonal": fg.tensor("*b n n", structure="orthogonal"),
    "well_conditioned": fg.tensor("*b n n", structure="well_conditioned", max_cond=50),
    "unit_rows": fg.tensor("b n", structure="unit_rows"),
    "simplex": fg.tensor("*b n", structure="simplex"),
    "sorted": fg.tensor("b n", structure="sorted", low=-1.0),
    "positive": fg.tensor(structure="positive"),
    "index": fg.tensor("b k", structure="index", high="n"),
}
SIMPLEST = {
    "symmetric": lambda t: (t == 0).all(),
    "positive_definite": lambda t: torch.equal(t, torch.eye(t.shape[-1], dtype=t.dtype)),
    "orthogonal": lambda t: torch.equal(t, torch.eye(t.shape[-1], dtype=t.dtype).expand(t.shape)),
    "well_conditioned": lambda t: torch.equal(
        t, torch.eye(t.shape[-1], dtype=t.dtype).expand(t.shape)
    ),
    "unit_rows": lambda t: (t[..., 0] == 1).all() and (t[..., 1:] == 0).all(),
    "simplex": lambda t: torch.allclose(t, torch.full_like(t, 1 / t.shape[-1])),
    "sorted": lambda t: (t == 0).all(),
    "positive": lambda t: (t == 1).all(),
    "index": lambda t: (t == 0).all(),
}


def test_every_structure_is_covered():
    assert set(STRUCTURED) == set(STRUCTURES) == set(SIMPLEST)


@pytest.mark.parametrize("name", sorted(STRUCTURED))
def test_structures_hold_in_every_dtype_and_layout_and_shrink_to_the_simplest(name):
    spec = STRUCTURED[name]

    @st.composite
    def drawn(draw):
        t = draw(spec)  # first: an index tensor's n is then at least 1
        return draw(fg.tensor("n", dtypes=[torch.float64])), t

    layouts = Counter()
    for bound, t in _explored(drawn(), 400):
        reason = violation(name, t, max_cond=spec.max_cond, low=spec.low, high=bound.shape[0])
        assert reason is None, (reason, t)
        layouts[describe_layout(t) if t.numel() > 1 else "one"] += 1
        if spec.low is not None and t.numel():
            assert t.min() >= spec.low
    assert {"transposed", "sliced"} <= set(layouts), layouts
    _, simplest = find(drawn(), lambda p: p[1].numel() > 1, settings=SHRINK)
    assert SIMPLEST[name](simplest), simplest


def test_positive_definite_inputs_keep_their_condition_number_under_the_cap():
    for t in _explored(fg.tensor("n n", structure="positive_definite", max_cond=20.0), 300):
        if t.numel():
            values = torch.linalg.eigvalsh(t.double())
            assert values[0] > 0 and values[-1] <= 20.0 * values[0] * (1 + 1e-2)


class Embed(Function):
    """An embedding lookup: rows of the weight gathered by index."""

    @staticmethod
    def forward(ctx, weight, idx):
        ctx.save_for_backward(idx)
        ctx.rows = weight.shape[0]
        return weight[idx]

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        grad = torch.zeros(ctx.rows, g.shape[-1], dtype=g.dtype)
        grad.index_add_(0, idx.reshape(-1), g.reshape(idx.numel(), g.shape[-1]))
        return grad, None


def test_an_embedding_registered_with_an_index_tensor_passes():
    target = make_target(
        Embed,
        reference=lambda w, i: w[i],
        inputs=[fg.tensor("n d"), fg.tensor("*batch", structure="index", high="n")],
    )
    result = fuzz_target(target, max_examples=40, derandomize=True)
    assert result.status == "passed", [f.message for f in result.failures]


# -- bad specs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inputs, options, words",
    [
        (["b n", fg.tensor("k", structure="index", high="m")], {}, ["inputs[1]", "'m'"]),
        (["b n", fg.size("m")], {}, ["inputs[1]", "'m'", "st.integers"]),
        (["b n", fg.size("k<=m")], {}, ["inputs[1]", "unknown size 'm'"]),
        (["b n", "n"], {"sizes": {"q": (1, 2)}}, ["sizes names 'q'", "known: b, n"]),
        (["b n", fg.dim(5)], {}, ["inputs[1]", "dim(5)", "out of range", "index of a tensor"]),
        (["b n", fg.dim(1)], {}, ["inputs[1]", "itself"]),
        ([fg.tensor("b n"), 3.0, fg.dim(1)], {}, ["inputs[2]", "inputs[1]", "not a tensor"]),
        ([fg.tensor("m n", structure="symmetric"), "n"], {}, ["inputs[0]", "square", "'n n'"]),
        ([fg.tensor(structure="simplex"), "n"], {}, ["inputs[0]", "last dim"]),
        (["b n>=5", "n<=3"], {}, ["bounds on 'n'", "Loosen"]),
        (["a<=b b<=a", "b"], {}, ["cycle"]),
        ([1.0, 2.0], {}, ["inputs[0] must be fuzzgrad.tensor"]),
    ],
)
def test_bad_specs_name_the_target_the_argument_and_the_fix(inputs, options, words):
    with pytest.raises(fg.InvalidRegistration) as info:
        make_target(
            lambda x, y, *rest: x,
            reference=lambda x, *r: x,
            inputs=inputs,
            name="bad_spec",
            options=options,
        )
    text = str(info.value)
    assert "'bad_spec'" in text
    for word in words:
        assert word in text, text


def test_bad_tensor_knobs_are_named():
    with pytest.raises(fg.InvalidRegistration, match="not one of"):
        fg.tensor(structure="hermitian")
    with pytest.raises(fg.InvalidRegistration, match="needs high="):
        fg.tensor(structure="index")
    with pytest.raises(fg.InvalidRegistration, match="max_cond"):
        fg.tensor("n n", structure="symmetric", max_cond=10)
    with pytest.raises(fg.InvalidRegistration, match="only structure='index'"):
        fg.tensor(high="n")
    with pytest.raises(fg.InvalidRegistration, match="leave out low= and high="):
        fg.tensor("n", structure="simplex", low=0.0)
    with pytest.raises(fg.InvalidRegistration, match="argument index"):
        fg.dim(-1)
    with pytest.raises(fg.ShapeSpecError, match="one name"):
        fg.size("a b")


def test_a_bad_spec_in_a_target_file_exits_2_with_a_one_line_message(write_module, capsys):
    from fuzzgrad.integrations.cli import main

    path = write_module(
        "bad_dim",
        "import torch, fuzzgrad as fg\n"
        "fg.register(lambda x, d: x.sum(d), reference=lambda x, d: x.sum(d),\n"
        "            inputs=[fg.tensor('b n'), fg.dim(4)], name='sum_dim')\n",
    )
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'sum_dim'" in err and "dim(4)" in err and "Traceback" not in err


# -- callables over a Function -----------------------------------------------------------------


class ScaleJvp(Function):
    """x * s + b with a jvp and a vmap rule; its backward returns b's gradient as float64."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, s, b):
        return x * s + b

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.s = inputs[1]

    @staticmethod
    def backward(ctx, g):
        return g * ctx.s, None, g.to(torch.float64)

    @staticmethod
    def jvp(ctx, tx, ts, tb):
        return tx * ctx.s + tb


def _scale_by(s, x, b):
    return ScaleJvp.apply(x, s, b)


@pytest.mark.parametrize(
    "fn",
    [functools.partial(_scale_by, 2.0), lambda x, b: ScaleJvp.apply(x, 2.0, b)],
    ids=["partial", "lambda"],
)
def test_a_callable_over_a_function_keeps_its_properties_and_their_argument_indices(fn):
    from fuzzgrad.properties import select

    target = make_target(
        fn,
        reference=lambda x, b: x * 2.0 + b,
        inputs=["n", "n"],
        name="wrapped",
        dtypes=[torch.float32],
    )
    assert target.function is None and target.wraps is ScaleJvp
    assert {"grad_meta", "vmap", "forward_ad"} <= {p.name for p in select(target, None)}
    result = fuzz_target(target, max_examples=30, derandomize=True)
    by_property = {f.property: f for f in result.failures}
    assert set(by_property) == {"grad_meta"}, by_property
    assert "grad[input=1] with dtype torch.float64" in by_property["grad_meta"].message


def test_a_callable_chaining_two_functions_wraps_none():
    def both(x, b):
        return ScaleJvp.apply(RowSum.apply(x, 1, 1.0, 0, x), 2.0, b)

    assert make_target(both, reference=lambda x, b: x, inputs=["n m", "m"]).wraps is None


# -- the contract: what diagnosis may report ----------------------------------------------------


def test_contract_accepts_drawn_cases_and_rejects_what_the_spec_cannot_draw():
    import dataclasses

    target = make_target(
        RowSum,
        reference=_row_sum,
        inputs=[fg.tensor("b n>=3", low=-2.0), st.integers(1, 4), 0.5, fg.dim(0), fg.size("n")],
        dtypes=[torch.float32, torch.float16],
        name="contract",
    )
    drawn = _explored(cases(target), 30)
    assert all(contract_violation(target, c, c) is None for c in drawn)
    case = next(c for c in drawn if c.args[0].numel() > 3 and (c.args[0] < 0).any())
    x, count, scale, dim, n = case.args

    def changed(*args, **kw):
        return dataclasses.replace(case, args=args, **kw)

    assert "dtype" in contract_violation(target, changed(x.double(), count, scale, dim, n), case)
    assert "below low" in contract_violation(target, changed(x - 5, count, scale, dim, n), case)
    assert "breaks" in contract_violation(target, changed(x[:, :1], count, scale, dim, 1), case)
    assert f"{n + 1}" in contract_violation(target, changed(x, count, scale, dim, n + 1), case)
    assert "strategy" in contract_violation(target, changed(x, count + 1, scale, dim, n), case)
    assert "constant" in contract_violation(target, changed(x, count, 1.0, dim, n), case)
    assert "no dim" in contract_violation(target, changed(x, count, scale, 2, n), case)
    assert contract_violation(target, changed(x.contiguous(), count, scale, dim, n), case) is None
