"""Diagnosis: re-run a shrunk failure with each factor set back to its simplest.

A factor "matters" when simplifying it alone makes the failure go away. The diagnosis names the
factors that matter ("fails only for non-contiguous grad_output", "only in float16"), or says the
failure needs none of them. Only cases the target's inputs can produce are tried or reported
(`fuzzgrad.strategies.contract_violation`): a simplification that leaves the spec (float64 for a
float32-only input, 0.5 for an input bounded below 0.3, a sign flip of a sorted row) is not
tried, and a cut to one element that breaks the spec (n >= 3, a size argument, a structure)
keeps Hypothesis's shrunk case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import floating
from fuzzgrad.properties.checker import Checker, Discard, PropertyFailure
from fuzzgrad.registry.target import argument_names
from fuzzgrad.strategies import (
    Layout,
    contract_dtypes,
    contract_violation,
    describe_layout,
    describe_view,
)


def _with(case, **changes):
    """A simplified copy with its own notes (checking it must not overwrite the original's)."""
    changes.setdefault("notes", {})
    return dataclasses.replace(case, **changes)


def _no_zeros(target, case):
    if not any(floating(a) and a.numel() and bool((a == 0).any()) for a in case.args):
        return None
    args = tuple(
        torch.where(a == 0, torch.full_like(a, 0.5), a) if floating(a) else a for a in case.args
    )
    return _with(case, args=args)


def _contiguous(target, case):
    args = tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in case.args)
    if all(a is b for a, b in zip(args, case.args)):
        return None
    return _with(case, args=args)


#: Floating dtypes from the most precise (real, then complex): the dtype factor moves a case to
#: the most precise one the target takes (`contract_dtypes`), where that is more precise.
_PRECISE = ((torch.float64, torch.float32), (torch.complex128, torch.complex64))


def _more_precise(target, case):
    if case.dtype is None:
        return None
    ladder = _PRECISE[case.dtype.is_complex]
    best = next((d for d in ladder if d in contract_dtypes(target)), None)
    if best is None or case.dtype in ladder[: ladder.index(best) + 1]:
        return None
    args = tuple(_to(a, best) if floating(a) and a.dtype == case.dtype else a for a in case.args)
    return _with(case, args=args, dtype=best)


def _to(a: torch.Tensor, where: Any) -> torch.Tensor:
    """``a.to(where)`` that keeps a lazy conjugate view one (``to`` resolves it): the dtype and
    device factors must not remove the conjugate bit too."""
    return a.conj().to(where).conj() if a.is_conj() else a.to(where)


def _cpu(target, case):
    if case.device == "cpu":
        return None
    args = tuple(_to(a, "cpu") if isinstance(a, torch.Tensor) else a for a in case.args)
    return _with(case, args=args, device="cpu")


def _all_grad(target, case):
    specs = target.inputs if isinstance(target.inputs, tuple) else None
    rg = tuple(  # every input that may require grad (not one a spec says never does)
        floating(a) and (specs is None or specs[i].requires_grad) for i, a in enumerate(case.args)
    )
    if rg == case.requires_grad:
        return None
    return _with(case, requires_grad=rg)


def _resolved_conj(target, case):
    """Conjugate views (inputs and cotangents) resolved: the same values, no conjugate bit."""
    lazy = [isinstance(a, torch.Tensor) and a.is_conj() for a in case.args]
    if not any(lazy) and not any(c.layout.conj for c in case.cotangents):
        return None
    args = tuple(a.resolve_conj() if lazy_ else a for a, lazy_ in zip(case.args, lazy))
    cts = tuple(
        dataclasses.replace(c, layout=dataclasses.replace(c.layout, conj=False))
        for c in case.cotangents
    )
    return _with(case, args=args, cotangents=cts)


def _conj_views(case) -> str:
    inputs = [f"input {i}" for i, a in enumerate(case.args) if describe_view(a) == "conj"]
    cts = ["grad_output"] if any(c.layout.conj for c in case.cotangents) else []
    return ", ".join(inputs + cts)


def _plain_cotangents(target, case):
    if all(c.layout.kind == "contiguous" for c in case.cotangents):
        return None
    cts = tuple(dataclasses.replace(c, layout=Layout()) for c in case.cotangents)
    return _with(case, cotangents=cts)


def _every_output_used(target, case):
    if not case.unused_outputs:
        return None
    cts = tuple(dataclasses.replace(c, unused=0) for c in case.cotangents)
    return _with(case, cotangents=cts)


def _no_edge_values(target, case):
    recipes = case.recipes or ()
    if not any(r is not None and r.values.injections for r in recipes):
        return None
    args = list(case.args)
    for i, r in enumerate(recipes):
        if r is not None and r.values.injections:
            args[i] = r.build(values=dataclasses.replace(r.values, injections=()))
    return _with(case, args=tuple(args))


def _real(a) -> bool:
    return floating(a) and not a.is_complex()


def _non_negative(target, case):
    if not any(_real(a) and a.numel() and bool((a < 0).any()) for a in case.args):
        return None
    args = tuple(a.abs() if _real(a) else a for a in case.args)
    return _with(case, args=args)


def _describe_inputs(case) -> str:
    parts = []
    for i, a in enumerate(case.args):
        if isinstance(a, torch.Tensor):
            parts.append(f"input {i}: {describe_layout(a)}")
    return ", ".join(parts)


#: (factor, simplification, what it means when the factor matters)
FACTORS: tuple[tuple[str, Callable, Callable], ...] = (
    ("conj_view", _resolved_conj, lambda c: f"a lazy conjugate view ({_conj_views(c)})"),
    ("layout", _contiguous, lambda c: f"a non-contiguous input layout ({_describe_inputs(c)})"),
    (
        "cotangent_layout",
        _plain_cotangents,
        lambda c: (
            "a non-contiguous or stride-0 grad_output ("
            + ", ".join(x.layout.kind for x in c.cotangents)
            + ")"
        ),
    ),
    (
        "unused_outputs",
        _every_output_used,
        lambda c: (
            "outputs that get no gradient ("
            + ", ".join(f"output {k}" for k in range(8) if c.unused_outputs >> k & 1)
            + ")"
        ),
    ),
    ("dtype", _more_precise, lambda c: f"dtype {str(c.dtype).replace('torch.', '')}"),
    ("device", _cpu, lambda c: f"device {c.device}"),
    (
        "requires_grad",
        _all_grad,
        lambda c: (
            "inputs that do not require grad ("
            + ", ".join(
                str(i)
                for i, (a, r) in enumerate(zip(c.args, c.requires_grad))
                if floating(a) and not r
            )
            + ")"
        ),
    ),
    (
        "edge_values",
        _no_edge_values,
        lambda c: (
            "edge values ("
            + ", ".join(
                f"input {i}: {', '.join(k for _, k, _ in r.values.injections)}"
                for i, r in enumerate(c.recipes or ())
                if r is not None and r.values.injections
            )
            + ")"
        ),
    ),
    ("sign", _non_negative, lambda c: "negative input values"),
    ("zero_values", _no_zeros, lambda c: "zero input values"),
)


def _shape_notes(case) -> list[str]:
    """What the shrunk shapes say (shapes cannot be simplified independently of the bug)."""
    tensors = [a for a in case.args if isinstance(a, torch.Tensor)]
    notes = []
    if any(a.numel() == 0 for a in tensors):
        notes.append("a zero-size input")
    if any(a.dim() == 0 for a in tensors) and not all(a.dim() == 0 for a in tensors):
        notes.append("a 0-d input")
    elif tensors and all(a.dim() == 0 for a in tensors):
        notes.append("0-d inputs")
    shapes = {tuple(a.shape) for a in tensors if floating(a)}
    if len(shapes) > 1:
        notes.append(
            "inputs of different (broadcast) shapes " + ", ".join(map(str, sorted(shapes)))
        )
    return notes


def failure_on(target, prop: str, case, root: str | None = None) -> PropertyFailure | bool | None:
    """``prop``'s failure on ``case``, False if it holds (or, given ``root``, fails only with
    another root: another finding), None if the case was discarded."""
    from fuzzgrad.verdict.identity import root_of

    checker = Checker(target, properties=[prop], jax_share=1.0)
    try:
        checker.check(case)
    except PropertyFailure as exc:
        if exc.property != prop or (root is not None and root_of(exc) != root):
            return False
        return exc
    except Discard:
        return None
    except Exception:  # noqa: BLE001 - a harness-level error on a simplified case
        return None
    return False


def still_fails(target, prop: str, case, root: str | None = None) -> bool | None:
    """Whether ``prop`` still fails on ``case`` (with the same ``root``, when given; None: the
    case was discarded)."""
    result = failure_on(target, prop, case, root)
    return result if result is None or result is False else True


def leaves_contract(target, changed, case) -> bool:
    """Whether ``changed`` (made from ``case``) is a call the target's inputs cannot produce
    while ``case`` is one (a case made up by hand, outside the spec, is not judged)."""
    return (
        contract_violation(target, case, case) is None
        and contract_violation(target, changed, case) is not None
    )


def diagnose(target, prop: str, case) -> tuple[str, list[str]]:
    """A sentence naming the factors the failure needs, and their keys."""
    text, factors, _ = explain(target, prop, case)
    return text, factors


def explain(target, prop: str, case, root: str | None = None) -> tuple[str, list[str], list[str]]:
    """A sentence naming what the failure needs, the keys of those factors, and the classes of
    the non-tensor arguments it needs (``dim<0``, ``mode='reflect'``): each factor and each
    argument's class is set back to its simplest alone, and matters where the failure (of the
    same ``root``, when given) then goes away. An argument's class is returned unless its
    simplest still fails (where it cannot be simplified, it may matter)."""
    needed: list[tuple[str, str]] = []
    for key, simplify, explain_factor in FACTORS:
        simpler = simplify(target, case)
        if simpler is None or leaves_contract(target, simpler, case):
            continue
        if still_fails(target, prop, simpler, root) is False:
            needed.append((key, explain_factor(case)))

    # A class other than its argument's simplest is part of the finding unless setting it back
    # to the simplest still fails (where that cannot be tried, it may matter).
    classes = []
    for key, klass, simpler, like in _argument_simplifications(target, case):
        if simpler is None or leaves_contract(target, simpler, like):
            classes.append(klass)
            continue
        still = still_fails(target, prop, simpler, root)
        if still is False:
            needed.append((key, klass))
        if still is not True:
            classes.append(klass)
    shape = _shape_notes(case)
    shape_text = f"; shrunk to {' and '.join(shape)}" if shape else ""
    if not needed:
        return (
            "fails on the simplest form of this input (no layout, dtype, grad-subset, argument "
            f"or value factor needed){shape_text}",
            [],
            classes,
        )
    return (
        "fails only with " + " and ".join(text for _, text in needed) + shape_text,
        [k for k, _ in needed],
        classes,
    )


def _argument_simplifications(target, case):
    """(factor key, class, simpler case or None, the original it may be checked against) for
    each non-tensor argument whose class is not its simplest: a negative `fuzzgrad.dim` made
    non-negative (the same dim), a strategy entry's value set to the simplest its strategy draws,
    a bounded `fuzzgrad.size` at a bound moved one step inside (None where there is no room)."""
    from fuzzgrad.verdict.identity import argument_classes, value_class

    specs = target.inputs if isinstance(target.inputs, tuple) else ()
    for i, klass in argument_classes(target, case):
        spec, value = specs[i], case.args[i]
        other: Any = _NOTHING
        if spec.kind == "dim":
            if value >= 0:
                continue  # the simplest class
            other = value + spec.span(case.args[spec.of])
        elif spec.kind == "strategy":
            simplest = _simplest(spec.strategy)
            if simplest is not _NOTHING and value_class(simplest) == value_class(value):
                continue
            other = simplest
        elif spec.kind == "size":
            if "==" not in klass:
                continue  # strictly inside its bounds: the simplest class
            upper = any(b.upper and f"{spec.name}=={b.value}" in klass for b in spec.bounds)
            other = value - 1 if upper else value + 1
        factor = f"arg:{argument_names(target, len(case.args))[i]}"
        if other is _NOTHING:
            yield factor, klass, None, case
            continue
        args = list(case.args)
        args[i] = other
        simpler = _with(case, args=tuple(args))
        moved = dict(argument_classes(target, simpler)).get(i)
        if moved == klass or (spec.kind == "size" and moved and "==" in moved):
            yield factor, klass, None, case  # no simpler class within the bounds
            continue
        # a strategy's own simplest value is one it draws: judged against that original
        like = _with(case, args=tuple(args)) if spec.kind == "strategy" else case
        yield factor, klass, simpler, like


_NOTHING = object()


def _simplest(strategy):
    """The value Hypothesis would shrink ``strategy`` to (every choice its simplest), or
    `_NOTHING` where fuzzgrad's fast draw cannot draw it."""
    import random

    from fuzzgrad.engine.explore import FastData

    data = FastData(random.Random(0), simplest=1.0)
    try:
        with data.drawing():
            return data.draw(strategy)
    except Exception:  # noqa: BLE001 - a strategy that needs Hypothesis's engine
        return _NOTHING


def reduce_to_element(target, prop: str, case, mismatch):
    """Cut a shrunk case down to the one element where it fails, when that still fails.

    Hypothesis shrinks knobs (a seed, a shape) but cannot pick the one offending value out of a
    seeded tensor; for a Function that works elementwise, slicing every input of the failing
    output's shape at the worst index keeps the failure and leaves a one-element reproducer.
    Returns the smaller case and its failure, or ``(case, None)``: also where the cut leaves
    what the target's inputs can produce, and for inputs drawn by a strategy, which cannot be
    checked.
    """
    from hypothesis.strategies import SearchStrategy

    index = getattr(mismatch, "index", None)
    if not index or isinstance(target.inputs, SearchStrategy):
        return case, None
    sliced = []
    changed = False
    for a in case.args:
        if (
            isinstance(a, torch.Tensor)
            and a.dim() == len(index)
            and a.numel() > 1
            and all(i < n for i, n in zip(index, a.shape))
        ):
            piece = a[tuple(slice(i, i + 1) for i in index)].clone()
            sliced.append(piece)
            changed = True
        else:
            sliced.append(a)
    if not changed:
        return case, None
    cts = []
    for c in case.notes.get("cotangents") or ():
        if isinstance(c, torch.Tensor) and c.dim() == len(index):
            c = c[tuple(slice(i, i + 1) for i in index)].clone()
        cts.append(c)
    smaller = _with(
        case,
        args=tuple(sliced),
        recipes=(None,) * len(sliced),
        notes={"fixed_cotangents": cts} if cts else {},
    )
    if leaves_contract(target, smaller, case):
        return case, None
    failure = failure_on(target, prop, smaller)
    # The same failure, not another one: slicing only the inputs of the failing output's rank
    # may leave the others inconsistent with it (a crash, or another output, then fails).
    same = (
        isinstance(failure, PropertyFailure)
        and failure.mismatch is not None
        and failure.mismatch.path == getattr(mismatch, "path", None)
    )
    return (smaller, failure) if same else (case, None)
