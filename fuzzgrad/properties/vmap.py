"""``vmap``: ``torch.func.vmap`` of the Function matches calling it per sample, when it defines
``vmap`` or ``generate_vmap_rule``: every tensor batched along dim 0, only the first batched,
and batch dims drawn per case (a non-zero or negative ``in_dims``, ``None`` for some arguments,
and a drawn ``out_dims``)."""

from __future__ import annotations

import random

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating
from fuzzgrad.oracles.torch_ref import torch_oracle
from fuzzgrad.properties.base import Property, defines


def supports_vmap(target) -> bool:
    """Whether a target's Function (or the Function a plain callable calls) can run under
    ``torch.func.vmap``."""
    cls = target.autograd_function
    return cls is not None and (
        defines(cls, "vmap") or bool(getattr(cls, "generate_vmap_rule", False))
    )


class Vmap(Property):
    name = "vmap"
    order = 90
    summary = (
        "`torch.func.vmap` matches per-sample calls (batch dims drawn: non-zero, negative, "
        "`None`; `out_dims` too), when it defines `vmap` or `generate_vmap_rule`"
    )

    def applies(self, target) -> bool:
        return supports_vmap(target)

    def check(self, run) -> None:
        case = run.case
        tensors = [i for i, a in enumerate(case.args) if isinstance(a, torch.Tensor)]
        if not tensors:
            return
        second = [a * 0.5 + 0.25 if floating(a) else a for a in case.args]
        rng = random.Random(case.direction_seed)
        plans = [
            ({i: 0 for i in tensors}, 0),  # every tensor batched along dim 0
            ({tensors[0]: 0}, 0),  # only the first batched
            _drawn_plan(rng, case.args, tensors),  # drawn in_dims and out_dims
        ]
        for dims, out_dim in plans:
            _check_plan(run, case, second, dims, out_dim)


def _drawn_plan(rng: random.Random, args, tensors) -> tuple[dict[int, int], int]:
    """Batch dims drawn for this case: each tensor batched (at any position, counted from the
    front or the back) or not (``None``), at least one batched; and an output batch dim."""
    dims: dict[int, int] = {}
    for i in tensors:
        if rng.random() < 0.3:
            continue
        rank = args[i].dim() + 1  # the batched tensor's rank
        dims[i] = rng.randrange(-rank, rank)
    if not dims:
        i = rng.choice(tensors)
        dims[i] = -1
    return dims, rng.choice((0, 1, -1))


def _stack(a, b, dim: int) -> torch.Tensor:
    rank = a.dim() + 1
    return torch.stack([a, b], dim=dim % rank)


def _check_plan(run, case, second, dims: dict[int, int], out_dim: int) -> None:
    fn = run.target.fn
    args = list(case.args)
    in_dims: list[int | None] = [None] * len(args)
    for i, d in dims.items():
        args[i] = _stack(case.args[i], second[i], d)
        in_dims[i] = d
    described = f"in_dims={tuple(in_dims)}, out_dims={out_dim}"

    def own(xs) -> list:  # an in-place Function writes into what it is given: copies
        return [a.clone() if run.nonleaf and isinstance(a, torch.Tensor) else a for a in xs]

    with torch.no_grad():
        one = as_tuple(fn(*own(case.args)))
        two = as_tuple(fn(*own(second[i] if i in dims else a for i, a in enumerate(case.args))))
        out_dims: int | tuple[int, ...]
        out_dims = tuple(
            out_dim if isinstance(o, torch.Tensor) and (o.dim() + 1) > abs(out_dim) else 0
            for o in one
        )
        if len(out_dims) == 1:
            out_dims = out_dims[0]
        try:
            out = as_tuple(
                torch.func.vmap(fn, in_dims=tuple(in_dims), out_dims=out_dims)(*own(args))
            )
        except Exception as exc:  # noqa: BLE001
            run.fail("vmap", f"torch.func.vmap ({described}) raised {type(exc).__name__}: {exc}")
    each = out_dims if isinstance(out_dims, tuple) else (out_dims,)
    samples = [case.args, [second[i] if i in dims else a for i, a in enumerate(case.args)]]
    at = run.judge.at_dtype(lambda: _reference_outputs(run.checker.reference, samples, each))
    for k, (o, a, b, d) in enumerate(zip(out, one, two, each)):
        if not isinstance(o, torch.Tensor):
            continue
        want = _stack(a, b, d)
        m = run.judge.between_runs(f"vmap output[{k}] ({described})", o, want, at, k)
        if m is not None:
            run.fail("vmap", f"{m}: vmap disagrees with calling the Function per sample", m)


def _reference_outputs(reference, samples, out_dims) -> list:
    """Per output, the reference's outputs on both samples stacked as the vmapped ones are,
    at the case's dtype and in float64 (`Judge.between_runs`)."""
    low, high = (
        [torch_oracle(reference, xs, [], None, dtype).outputs for xs in samples]
        for dtype in (None, torch.float64)
    )
    return [
        (_stack(low[0][k], low[1][k], d), _stack(high[0][k], high[1][k], d))
        for k, d in enumerate(out_dims)
    ]
