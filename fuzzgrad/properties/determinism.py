"""``determinism``: backward run twice on the same graph gives the same bits."""

from __future__ import annotations

from fuzzgrad.properties.base import Property, Skip
from fuzzgrad.properties.case import same_bits


class Determinism(Property):
    name = "determinism"
    order = 40
    needs = frozenset({"grads", "retain"})
    summary = "backward twice on the same graph gives the same bits"

    def check(self, run) -> None:
        if not run.grads_wanted:
            raise Skip("nothing to differentiate")
        grads = run.grads(self.name)
        again = run.backward(
            run.outputs,
            run.leaves,
            run.wrt,
            run.cotangents,
            retain=run.checker.wants("grad_meta"),
            prop=self.name,
        )
        for i in run.wrt:
            if not same_bits(grads[i], again[i]):
                run.fail(
                    self.name,
                    f"grad[input={i}]: backward run twice on the same graph gives different bits",
                )
