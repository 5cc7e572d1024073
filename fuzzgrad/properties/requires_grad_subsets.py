"""``requires_grad_subsets``: with only some inputs requiring grad, their gradients are the
same (a backward that indexes ``needs_input_grad`` wrongly, or returns gradients in the wrong
slots, is caught)."""

from __future__ import annotations

from fuzzgrad.properties.base import Property, Skip
from fuzzgrad.properties.case import materialise


class RequiresGradSubsets(Property):
    name = "requires_grad_subsets"
    order = 60
    needs = frozenset({"grads"})
    summary = "with only some inputs requiring grad, their gradients are unchanged"

    def check(self, run) -> None:
        case = run.case
        subset = [i for i in run.wrt if case.requires_grad[i]]
        if not run.grads_wanted or subset == run.wrt:
            raise Skip("every input requires grad")
        outs, leaves, _ = run.call(case.args, subset)
        cts = materialise(case, outs)
        grads = run.backward(outs, leaves, subset, cts, retain=False, prop=self.name)
        found = run.judge.pair(
            "grads", case, subset, cts, None, grads, run.reference, run.calibration
        )
        if found is not None:
            case.notes["wrt"] = subset  # what the reproducer replays
            run.fail(self.name, str(found), found)
