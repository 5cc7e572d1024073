"""Whether a case is one a target's inputs can produce: what diagnosis may report.

Diagnosis changes a shrunk case (cuts it to the failing element, sets a factor back to its
simplest); what it reports must still be a call the user's spec or strategy could make, or the
user is shown a failure on an input their Function never gets. `violation` checks a case
against the spec: shapes (ranks, fixed sizes, equal names, size bounds), dtypes, value bounds,
structures, which arguments may require grad, the values of `fuzzgrad.dim`, `fuzzgrad.size`
and plain arguments. What a user's strategy drew cannot be checked, so it must be left as drawn
(its layout and device aside).

The dtypes a target takes are its ``dtypes=`` (default: the float dtypes), and float32 too where
it promises ``precision="fused"``: the harness itself calls such a Function on float32 inputs,
to hold its half-precision results to its own float32 ones.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from hypothesis import strategies as st

from ._cases import _SpecCases, cases
from ._shapes import match_shapes
from ._structures import violation as structure_violation
from ._tensors import FLOAT_DTYPES


def violation(target, case, original=None) -> str | None:
    """Why ``case`` is not a call ``target``'s inputs can produce (None when it is).
    ``original``: the drawn case ``case`` was made from, against which arguments that cannot
    be checked (a strategy's) are compared; without it they count as changed."""
    args = tuple(case.args)
    before = tuple(original.args) if original is not None else None
    if isinstance(target.inputs, st.SearchStrategy):
        for i, a in enumerate(args):
            if before is None or not _same(a, before[i]):
                return f"argument {i} differs from what the inputs strategy drew"
        return None
    specs = tuple(target.inputs)
    if len(args) != len(specs):
        return f"{len(args)} arguments for {len(specs)} specs"
    plan = cast(_SpecCases, cases(target))._shapes  # inputs are specs here
    known = {s.name: a for s, a in zip(specs, args) if s.kind == "size"}
    tensors = [a for s, a in zip(specs, args) if s.kind == "tensor"]
    if not all(isinstance(a, torch.Tensor) for a in tensors):
        return "a tensor spec's argument is not a tensor"
    sizes = match_shapes(plan, [tuple(a.shape) for a in tensors], known)
    if isinstance(sizes, str):
        return sizes
    allowed = contract_dtypes(target)
    recipes = tuple(case.recipes or ()) + (None,) * len(args)
    for i, (spec, a) in enumerate(zip(specs, args)):
        if case.requires_grad[i] and not spec.requires_grad:
            return f"argument {i} requires grad where the spec says requires_grad=False"
        reason = _argument(spec, a, args, sizes, allowed, recipes[i], before, i)
        if reason:
            return f"argument {i}: {reason}"
    return None


def named_sizes(target, case) -> dict[str, int]:
    """The size of each name in ``case``: its tensors' dims and its `fuzzgrad.size` arguments
    (empty where the case does not match the spec's shapes, or the inputs are one strategy)."""
    if isinstance(target.inputs, st.SearchStrategy):
        return {}
    specs = tuple(target.inputs)
    plan = cast(_SpecCases, cases(target))._shapes
    known = {s.name: a for s, a in zip(specs, case.args) if s.kind == "size"}
    shapes = [tuple(a.shape) for s, a in zip(specs, case.args) if s.kind == "tensor"]
    sizes = match_shapes(plan, shapes, known)
    return {} if isinstance(sizes, str) else {**sizes, **known}


def contract_dtypes(target) -> tuple:
    """The dtypes ``target``'s tensors take (see the module docstring)."""
    allowed = tuple(target.dtypes) if target.dtypes else FLOAT_DTYPES
    fused = getattr(target, "options", {}).get("precision") == "fused"
    return allowed + (torch.float32,) if fused and torch.float32 not in allowed else allowed


def _argument(spec, a, args, sizes, allowed, recipe, before, i) -> str | None:
    kind = spec.kind
    if kind == "tensor":
        return _tensor(spec, a, sizes, allowed, recipe)
    if kind == "strategy":
        same = before is not None and _same(a, before[i])
        return None if same else "differs from what its strategy drew"
    if kind == "constant":
        return None if _same(a, spec.value) else f"is not the constant {spec.value!r}"
    if kind == "dim":
        return None if spec.admits(a, args[spec.of]) else f"{a!r} is no dim of argument {spec.of}"
    if kind == "size":
        return None if sizes.get(spec.name) == a else f"{a!r} is not the size {spec.name}"
    return f"unknown spec {spec!r}"


def _tensor(spec, a: torch.Tensor, sizes, allowed, recipe) -> str | None:
    dtypes = spec.dtypes or allowed
    if a.dtype not in dtypes:
        return f"dtype {a.dtype} is not among {dtypes}"
    high = sizes.get(spec.high) if isinstance(spec.high, str) else spec.high
    if spec.structure is not None:
        reason = structure_violation(
            spec.structure,
            a,
            drawn_dtype=recipe.dtype if recipe is not None else None,
            max_cond=spec.max_cond,
            low=spec.low,
            high=high,
        )
        if reason:
            return reason
    if a.dtype.is_floating_point and a.numel():
        x = a.detach()
        if spec.low is not None and bool((x < spec.low).any()):
            return f"a value below low={spec.low}"
        if high is not None and bool((x > high).any()):
            return f"a value above high={high}"
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal values (a tensor's layout and device aside)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.dtype.is_floating_point or a.dtype.is_complex:
            a, b = a.nan_to_num(), b.nan_to_num()
        return bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values without a plain equality
        return a is b
