"""``forward``: the Function's outputs match the references (count, shape, dtype, values), and
each output the reference can differentiate is differentiable (not marked non-differentiable by
mistake, nor detached)."""

from __future__ import annotations

from fuzzgrad.oracles.evaluation import floating
from fuzzgrad.properties.base import Property


class Forward(Property):
    name = "forward"
    order = 10
    summary = "outputs match the references: count, shape, dtype, values"

    def check(self, run) -> None:
        found = run.judge_pair("outputs", outputs=run.outputs)
        if found is not None:
            run.fail(self.name, str(found), found)
        _check_differentiable(self.name, run)
        wide = run.float32_run
        if wide is not None:
            paths = [f"output[{k}]" for k in range(len(run.outputs))]
            run.check_fused(self.name, paths, run.outputs, wide.outputs)


def _check_differentiable(name: str, run) -> None:
    """A floating output that the torch reference differentiates must require grad in the
    Function's too: ``ctx.mark_non_differentiable`` on it (or a ``.detach()``) silently cuts
    every gradient that flows through it."""
    expected = run.reference.differentiable
    if not expected or run.checker.judge.base_reference is not run.target.reference:
        return  # no torch reference of the user's to say (JAX only, or an auto-reference)
    for k, (o, want) in enumerate(zip(run.outputs, expected)):
        if want and floating(o):
            if not o.requires_grad:
                run.fail(
                    name,
                    f"output[{k}] does not require grad, but the reference's output[{k}] is "
                    "differentiable in the inputs: marked non-differentiable by mistake, or "
                    "detached (every gradient through it is lost)",
                )
