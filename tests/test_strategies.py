"""Tests of `fuzzgrad.strategies`: coverage of the default strategy, shrinking, shape specs,
layouts, value recipes and the `tensors` knobs. Every Hypothesis run here is derandomized."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from fuzzgrad.registry.target import make_target
from fuzzgrad.strategies import (
    EDGE_CLASSES,
    LAYOUTS,
    InvalidStrategyArgument,
    Layout,
    Values,
    arrange,
    cases,
    describe_layout,
    devices,
    effective_kind,
    fill,
    shapes,
    tensors,
    values,
)

FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate, Phase.shrink],  # no explain phase: it re-runs ~100 variants
)
SHRINK = settings(FAST, max_examples=2000)


def _mul_target(**kw):
    """A two-input target registered with the default specs (one shared shape, any rank)."""
    return make_target(lambda x, y: x * y, reference=lambda x, y: x * y, name="mul", **kw)


# -- coverage ------------------------------------------------------------------------------


def _tally(case, counts: Counter) -> None:
    for a, recipe in zip(case.args, case.recipes):
        counts[f"layout {describe_layout(a)}"] += 1
        counts[f"dtype {str(a.dtype).removeprefix('torch.')}"] += 1
        counts["shape 0-d"] += a.dim() == 0
        counts["shape zero-size"] += a.numel() == 0
        counts["shape size>8"] += any(s > 8 for s in a.shape)
        if a.numel():
            for position, kind, _ in recipe.values.injections:
                counts[f"edge {kind}"] += 1
                counts["edge (sprinkled)"] += position < 0
        mode = recipe.values
        counts["values constant" if mode.constant is not None else "values seeded"] += 1
    counts["requires_grad subset"] += not all(case.requires_grad)
    cot = case.cotangents[0]
    counts[f"cotangent {cot.layout.kind}"] += 1
    counts["cotangent non-unit"] += cot.values.scale != 1.0


def test_default_strategy_covers_every_layout_dtype_shape_and_edge_class():
    counts: Counter = Counter()

    @settings(FAST, max_examples=2000, phases=[Phase.generate])
    @given(cases(_mul_target()))
    def draw(case):
        counts["cases"] += 1
        _tally(case, counts)

    draw()
    print("\n".join(f"{k:28s} {v:6d}" for k, v in sorted(counts.items())))
    assert counts["cases"] == 2000
    wanted = (
        [f"layout {k}" for k in LAYOUTS]
        + [f"dtype {d}" for d in ("float64", "float32", "float16", "bfloat16")]
        + ["shape 0-d", "shape zero-size", "shape size>8"]
        + [f"edge {k}" for k in EDGE_CLASSES]
        + ["edge (sprinkled)", "values constant", "values seeded", "requires_grad subset"]
        + [f"cotangent {k}" for k in ("expanded", "transposed", "sliced", "offset")]
        + ["cotangent non-unit"]
    )
    rare = {k: counts[k] for k in wanted if counts[k] < 10}
    assert not rare, f"drawn fewer than 10 times in 2000 cases: {rare}"


# -- shrinking -----------------------------------------------------------------------------


def _simplest_except(case, *, dtype=torch.float64):
    assert case.dtype == dtype and case.device == "cpu"
    assert all(case.requires_grad)
    assert case.cotangents[0].layout.kind == "contiguous"


def test_a_non_contiguous_input_shrinks_to_two_elements_sliced_or_transposed():
    case = find(
        cases(_mul_target()),
        lambda c: any(not a.is_contiguous() for a in c.args),
        settings=SHRINK,
    )
    _simplest_except(case)
    odd = [a for a in case.args if not a.is_contiguous()]
    assert len(odd) == 1
    assert odd[0].numel() == 2 and describe_layout(odd[0]) in ("sliced", "transposed")
    assert all(a.numel() == 2 for a in case.args)
    plain = [r for r, a in zip(case.recipes, case.args) if a.is_contiguous()]
    assert all(r.layout == Layout() and r.values == Values(constant=0.0) for r in plain)


def test_float16_shrinks_to_float16_with_every_other_knob_simplest():
    case = find(cases(_mul_target()), lambda c: c.dtype == torch.float16, settings=SHRINK)
    _simplest_except(case, dtype=torch.float16)
    for a, r in zip(case.args, case.recipes):
        assert a.dtype == torch.float16 and a.shape == () and a.storage_offset() == 0
        assert r.layout == Layout() and r.values == Values(constant=0.0)


def test_a_negative_value_shrinks_to_a_single_element():
    case = find(
        cases(_mul_target()),
        lambda c: any(bool((a < 0).any()) for a in c.args),
        settings=SHRINK,
    )
    _simplest_except(case)
    assert all(a.numel() == 1 and a.is_contiguous() for a in case.args)
    assert sum(bool((a < 0).any()) for a in case.args) == 1


# -- shape specs ---------------------------------------------------------------------------


@FAST
@given(shapes(["b n", "n m", "b m", "", "3 n", "_ _"], max_elements=64))
def test_named_dims_are_equal_fixed_sizes_fixed_and_every_input_under_the_cap(got):
    bn, nm, bm, scalar, three_n, free = got
    assert bn[1] == nm[0] and nm[1] == bm[1] and bn[0] == bm[0]
    assert scalar == () and three_n[0] == 3 and three_n[1] == bn[1] and len(free) == 2
    assert all(math.prod(s) <= 64 for s in got)


@FAST
@given(shapes(["n n n", "*batch n", "*batch", "... k"], max_elements=100))
def test_repeated_names_and_variadics_stay_consistent_and_capped(got):
    cube, bn, batch, anything = got
    assert len(set(cube)) == 1 and bn[:-1] == batch and bn[-1] == cube[0]
    assert len(batch) <= 4 and len(anything) >= 1
    assert all(math.prod(s) <= 100 for s in got)


@FAST
@given(shapes(["*batch n", "*#batch #n"]))
def test_broadcastable_dims_are_a_suffix_each_equal_or_one(got):
    full, bcast = got
    assert len(bcast) <= len(full)
    assert all(b in (f, 1) for f, b in zip(full[::-1], bcast[::-1]))


def test_broadcast_and_block_boundary_sizes_are_reached():
    spec = shapes(["*batch n", "*#batch #n"])
    find(spec, lambda s: s[1] and s[1][-1] == 1 and s[0][-1] > 1, settings=SHRINK)
    find(spec, lambda s: len(s[1]) < len(s[0]), settings=SHRINK)
    assert find(shapes([None, None]), lambda s: True, settings=SHRINK) == ((), ())
    seen = set()

    @settings(FAST, max_examples=500, phases=[Phase.generate])
    @given(shapes(["n"]))
    def draw(got):
        seen.add(got[0][0])

    draw()
    assert {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64} <= seen


def test_the_cap_holds_when_fixed_sizes_alone_do_not():
    got = find(shapes(["100 n"], max_elements=50), lambda s: True, settings=SHRINK)
    assert got == ((100, 1),)


# -- layouts -------------------------------------------------------------------------------

SHAPES = [(), (0,), (1,), (2,), (5,), (3, 4), (1, 5), (5, 1), (2, 0, 3), (1, 1, 1), (2, 3, 4)]
SHAPES += [(2, 3, 4, 5), (1, 3, 4, 5), (2, 1, 4, 5), (2, 3, 1, 1), (7, 1, 3, 1, 2), (65,), (3, 80)]


def _storage(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(0, dtype=t.dtype).set_(t.untyped_storage())


def _positions(t: torch.Tensor) -> set[int]:
    index = torch.zeros((), dtype=torch.int64) + t.storage_offset()
    for size, stride in zip(t.shape, t.stride()):
        index = index.unsqueeze(-1) + torch.arange(size) * stride
    return set(index.flatten().tolist())


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", LAYOUTS)
def test_layouts_keep_values_set_strides_and_leave_nan_garbage_outside(shape, kind):
    t = torch.randn(shape, dtype=torch.float64)
    for param in range(12):
        a = arrange(t, Layout(kind, param))
        eff = effective_kind(shape, kind)
        assert a.shape == t.shape and a.dtype == t.dtype
        if eff == "expanded":
            assert any(st == 0 and s > 1 for st, s in zip(a.stride(), a.shape))
            first = tuple(slice(0, 1) if st == 0 else slice(None) for st in a.stride())
            assert torch.equal(a, t[first].expand(shape))
        else:
            assert torch.equal(a, t)
        described = describe_layout(a)
        assert described == eff or (eff == "transposed" and described == "channels_last")
        assert a.is_contiguous() == (eff in ("contiguous", "offset"))
        if eff == "contiguous":
            assert a is t
            continue
        storage, used = _storage(a), _positions(a)
        outside = [i for i in range(storage.numel()) if i not in used]
        assert outside, "every non-contiguous view has garbage around it"
        assert storage[outside].isnan().all() and not storage[sorted(used)].isnan().any()


def test_layout_fallbacks_for_shapes_that_cannot_hold_the_kind():
    assert effective_kind((), "transposed") == "offset"
    assert effective_kind((2, 0), "sliced") == "contiguous"
    assert effective_kind((3, 4), "channels_last") == "transposed"
    assert effective_kind((1, 4), "transposed") == "sliced"
    assert effective_kind((1, 1), "expanded") == "offset"
    assert effective_kind((2, 4096), "expanded") == "expanded"  # stride 0 on the 2
    assert effective_kind((65,), "expanded") == "sliced"  # a long row is never one value
    assert effective_kind((2, 3, 4, 5), "channels_last") == "channels_last"
    with pytest.raises(ValueError, match="unknown layout kind"):
        effective_kind((2,), "diagonal")


def test_integer_and_complex_tensors_take_every_layout():
    for dtype in (torch.int64, torch.bool, torch.complex64):
        t = fill((3, 4), dtype, "cpu", Values(seed=3))
        for kind in LAYOUTS:
            assert torch.equal(arrange(t, Layout(kind)), t) or kind == "expanded"


# -- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_each_edge_class_is_the_value_it_names_at_each_dtype(dtype):
    fin = torch.finfo(dtype)

    def injected(kind, negative=False, low=None, high=None, position=0):
        t = fill((4,), dtype, "cpu", Values(injections=((position, kind, negative),)), low, high)
        return t[position % 4]

    assert injected("zero").item() == 0 and not injected("zero").signbit()
    assert injected("neg_zero").item() == 0 and injected("neg_zero").signbit()
    assert injected("one", True).item() == -1
    assert injected("integer", position=3).item() == 5
    assert injected("half", position=2).item() == 2.5
    assert injected("tiny").item() == fin.tiny
    for position in range(4):
        sub = injected("subnormal", position=position).item()
        assert 0 < sub < fin.tiny
    assert injected("max", True).item() == -fin.max
    assert 1 < injected("large").item() < fin.max
    # past exp's overflow at the dtype: exp(x) at even positions, exp(2x) at odd ones
    big = injected("exp_limit", position=0).to(torch.float64)
    assert torch.exp(big.to(dtype)).isinf() and big < 2 * math.log(fin.max)
    half = injected("exp_limit", position=1).to(torch.float64)
    assert torch.exp(2 * half.to(dtype)).isinf() and not torch.exp(half.to(dtype)).isinf()
    assert injected("exp_limit", True).item() < -math.log(fin.max)
    assert injected("bound", True, low=-2.0, high=3.0).item() == -2
    assert injected("bound", False, low=-2.0, high=3.0).item() == 3
    assert injected("max", False, low=-2.0, high=3.0).item() == 3
    assert injected("inf", True).item() == -math.inf and injected("nan").isnan()


def test_values_stay_within_low_and_high_in_every_mode():
    recipes = [Values(constant=-3.0), Values(seed=1, scale=1e6), Values(seed=2, spread=True)]
    recipes += [
        Values(seed=3, injections=tuple((-1, k, n) for k in EDGE_CLASSES for n in (False, True)))
    ]
    for low, high in ((0.0, 1.0), (0.5, None), (None, -0.5)):
        for recipe in recipes:
            t = fill((50, 20), torch.float32, "cpu", recipe, low, high)
            assert (low is None or t.min() >= low) and (high is None or t.max() <= high)


def test_fills_are_deterministic_spread_over_magnitudes_and_complex_in_both_parts():
    spread = fill((10_000,), torch.float64, "cpu", Values(seed=5, spread=True))
    assert torch.equal(spread, fill((10_000,), torch.float64, "cpu", Values(seed=5, spread=True)))
    assert spread.abs().min() < 1e-3 and spread.abs().max() > 1e3 and (spread < 0).any()
    z = fill((100,), torch.complex64, "cpu", Values(seed=5))
    assert z.dtype == torch.complex64 and z.real.std() > 0.5 and z.imag.std() > 0.5
    big = fill((100,), torch.float16, "cpu", Values(seed=5, scale=1e6))
    assert big.isfinite().all() and big.abs().max() == torch.finfo(torch.float16).max


def test_a_million_elements_fill_and_arrange():
    """(What it costs, about 20 ms on one core, is bench/bench_generation.py's to measure: no
    test asserts a time.)"""
    recipe = Values(seed=9, scale=10.0, injections=((-1, "zero", False), (77, "max", True)))
    t = fill((1000, 1000), torch.float32, "cpu", recipe)
    t = arrange(t, Layout("sliced"))
    assert t.shape == (1000, 1000) and (t == 0).float().mean() > 0.2


# -- tensors() -----------------------------------------------------------------------------


def test_tensors_repr_reads_like_the_call():
    assert repr(tensors()) == "tensors()"
    assert repr(tensors("b n", dtype=torch.float16, layout="sliced", low=0.0)) == (
        "tensors('b n', dtype=torch.float16, layout='sliced', low=0.0)"
    )
    assert repr(shapes(["b n", "n"], max_elements=9)) == "shapes(['b n', 'n'], max_elements=9)"


@FAST
@given(
    tensors(
        st.sampled_from([(2, 3), (4,)]),
        dtype=st.sampled_from([torch.float32, torch.complex128]),
        device="cpu",
        layout=st.sampled_from(["transposed", Layout("expanded", 1)]),
        values=st.builds(Values, seed=st.integers(0, 9)),
        low=-1.0,
        high=1.0,
    )
)
def test_each_knob_takes_a_value_or_a_strategy(t):
    assert t.shape in ((2, 3), (4,)) and t.dtype in (torch.float32, torch.complex128)
    assert not t.is_contiguous()
    if not t.dtype.is_complex:
        assert t.min() >= -1 and t.max() <= 1


@FAST
@given(tensors("*batch 3"))
def test_default_knobs_draw_every_dtype_layout_and_value(t):
    assert t.shape[-1] == 3 and t.dtype.is_floating_point and t.device.type in ("cpu", "cuda")


def test_bad_knobs_are_named_when_concrete_and_when_drawn():
    with pytest.raises(InvalidStrategyArgument, match=r"tensors\(shape=\(-1,\)\)"):
        tensors((-1,))
    with pytest.raises(InvalidStrategyArgument, match="layout must be"):
        tensors(layout="diagonal")
    with pytest.raises(InvalidStrategyArgument, match="need low < high"):
        tensors(low=1.0, high=0.0)
    with pytest.raises(InvalidStrategyArgument, match="dtype must be"):
        find(tensors((2,), dtype=st.just("float32")), lambda t: True, settings=FAST)


def test_devices_start_with_cpu_and_include_only_available_accelerators():
    assert find(devices(), lambda d: True, settings=FAST) == "cpu"
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        with pytest.raises(NoSuchExample):
            find(devices(), lambda d: d != "cpu", settings=FAST)


def test_targets_opt_in_to_complex_dtypes_and_nonfinite_values():
    target = _mul_target(dtypes=[torch.complex128], options={"nonfinite": True})
    case = find(cases(target), lambda c: True, settings=FAST)
    assert case.dtype == torch.complex128 and case.args[0].dtype == torch.complex128
    recipe = find(
        values(nonfinite=True),
        lambda v: any(k == "nan" for _, k, _ in v.injections),
        settings=SHRINK,
    )
    assert recipe == Values(constant=0.0, injections=((0, "nan", False),))
    assert "nonfinite" not in repr(values()) and repr(values(nonfinite=True)) == (
        "values(nonfinite=True)"
    )


def test_seeded_values_keep_their_first_elements_when_the_shape_shrinks():
    for recipe in (Values(seed=4), Values(seed=4, spread=True), Values(seed=4, scale=1e-3)):
        for low, high in ((None, None), (0.0, None), (-1.0, 2.0)):
            big = fill((6, 7), torch.float32, "cpu", recipe, low, high).flatten()
            for shape in ((), (1,), (2, 3), (40,)):
                small = fill(shape, torch.float32, "cpu", recipe, low, high).flatten()
                assert torch.equal(small, big[: small.numel()])
    normal = fill((100_000,), torch.float64, "cpu", Values(seed=1))
    assert abs(normal.mean()) < 0.02 and abs(normal.std() - 1) < 0.02
