"""``vjp``: the Function's gradients for drawn cotangents (random values, also non-contiguous
and stride-0 ones) match the references'."""

from __future__ import annotations

from fuzzgrad.properties.base import Property, Skip


class Vjp(Property):
    name = "vjp"
    order = 20
    needs = frozenset({"grads"})
    summary = "gradients for drawn cotangents (random values, also non-contiguous and stride-0)"

    def check(self, run) -> None:
        if not run.grads_wanted:
            raise Skip("nothing to differentiate")
        grads = run.grads(self.name)
        found = run.judge_pair("grads", grads=grads)
        if found is None:  # where both references are NaN/inf: finite differences judge
            found = run.judge.nonfinite_references(
                run.case, run.wrt, run.cotangents, grads, run.reference
            )
        if found is not None:
            run.fail(self.name, str(found), found)
        wide = run.float32_run
        if wide is not None:
            paths = [f"grad[input={i}]" for i in run.wrt]
            got, want = [grads[i] for i in run.wrt], [wide.grads[i] for i in run.wrt]

            def kept() -> list | None:
                kept_run = run.float32_kept_run
                return None if kept_run is None else [kept_run.grads[i] for i in run.wrt]

            run.check_fused(self.name, paths, got, want, kept)
