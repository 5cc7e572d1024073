"""``forward``: the Function's outputs match the references (count, shape, dtype, values)."""

from __future__ import annotations

from fuzzgrad.properties.base import Property


class Forward(Property):
    name = "forward"
    order = 10
    summary = "outputs match the references: count, shape, dtype, values"

    def check(self, run) -> None:
        found = run.judge_pair("outputs", outputs=run.outputs)
        if found is not None:
            run.fail(self.name, str(found), found)
        wide = run.float32_run
        if wide is not None:
            paths = [f"output[{k}]" for k in range(len(run.outputs))]
            run.check_fused(self.name, paths, run.outputs, wide.outputs)
