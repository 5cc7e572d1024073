"""``reference_disagreement``: the torch and JAX references agree with each other.

Where they disagree and the Function agrees with one of them, the case passes (either-agreement
is the rule at kinks, ties and subgradient conventions), but one of the references must be
wrong there: a wrong torch reference hidden behind a right JAX one (or the reverse) would let a
Function with the same mistake pass. So a disagreement that moving the inputs a little does not
resolve (no kink, no tie) and that exceeds what the case's dtype allows is a finding of its own,
shrunk like any other, with both values.
"""

from __future__ import annotations

from fuzzgrad.properties.base import Property, Skip


class ReferenceDisagreement(Property):
    name = "reference_disagreement"
    order = 1000  # after every property that consults both references
    needs = frozenset({"grads"})  # the references' gradients are compared too
    summary = (
        "the torch and JAX references agree with each other wherever the Function agrees with "
        "only one (kinks and ties excepted)"
    )

    def applies(self, target) -> bool:
        return target.reference is not None and target.jax_reference is not None

    def check(self, run) -> None:
        judge = run.judge
        alone = not (run.checker.wants("forward") or run.checker.wants("vjp"))
        if judge.disagreement is None and (alone or run.case.notes.get("_jax")):
            # JAX ran on this case anyway (or nothing else would run it): compare the
            # references directly, wherever the Function stands.
            cts = run.ref_cotangents
            try:
                jref = judge.run_jax(run.case, run.wrt, cts)
            except Exception:  # noqa: BLE001 - outside the JAX reference's domain here
                raise Skip("the JAX reference raised") from None
            for kind in ("outputs", "grads"):
                if judge.disagreement is None:
                    judge.references_disagree(
                        kind, run.case, run.wrt, cts, run.reference, jref, None
                    )
        found = judge.disagreement
        if found is None:
            if not run.case.notes.get("_jax"):
                raise Skip("JAX did not run")
            return
        mismatch, side = found
        values = mismatch.message.replace("got", "torch gives", 1)
        values = values.replace("expected", "JAX gives", 1)
        dtype = str(run.case.dtype).replace("torch.", "")
        run.fail(
            self.name,
            f"the torch reference and the JAX reference disagree, beyond what {dtype} allows "
            f"and not at a kink or tie: {mismatch.path}: {values}"
            + (f"; the Function agrees with the {side} reference" if side else "")
            + ". One reference is wrong here: fix it (a Function with the same mistake would "
            "pass against it).",
            mismatch,
        )
