"""Central finite differences: the oracle of last resort (targets with no reference at all)."""

from __future__ import annotations

import torch


def numerical_vjp(
    fn, args, wrt, cotangents, *, eps: float = 1e-6, directions: int = 2, seed: int = 0
) -> list[tuple[dict[int, torch.Tensor], float, float]]:
    """Central finite differences of ``<fn(args), cotangents>`` along random directions.

    Returns ``(direction, estimate, scale)`` per direction (``direction``: input index to its
    part); the VJP ``g`` is right when ``<g, direction>`` matches ``estimate`` to about
    ``scale * sqrt(eps)``. Used for targets without any reference, and as a tie-breaker.
    """
    gen = torch.Generator().manual_seed(seed)
    base = [
        a.detach().to(torch.float64) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
        for a in args
    ]
    cts = [c.detach().to(torch.float64) if c is not None else None for c in cotangents]

    def scalar(shifted):
        with torch.no_grad():
            outs = fn(*shifted)
        outs = outs if isinstance(outs, tuple) else (outs,)
        total = 0.0
        for o, c in zip(outs, cts):
            if c is not None:
                total += float((o.to(torch.float64) * c).sum())
        return total

    results = []
    for _ in range(directions):
        dirs = {i: torch.randn(base[i].shape, generator=gen, dtype=torch.float64) for i in wrt}
        plus = list(base)
        minus = list(base)
        for i, d in dirs.items():
            plus[i] = base[i] + eps * d
            minus[i] = base[i] - eps * d
        estimate = (scalar(plus) - scalar(minus)) / (2 * eps)
        scale = abs(scalar(base)) + 1.0
        results.append((dirs, estimate, scale))
    return results


#: Relative step of `grad_elements` (about the cube root of float64's eps: the best central
#: difference for a smooth function), and how far its two estimates may differ for the function
#: to count as smooth there.
STEP = 6e-6
SMOOTH = 1e-3


def grad_elements(fn, args, wrt, cotangents, positions) -> list[float | None]:
    """Central finite differences, in float64, of ``<fn(args), cotangents>`` with respect to
    single elements ``positions`` (``(argument index, flat index)`` pairs): one estimate per
    position, or None where the function is not finite or not smooth there (two step sizes
    disagree). Costs four evaluations of ``fn`` per position: for a few elements only."""
    # Contiguous copies: a step is written through ``reshape(-1)``, a copy (and the step lost,
    # every estimate 0) for a transposed input, whose strides a plain clone keeps.
    base = [
        a.detach().to(torch.float64).clone(memory_format=torch.contiguous_format)
        if isinstance(a, torch.Tensor) and a.is_floating_point()
        else a
        for a in args
    ]
    cts = [c.detach().to(torch.float64) if c is not None else None for c in cotangents]

    def scalar(shifted) -> float:
        with torch.no_grad():
            outs = fn(*shifted)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return sum(
            float((o.to(torch.float64) * c).sum())
            for o, c in zip(outs, cts)
            if c is not None and isinstance(o, torch.Tensor)
        )

    try:
        f0 = abs(scalar(base))
    except Exception:  # noqa: BLE001
        return [None] * len(positions)
    out: list[float | None] = []
    for i, j in positions:
        x = base[i]
        if i not in wrt or not isinstance(x, torch.Tensor):
            out.append(None)
            continue
        value = float(x.reshape(-1)[j])
        step = STEP * max(abs(value), 1.0)
        estimates = []
        for h in (step, step / 4):
            sides = []
            for sign in (1, -1):
                moved = list(base)
                moved[i] = x.clone()
                moved[i].reshape(-1)[j] = value + sign * h
                try:
                    sides.append(scalar(moved))
                except Exception:  # noqa: BLE001 - a step left the math's domain
                    sides.append(float("nan"))
            estimates.append((sides[0] - sides[1]) / (2 * h))
        a, b = estimates
        finite = all(abs(e) < float("inf") for e in estimates)
        noise = 1e-12 * (f0 + 1.0) / (step / 4)  # rounding in <f, ct> over the smaller step
        smooth = finite and abs(a - b) <= SMOOTH * max(abs(a), abs(b)) + noise
        out.append(b if smooth else None)
    return out
