"""Oracles: JAX x64, second order and jvp modes, auto-reference and the numerical oracle."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.autograd import Function

from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.oracles.autoref import AutoReferenceImpossible, auto_reference
from fuzzgrad.oracles.jax_ref import shared_jax
from fuzzgrad.oracles.numerical import numerical_vjp
from fuzzgrad.oracles.torch_ref import torch_oracle
from fuzzgrad.registry.target import make_target


def test_jax_oracle_is_float64_and_matches_torch():
    x = torch.tensor([0.1, 1.3, -2.0], dtype=torch.float32)
    ct = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float32)
    j = shared_jax()(lambda a: jnp.sin(a) * a, (x,), [0], [ct])
    tref = torch_oracle(lambda a: torch.sin(a) * a, (x,), [0], [ct])
    assert j.outputs[0].dtype == torch.float64
    torch.testing.assert_close(j.grads[0], tref.grads[0], rtol=1e-12, atol=1e-12)


def test_jax_second_order_and_jvp_modes():
    x = torch.tensor([0.3, -1.1], dtype=torch.float64)
    v = torch.tensor([1.0, 2.0], dtype=torch.float64)
    u = torch.tensor([0.5, -1.0], dtype=torch.float64)
    gx, gv = shared_jax()(lambda a: a**3, (x,), [0], [v], mode="hvp", extra=[u])
    # d/dx <3x^2 v, u> = 6 x v u ; d/dv <3x^2 v, u> = 3 x^2 u
    torch.testing.assert_close(gx[0], 6 * x * v * u)
    torch.testing.assert_close(gv[0], 3 * x**2 * u)
    _, tangents = shared_jax()(lambda a: a**3, (x,), [0], None, mode="jvp", extra=[u])
    torch.testing.assert_close(tangents[0], 3 * x**2 * u)


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class NumpyCubeWrong(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(over="ignore"):  # huge inputs overflow to inf, as torch's x**3 does
            return torch.from_numpy(np.asarray(x.detach().cpu().double().numpy() ** 3)).to(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * x * g  # should be 3 x^2


class Dirty(Function):
    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


def test_auto_reference_differentiates_forward():
    t = make_target(Square, name="square_auto")
    x = torch.tensor([1.5, -2.0], dtype=torch.float64)
    ev = torch_oracle(auto_reference(t), (x,), [0], [torch.ones(2, dtype=torch.float64)])
    torch.testing.assert_close(ev.grads[0], 2 * x)


def test_auto_reference_explains_why_it_is_impossible():
    x = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(AutoReferenceImpossible, match="not differentiable by autograd"):
        torch_oracle(auto_reference(make_target(NumpyCubeWrong, name="np3")), (x,), [0], None)
    with pytest.raises(AutoReferenceImpossible, match="mark_dirty"):
        torch_oracle(auto_reference(make_target(Dirty, name="dirty")), (x,), [0], None)


def test_numerical_oracle_estimates_directional_derivatives():
    x = torch.tensor([0.5, 1.5], dtype=torch.float64)
    ct = torch.tensor([1.0, 2.0], dtype=torch.float64)
    for dirs, est, _ in numerical_vjp(lambda a: a**3, (x,), [0], [ct]):
        exact = float((3 * x**2 * ct * dirs[0]).sum())
        assert abs(exact - est.value) < 1e-6 * (1 + abs(exact)) and est.smooth


def test_targets_without_references_are_checked_by_auto_reference_and_numerics():
    ok = fuzz_target(make_target(Square, name="square_noref"), max_examples=40, derandomize=True)
    assert ok.status == "passed", ok.failures
    bad = fuzz_target(
        make_target(
            NumpyCubeWrong,
            name="numpy_noref",
            dtypes=[torch.float64],
            options={"properties": ["vjp"]},
        ),
        max_examples=60,
        derandomize=True,
    )
    assert bad.status == "failed"
    assert "finite differences" in bad.failures[0].message
    assert "numerical oracle" in (bad.stats.oracle_note or "")


def test_jax_x64_is_on_only_inside_fuzzgrad_calls():
    """A user's JAX code in the same process keeps JAX's default float32 (a global x64 switch
    would silently change its dtypes)."""
    x, c = torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    assert jnp.ones(2).dtype == jnp.float32
    got = shared_jax()(lambda v: v * 0.1, [x], [0], [c])
    assert got.outputs[0].dtype == torch.float64  # fuzzgrad computes in float64
    assert jnp.ones(2).dtype == jnp.float32  # and leaves the user's default alone


def test_jax_oracle_compiles_once_per_signature_and_precision():
    from fuzzgrad.oracles.jax_ref import JaxOracle

    jax = JaxOracle()
    x, c = torch.linspace(-1, 1, 5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    assert not jax.is_warm(jnp.sin, [x], [0], [c])
    jax(jnp.sin, [x], [0], [c])
    assert jax.is_warm(jnp.sin, [x], [0], [c]) and jax.compiles == 1
    jax(jnp.sin, [x], [0], [c])
    assert jax.compiles == 1
    low = jax(jnp.sin, [x], [0], [c], working=torch.bfloat16)  # its own program
    assert jax.compiles == 2
    g = low.grads[0]
    assert g.dtype == torch.float64 and torch.equal(g, g.bfloat16().double())  # bf16 values
    assert torch.allclose(g, torch.cos(x), rtol=2**-7, atol=0)


def test_forward_and_vjp_share_one_jax_evaluation_per_case():
    import random

    from fuzzgrad.engine.explore import FastData
    from fuzzgrad.properties.checker import Checker
    from fuzzgrad.strategies import cases

    target = make_target(
        Square, reference=lambda x: x * x, jax_reference=lambda x: x * x, name="square_jax"
    )
    case = cases(target).do_draw(FastData(random.Random(0), simplest=1.0))
    assert case.direction_seed == 0  # a case JAX samples among passing ones
    checker = Checker(target, ["forward", "vjp"], jax_share=1.0)
    checker.check(case)
    assert checker.stats.jax_runs == 1


def test_finite_differences_widen_a_step_below_the_forwards_resolution():
    """y + y**3 = x solved by bisection resolves y to about 1e-18: at x = 1e-38 a step relative
    to x (1e-43) leaves the output exactly unchanged, which read as a derivative of 0 +- 0 and
    called the scan's correct CubicRoot wrong. A flat output widens the step to that of an input
    of size 1, where the derivative, 1, shows."""
    from fuzzgrad.oracles.numerical import along, element_estimates

    def solve(x):
        lo, hi = -x.abs() - 1, x.abs() + 1
        for _ in range(60):
            mid = (lo + hi) / 2
            below = mid + mid**3 < x
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return (lo + hi) / 2

    x = torch.tensor(1.1754943508222875e-38, dtype=torch.float64)
    ones = [torch.ones((), dtype=torch.float64)]
    (by_element,) = element_estimates(solve, [x], [0], ones, [(0, 0)])
    by_direction = along(solve, [x], [0], ones, {0: torch.ones((), dtype=torch.float64)})
    for found in (by_element, by_direction):
        assert found is not None and not found.flat
        assert abs(found.value - 1.0) < 1e-3, found.describe()
    # a function that is flat at every step has derivative 0, as before
    (step,) = element_estimates(lambda t: torch.floor(t) * 0 + 2.0, [x], [0], ones, [(0, 0)])
    assert step is not None and step.value == 0.0
