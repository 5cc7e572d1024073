"""``grad_meta``: what ``backward`` returns has each input's shape, dtype and device *before*
autograd silently sums or casts it (double backward and torch.func callers get it raw)."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating
from fuzzgrad.properties.base import Property, Skip


class GradMeta(Property):
    name = "grad_meta"
    order = 50  # last of the first-order checks: calling backward by hand may have side effects
    needs = frozenset({"grads", "retain"})
    summary = (
        "what `backward` returns has each input's shape, dtype and device *before* autograd "
        "silently sums or casts it"
    )

    def applies(self, target) -> bool:
        return target.function is not None

    def check(self, run) -> None:
        if not run.grads_wanted:
            raise Skip("nothing to differentiate")
        cls = run.target.function
        outs, cts = run.outputs, run.cotangents
        node = next((o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn), None)
        if node is None or type(node).__name__ != f"{cls.__name__}Backward":
            raise Skip("the last node is not the Function's")  # a wrapper adds ops after it
        grads_in = [
            c.clone() if c is not None else (torch.zeros_like(o) if floating(o) else None)
            for o, c in zip(outs, cts)
        ]
        try:
            raw = as_tuple(node.apply(*grads_in))
        except Exception:  # noqa: BLE001 - the vjp property reports a crashing backward
            raise Skip("backward raised") from None
        for i in run.wrt:
            g = raw[i] if i < len(raw) else None
            if not isinstance(g, torch.Tensor):
                continue
            x = run.called[i]
            for what, got, want in (
                ("shape", tuple(g.shape), tuple(x.shape)),
                ("dtype", g.dtype, x.dtype),
                ("device", g.device, x.device),
            ):
                if got != want:
                    run.fail(
                        self.name,
                        f"backward returned grad[input={i}] with {what} "
                        f"{got} for an input with {what} {want}; autograd silently "
                        f"{'sums' if what == 'shape' else 'casts'} it, but other callers "
                        "(double backward, torch.func) may not",
                    )
