"""``vmap``: ``torch.func.vmap`` of the Function matches calling it per sample, when it defines
``vmap`` or ``generate_vmap_rule``."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating
from fuzzgrad.properties.base import Property, defines
from fuzzgrad.verdict.compare import compare


class Vmap(Property):
    name = "vmap"
    order = 90
    summary = (
        "`torch.func.vmap` matches per-sample calls, when it defines `vmap` or `generate_vmap_rule`"
    )

    def applies(self, target) -> bool:
        cls = target.autograd_function
        return cls is not None and (
            defines(cls, "vmap") or bool(getattr(cls, "generate_vmap_rule", False))
        )

    def check(self, run) -> None:
        _vmap(run, run.case)


def _vmap(run, case) -> None:
    checker, fn = run.checker, run.target.fn
    tensors = [i for i, a in enumerate(case.args) if isinstance(a, torch.Tensor)]
    if not tensors:
        return
    second = [a * 0.5 + 0.25 if floating(a) else a for a in case.args]
    for batched in (tensors, tensors[:1]):  # every tensor batched; only the first batched
        args = list(case.args)
        dims = [None] * len(args)
        for i in batched:
            args[i] = torch.stack([case.args[i], second[i]])
            dims[i] = 0
        try:
            with torch.no_grad():
                out = as_tuple(torch.func.vmap(fn, in_dims=tuple(dims))(*args))
                one = as_tuple(fn(*case.args))
                two = as_tuple(
                    fn(*[second[i] if i in batched else a for i, a in enumerate(case.args)])
                )
        except Exception as exc:  # noqa: BLE001
            run.fail("vmap", f"torch.func.vmap raised {type(exc).__name__}: {exc}")
        for k, (o, a, b) in enumerate(zip(out, one, two)):
            if not isinstance(o, torch.Tensor):
                continue
            want = torch.stack([a, b])
            m, _ = compare(
                f"vmap output[{k}] (batched inputs {batched})",
                o,
                want,
                overrides=checker.target.tolerances,
            )
            if m is not None:
                run.fail("vmap", f"{m}: vmap disagrees with calling the Function per sample", m)
