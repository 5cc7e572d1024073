"""The torch oracle: autograd of the torch ``reference`` on fresh float64 copies of a case."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import Evaluation, as_tuple, upcast


def torch_vjp(
    fn: Callable[..., Any],
    args: Sequence[Any],
    wrt: Sequence[int],
    cotangents: Sequence[torch.Tensor | None] | None,
    *,
    create_graph: bool = False,
    forward_context: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> Evaluation:
    """Call ``fn`` on ``args`` as given (leaves made for ``wrt``) and take its VJP with autograd.
    ``forward_context`` makes a context the call alone runs in (an autocast region that the
    backward runs after)."""
    leaves = list(args)
    for i in wrt:
        leaves[i] = args[i].detach().requires_grad_(True)
    with torch.enable_grad(), forward_context():
        outputs = as_tuple(fn(*leaves))
    grads: list[torch.Tensor | None] = [None] * len(args)
    if cotangents is not None and wrt:
        pairs = [
            (o, c)
            for o, c in zip(outputs, cotangents)
            if c is not None and isinstance(o, torch.Tensor) and o.requires_grad
        ]
        if pairs:
            got = torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in wrt],
                [c for _, c in pairs],
                allow_unused=True,
                create_graph=create_graph,
            )
            for i, g in zip(wrt, got):
                grads[i] = g
    differentiable = tuple(isinstance(o, torch.Tensor) and o.requires_grad for o in outputs)
    outputs = tuple(
        o if create_graph or not isinstance(o, torch.Tensor) else o.detach() for o in outputs
    )
    return Evaluation(outputs, tuple(grads), differentiable if wrt else ())


def torch_oracle(reference, args, wrt, cotangents, dtype=torch.float64) -> Evaluation:
    """Autograd of the torch ``reference`` on fresh contiguous copies upcast to ``dtype``."""
    ups = [upcast(a, dtype) for a in args]
    cts = None if cotangents is None else [upcast(c, dtype) for c in cotangents]
    return torch_vjp(reference, ups, wrt, cts)
