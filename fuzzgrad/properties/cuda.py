"""``cuda``: on a GPU, the Function on CUDA agrees with itself on the CPU (skipped where there
is none)."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, widen
from fuzzgrad.properties.base import Property, Skip
from fuzzgrad.verdict.compare import compare


class Cuda(Property):
    name = "cuda"
    order = 100
    summary = "on a GPU, CUDA agrees with CPU (skipped where there is none)"

    def applies(self, target) -> bool:
        devices = target.options.get("devices", ("cpu", "cuda"))
        return "cpu" in devices and "cuda" in devices and torch.cuda.is_available()

    def check(self, run) -> None:
        if not str(run.case.device).startswith("cuda"):
            raise Skip("a CPU case")
        _cuda(run, run.case, run.wrt, run.cotangents)


def _cuda(run, case, full, cts) -> None:
    checker, fn = run.checker, run.target.fn
    cpu_args = [a.cpu() if isinstance(a, torch.Tensor) else a for a in case.args]
    results = []
    for args, ct in (
        (case.args, cts),
        (cpu_args, [c.cpu() if c is not None else None for c in cts]),
    ):
        leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        for i in full:
            leaves[i] = leaves[i].requires_grad_(True)
        outs = as_tuple(fn(*leaves))
        pairs = [(o, c) for o, c in zip(outs, ct) if c is not None]
        grads = (
            torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in full],
                [c for _, c in pairs],
                allow_unused=True,
            )
            if pairs
            else []
        )
        results.append((outs, grads))
    (gpu_outs, gpu_grads), (cpu_outs, cpu_grads) = results
    for path, g, c in [
        (f"output[{k}]", o, p) for k, (o, p) in enumerate(zip(gpu_outs, cpu_outs))
    ] + [(f"grad[input={i}]", g, p) for i, g, p in zip(full, gpu_grads, cpu_grads)]:
        if isinstance(g, torch.Tensor) and isinstance(c, torch.Tensor):
            m, _ = compare(
                f"cuda vs cpu {path}",
                g.cpu(),
                widen(c),
                overrides=checker.target.tolerances,
            )
            if m is not None:
                run.fail("cuda", str(m), m)
