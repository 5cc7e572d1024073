"""Whether a Function's own forward, differentiated by autograd, is its derivative.

Usually it is: a forward made of differentiable torch ops. But a forward that finds a root or a
fixed point by iteration (a bisection, Newton steps) has an autograd derivative of the unrolled
iteration, which is not the derivative of the result, while the hand-written backward (the
implicit function theorem) is right. A scan fuzzing such a Function against autograd of its
forward would report false alarms, so before fuzzing it checks, on float64 draws of the inferred
contract, that autograd of the forward agrees with finite differences of the forward; where
they disagree (or the forward raises under autograd while ``apply`` runs), the Function is
fuzzed against finite differences instead (registration option ``oracle="differences"``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

#: Float64 cases of the contract on which autograd of the forward is compared with differences.
CHECKS = 10
#: Draws that must all show a component padded with 0 (`convention_problem`).
MIN_DRAWS = 3


def draws(n: int) -> Any:
    """The settings of a scan's trial draws: ``n`` derandomized cases, generated only (no
    database, shrinking or health checks: a trial asks whether the Function runs, not why)."""
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )


def own_derivative_problem(target: Any) -> str | None:
    """Why autograd of ``target``'s forward cannot serve as its reference (None: it can)."""
    from hypothesis import given

    from fuzzgrad.oracles.autoref import AutoReferenceImpossible, auto_reference
    from fuzzgrad.strategies import cases

    reference = auto_reference(target)
    problems: list[str] = []

    @draws(CHECKS)
    @given(cases(target))
    def check(case: Any) -> None:
        if problems:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                problems.append(_disagreement(target, reference, case.args) or "")
            except AutoReferenceImpossible:
                pass  # the checker falls back to differences by itself
        if problems and not problems[-1]:
            problems.pop()

    check()
    return problems[0] if problems else None


def _disagreement(target: Any, reference: Any, args: tuple) -> str | None:
    """What differs between autograd of the forward and finite differences on ``args``."""
    from fuzzgrad.oracles.autoref import AutoReferenceImpossible
    from fuzzgrad.oracles.numerical import numerical_vjp
    from fuzzgrad.verdict.differences import FAIL, by_differences

    try:
        target.fn(*args)
    except Exception:  # noqa: BLE001 - outside the forward's domain: nothing to compare
        return None
    leaves = _leaves(args)
    wrt = [i for i, a in enumerate(leaves) if _floating(a) and a.numel()]
    if not wrt:
        return None
    try:
        outs = reference(*leaves)
    except AutoReferenceImpossible:
        raise
    except Exception as exc:  # noqa: BLE001 - apply runs, its forward under autograd does not
        return f"its forward raises {type(exc).__name__} under autograd where apply runs"
    outs = outs if isinstance(outs, tuple) else (outs,)
    diff = [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
    if not diff:
        return None
    gen = torch.Generator().manual_seed(0)
    cts = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in diff]
    try:
        grads = torch.autograd.grad(diff, [leaves[i] for i in wrt], cts, allow_unused=True)
    except Exception as exc:  # noqa: BLE001 - in-place writes into a saved tensor, say
        return f"autograd of its forward raises {type(exc).__name__} in backward"
    by_index = dict(zip(wrt, grads))
    it = iter(cts)
    all_cts = [next(it) if isinstance(o, torch.Tensor) and o.requires_grad else None for o in outs]
    for dirs, est, scale in numerical_vjp(target.fn, args, wrt, all_cts):
        if est is None or not est.smooth:
            continue
        dot = sum(float((g * dirs[i]).sum()) for i, g in by_index.items() if g is not None)
        allowed = 1e-4 * scale + 1e-5 * abs(est.value)
        if by_differences(dot, est, allowed) == FAIL:
            return (
                f"autograd of its forward gives {dot:.6g} along a direction where finite "
                f"differences of the forward give {est.describe()}"
            )
    return None


def convention_problem(target: Any) -> str | None:
    """Why the Function's backward answers in another parametrisation than its forward's
    inputs (None: nothing says so). A backward that returns, for an input, a gradient whose
    component ``k`` of the last dim is 0 on every float64 draw while autograd of the forward's
    is not, pads a gradient of fewer coordinates: a Lie group's tangent space (3 for a 4-number
    quaternion), by design. A scan knows no such convention and would call every such Function
    wrong, so it leaves them to a registration with a reference in their convention."""
    from fuzzgrad.oracles.autoref import auto_reference

    reference = auto_reference(target)
    # input -> component of the last dim, counted from its end -> (the Function's gradient 0
    # there on every draw so far, draws where autograd's was not 0 there)
    seen: dict[int, dict[int, list]] = {}

    def check(args: tuple) -> None:
        pair = _both_gradients(target, reference, args)
        for i, (own, auto) in (pair or {}).items():
            if own.shape != auto.shape or own.dim() == 0 or own.shape[-1] < 2 or not own.numel():
                continue
            last = own.shape[-1]
            own_zero = (own.reshape(-1, last) == 0).all(0).tolist()
            moved = (auto.reshape(-1, last) != 0).any(0).tolist()
            components = seen.setdefault(i, {})
            for k in range(last):
                if own_zero[k] and not moved[k] and components.get(k - last, [True])[0]:
                    # autograd of a forward made of such Functions pads too: differences tell
                    moved[k] = _differences_move(target, args, i, k)
            for k in range(-last, 0):
                zero_so_far, count = components.get(k, [True, 0])
                components[k] = [zero_so_far and own_zero[k], count + int(moved[k])]
            for k in [k for k in components if k < -last]:  # not in this draw's last dim
                components[k][0] = False

    _each_draw(target, check)
    ignored = _ignored_cotangent(target, reference)
    if ignored is not None:
        return ignored
    for i, components in seen.items():
        padded = [k for k, (zero, moved) in components.items() if zero and moved >= MIN_DRAWS]
        if padded:
            return (
                f"its backward's gradient for input {i} is 0 in component {padded[0]} of the "
                "last dim on every draw, where autograd of its forward's is not: a gradient in "
                "another parametrisation (a Lie group's tangent space, say), which a scan cannot "
                "judge; register it with a reference in that convention"
            )
    return None


def _each_draw(target: Any, visit: Any) -> None:
    """``visit(args)`` on `CHECKS` float64 draws of ``target``'s contract; a draw on which
    either side cannot run tells nothing (its exception is dropped)."""
    from hypothesis import given

    from fuzzgrad.strategies import cases

    @draws(CHECKS)
    @given(cases(target))
    def check(case: Any) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                visit(case.args)
            except Exception:  # noqa: BLE001 - a draw either side cannot run tells nothing
                return

    check()


def _ignored_cotangent(target: Any, reference: Any) -> str | None:
    """The output-side twin of a padded gradient: a backward that never reads component ``k``
    of an output's cotangent (its gradients are 0 for a cotangent there alone, on every draw),
    where the forward's output does move with the inputs there: the output's gradient taken
    in a tangent space (pypose's exponential maps)."""
    found: dict[tuple[int, int], list[int]] = {}  # (output, component) -> [ignored, moved]
    _each_draw(target, lambda args: _ignored_in(target, reference, args, found))
    for (j, k), (ignored, moved) in found.items():
        if ignored == moved and moved >= MIN_DRAWS:
            return (
                f"its backward never reads component {k} of output {j}'s cotangent (the "
                "gradients are 0 for a cotangent there alone, on every draw) though the output "
                "moves there: the output's gradient in another parametrisation (a Lie group's "
                "tangent space, say), which a scan cannot judge; register it with a reference "
                "in that convention"
            )
    return None


def _ignored_in(target: Any, reference: Any, args: tuple, found: dict) -> None:
    leaves = _leaves(args)
    wrt = [leaves[i] for i, a in enumerate(leaves) if _floating(a) and a.numel()]
    if not wrt:
        return
    own_outs = target.fn(*[a.clone() if _floating(a) else a for a in leaves])
    own_outs = own_outs if isinstance(own_outs, tuple) else (own_outs,)
    ref_outs = reference(*[a.clone() if _floating(a) else a for a in leaves])
    ref_outs = ref_outs if isinstance(ref_outs, tuple) else (ref_outs,)
    for j, (own, ref) in enumerate(zip(own_outs, ref_outs)):
        ok = all(isinstance(o, torch.Tensor) and o.requires_grad for o in (own, ref))
        if not ok or own.dim() == 0 or own.shape[-1] < 2 or not own.numel():
            continue
        last = own.shape[-1]
        for k in range(last):
            ct = torch.zeros_like(own)
            ct[..., k] = 1.0
            mine = torch.autograd.grad(own, wrt, ct, retain_graph=True, allow_unused=True)
            theirs = torch.autograd.grad(ref, wrt, ct, retain_graph=True, allow_unused=True)
            if not all(g is None or bool(g.isfinite().all()) for g in (*mine, *theirs)):
                continue  # an edge value's NaN or inf says nothing of which components count
            zero = all(g is None or not bool(g.any()) for g in mine)
            moves = any(g is not None and bool(g.any()) for g in theirs)
            entry = found.setdefault((j, k - last), [0, 0])
            entry[0] += int(zero and moves)
            entry[1] += int(moves)


def _differences_move(target: Any, args: tuple, i: int, k: int) -> bool:
    """Whether finite differences of the Function's forward move along element ``k`` of the
    last dim of input ``i`` (its first row), for the cotangent `_both_gradients` uses."""
    from fuzzgrad.oracles.numerical import element_estimates

    wide = [a.detach().to(torch.float64) if _floating(a) else a for a in args]
    outs = target.fn(*wide)
    outs = outs if isinstance(outs, tuple) else (outs,)
    gen = torch.Generator().manual_seed(0)
    cts = [
        torch.randn(o.shape, generator=gen, dtype=torch.float64) if _floating(o) else None
        for o in outs
    ]
    (found,) = element_estimates(target.fn, wide, [i], cts, [(i, k)])
    return found is not None and found.smooth and abs(found.value) > 1e-6 * (1 + found.error)


def _both_gradients(target: Any, reference: Any, args: tuple) -> dict[int, tuple] | None:
    """Per floating input, the Function's gradient and autograd of its forward's, for one
    random cotangent (float64)."""
    leaves = _leaves(args)
    wrt = [i for i, a in enumerate(leaves) if _floating(a) and a.numel()]
    if not wrt:
        return None
    out: dict[int, tuple] = {}
    grads = []
    for fn in (target.fn, reference):
        outs = fn(*[a.clone() if _floating(a) else a for a in leaves])
        outs = outs if isinstance(outs, tuple) else (outs,)
        diff = [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
        if not diff:
            return None
        gen = torch.Generator().manual_seed(0)
        cts = [torch.randn(o.shape, generator=gen, dtype=o.dtype) for o in diff]
        grads.append(torch.autograd.grad(diff, [leaves[i] for i in wrt], cts, allow_unused=True))
    for k, i in enumerate(wrt):
        own, auto = grads[0][k], grads[1][k]
        finite = own is not None and auto is not None
        if finite and bool(own.isfinite().all()) and bool(auto.isfinite().all()):
            out[i] = (own.detach(), auto.detach())
    return out


def _leaves(args: tuple) -> list:
    """The arguments, each floating tensor a float64 leaf that requires grad."""
    return [a.detach().to(torch.float64).requires_grad_() if _floating(a) else a for a in args]


def _floating(a: Any) -> bool:
    return isinstance(a, torch.Tensor) and a.is_floating_point()
