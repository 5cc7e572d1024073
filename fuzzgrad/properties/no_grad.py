"""``no_grad``: the forward gives the same outputs whatever needs grad: with only the drawn
subset of inputs requiring grad, with none, under ``torch.no_grad()`` and under
``torch.inference_mode()``. Functions often take another branch when nothing needs grad (skip
saving, call a fused inference kernel), and that branch is where nobody tested them."""

from __future__ import annotations

import contextlib

import torch

from fuzzgrad.properties.base import Property
from fuzzgrad.properties.case import same_bits


class NoGrad(Property):
    name = "no_grad"
    order = 15
    summary = (
        "outputs are the same with only some inputs requiring grad, with none, under "
        "`torch.no_grad()` and under `torch.inference_mode()`"
    )

    def check(self, run) -> None:
        case = run.case
        subset = [i for i in run.wrt if case.requires_grad[i]]
        modes = []
        if subset and subset != run.wrt:
            modes.append((f"with only inputs {subset} requiring grad", subset, None))
        modes += [
            ("with no input requiring grad", [], None),
            ("under torch.no_grad()", [], torch.no_grad),
            ("under torch.inference_mode()", [], torch.inference_mode),
        ]
        for what, wrt, mode in modes:
            args = case.args
            if run.nonleaf:  # an in-place Function writes into what it is given
                args = [a.clone() if isinstance(a, torch.Tensor) else a for a in run.snapshot]
            with (mode or contextlib.nullcontext)():
                try:
                    outs, _, _ = run.call(args, wrt)
                except Exception as exc:  # noqa: BLE001
                    run.fail(self.name, f"{what}, the Function raised {type(exc).__name__}: {exc}")
            if len(outs) == len(run.outputs) and all(
                same_bits(_plain(a), _plain(b)) for a, b in zip(outs, run.outputs)
            ):
                continue  # the very same outputs: nothing to judge
            found = run.judge.pair(
                "outputs",
                case,
                run.wrt,
                run.cotangents,
                tuple(_plain(o) for o in outs),
                None,
                run.reference,
                run.calibration,
            )
            if found is not None:
                run.fail(self.name, f"{what}: {found}", found)


def _plain(x):
    """A result as a plain tensor (no graph; an inference tensor cloned out of its mode)."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach()
    return x.clone() if x.is_inference() else x
