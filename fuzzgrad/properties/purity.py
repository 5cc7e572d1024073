"""``purity``: the Function leaves its inputs, outputs and ``grad_output`` as they were
(unless it declares ``ctx.mark_dirty``)."""

from __future__ import annotations

import torch

from fuzzgrad.properties.base import Property
from fuzzgrad.properties.case import same_bits


class Purity(Property):
    name = "purity"
    order = 30
    needs = frozenset({"grads"})  # a backward that writes into grad_output must run
    summary = (
        "inputs, outputs and `grad_output` are not modified in place (unless `ctx.mark_dirty`)"
    )

    def check(self, run) -> None:
        case = run.case
        if run.grads_wanted:  # backward runs for another property: it must not write either
            run.grads(self.name)
            for k, (c, c0) in enumerate(zip(run.cotangents, run.cotangent_snapshot)):
                if c is not None and not same_bits(c, c0):
                    run.fail(self.name, f"backward modified grad_output[{k}] in place")
        dirty = {id(o) for o in run.outputs if isinstance(o, torch.Tensor)}
        for i, (a, a0) in enumerate(zip(case.args, run.snapshot)):
            if isinstance(a, torch.Tensor) and not same_bits(a, a0):
                run.fail(
                    self.name,
                    f"input {i} was modified in place (values changed) without ctx.mark_dirty",
                )
        for i, (c, v) in enumerate(zip(run.called, run.versions)):
            if isinstance(c, torch.Tensor) and c._version != v and id(c) not in dirty:
                run.fail(self.name, f"input {i} was modified in place without ctx.mark_dirty")
        for k, (o, o0) in enumerate(zip(run.outputs, run.output_snapshot)):
            if isinstance(o, torch.Tensor) and not same_bits(o.detach(), o0):
                run.fail(
                    self.name,
                    f"output[{k}] changed after backward ran (backward "
                    "modified a saved tensor in place)",
                )
