"""``requires_grad_subsets``: with only some inputs requiring grad, their gradients are the
same (a backward that indexes ``needs_input_grad`` wrongly, or returns gradients in the wrong
slots, is caught)."""

from __future__ import annotations

from fuzzgrad.properties.base import Property, PropertyFailure, Skip
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
        if found is None:
            return
        case.notes["wrt"] = subset  # what the reproducer replays
        follows = _unchanged(run, subset, grads)
        message = str(found)
        if follows:
            message += (
                "; the backward gives the same wrong gradient with every input requiring grad: "
                "its own error (vjp), not one of the subset"
            )
        try:
            run.fail(self.name, message, found)
        except PropertyFailure as exc:
            exc.follows_backward = follows  # type: ignore[attr-defined]
            raise


def _unchanged(run, subset, grads) -> bool:
    """Whether the subset's gradients are those of the full run (every input requiring grad):
    then this property holds, and the mismatch with the reference is the backward's own,
    found by ``vjp`` (the finding folds into it, `fuzzgrad.verdict.identity.folds_into`)."""
    import torch

    full = run.grads_so_far()  # computed by vjp, which runs first
    if full is None:
        return False
    for i in subset:
        a, b = grads[i], full[i]
        if a is None or b is None:
            if (a is None) != (b is None):
                return False
            continue
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        try:
            torch.testing.assert_close(a, b, equal_nan=True)
        except AssertionError:
            return False
    return True
