"""The dense test behind `equivalent.py`: does a surviving mutant ever differ from the original?

    python -m bench.mutants.dense Gather:detach_saved:0 SiLU:low_precision:0 [--cases 2000]

Runs the original and the mutant on the same inputs and cotangents and compares what each
returns, bit for bit: the gradients (first order) and, unless backward is
``once_differentiable``, a Hessian-vector product (second order). Inputs are ``--cases`` cases
drawn from fuzzgrad's own strategy (every dtype, layout and edge value class it knows), plus, for
one-input Functions, every finite float16 and bfloat16 value in one tensor. A mutant that never
differs is equivalent; one that differs by a few ulps in low precision only is equivalent
under the calibrated tolerances (a correct half-precision implementation may round the same
way); anything else is a real miss.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _derivatives(target, args, wrt, seed: int) -> tuple[list, list]:
    """Gradients, and (if allowed) a Hessian-vector product; a raised error is a result too."""
    leaves = [
        a.detach().clone().requires_grad_(i in wrt) if isinstance(a, torch.Tensor) else a
        for i, a in enumerate(args)
    ]
    call = [a.clone() if isinstance(a, torch.Tensor) and a.requires_grad else a for a in leaves]
    gen = torch.Generator().manual_seed(seed)
    try:
        outs = target.fn(*call)
        outs = outs if isinstance(outs, tuple) else (outs,)
        pairs = [
            (o, torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype))
            for o in outs
            if isinstance(o, torch.Tensor) and o.requires_grad
        ]
        xs = [leaves[i] for i in wrt]
        grads = torch.autograd.grad(
            [o for o, _ in pairs],
            xs,
            [c for _, c in pairs],
            create_graph=not target.once_differentiable,
            allow_unused=True,
        )
        first = [g.detach() if g is not None else None for g in grads]
    except Exception as exc:  # noqa: BLE001 - compared like any other result
        return [type(exc).__name__], []
    if target.once_differentiable:
        return first, []
    try:
        dots = [
            (g * torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.dtype)).sum()
            for g in grads
            if g is not None and g.requires_grad
        ]
        hvp = torch.autograd.grad(sum(dots), xs, allow_unused=True) if dots else ()
        return first, [h.detach() if h is not None else None for h in hvp]
    except Exception as exc:  # noqa: BLE001
        return first, [type(exc).__name__]


def _ulps(a, b) -> float:
    """How far apart two results are, normwise: the largest difference in units of the last
    place of ``b``'s largest finite element in ``b``'s dtype (0 if bitwise equal, inf if they
    are of different kinds or one is NaN/inf where the other is not)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape:
        a64, b64 = a.to(torch.float64), b.to(torch.float64)
        same = (a64 == b64) | (a64.isnan() & b64.isnan())
        if bool(same.all()):
            return 0.0
        if not bool((a64.isfinite() == b64.isfinite()).all()):
            return float("inf")
        finite = b64[b64.isfinite()].abs()
        scale = max(float(finite.max()) if finite.numel() else 0.0, torch.finfo(b.dtype).tiny)
        diff = (a64 - b64)[~same & b64.isfinite()].abs()
        return float(diff.max()) / (torch.finfo(b.dtype).eps * scale) if diff.numel() else 0.0
    return 0.0 if a == b or (a is None and b is None) else float("inf")


def compare(original, mutant, cases: int = 1000) -> dict[str, tuple[float, str]]:
    """Worst normwise difference in ulps, and the dtypes where it happened, for the first and
    the second order over dense inputs (``"cases"`` holds how many were compared)."""
    from hypothesis import HealthCheck, Phase, given, settings

    from fuzzgrad.strategies import cases as case_strategy

    worst = {"first": (0.0, "-"), "second": (0.0, "-"), "cases": (0, "")}

    def one(args, seed):
        wrt = [
            i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.is_floating_point()
        ]
        if not wrt:
            return
        want = _derivatives(original, args, wrt, seed)
        got = _derivatives(mutant, args, wrt, seed)
        worst["cases"] = (worst["cases"][0] + 1, "")
        for key, g, w in (("first", got[0], want[0]), ("second", got[1], want[1])):
            d = max((_ulps(x, y) for x, y in zip(g, w)), default=0.0)
            d = float("inf") if len(g) != len(w) else d
            if d > worst[key][0]:
                dtypes = sorted(
                    {
                        str(a.dtype).replace("torch.", "")
                        for a in args
                        if isinstance(a, torch.Tensor) and a.is_floating_point()
                    }
                )
                worst[key] = (d, ",".join(dtypes))

    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(case_strategy(original))
    def run(case):
        one(case.args, case.direction_seed)

    run()
    specs = original.inputs
    if isinstance(specs, tuple) and len(specs) == 1:
        for dtype in (torch.float16, torch.bfloat16):
            bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
            x = bits.view(dtype)
            one((x[x.isfinite()],), 0)
    return worst


def _verdict(worst: tuple[float, str]) -> str:
    d, dtypes = worst
    return "identical" if d == 0 else f"up to {d:.3g} ulps ({dtypes})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mutants", nargs="+", help="mutant ids, e.g. SiLU:low_precision:0")
    parser.add_argument("--cases", type=int, default=1000)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    from bench.mutants.mutants import all_mutants, build, builtin_targets

    targets = builtin_targets()
    known = {m.id: m for m in all_mutants(targets.values())}
    for mid in args.mutants:
        m = known[mid]
        worst = compare(targets[m.target], build(m, targets[m.target]), args.cases)
        print(
            f"{mid}: first order {_verdict(worst['first'])}, second order "
            f"{_verdict(worst['second'])}, over {worst['cases'][0]} cases | {m.change}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
