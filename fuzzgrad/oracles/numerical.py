"""Central finite differences: the oracle of last resort (targets with no reference at all)."""

from __future__ import annotations

import torch


def numerical_vjp(
    fn, args, wrt, cotangents, *, eps: float = 1e-6, directions: int = 2, seed: int = 0
) -> list[tuple[torch.Tensor, float, float]]:
    """Central finite differences of ``<fn(args), cotangents>`` along random directions.

    Returns ``(direction, estimate, scale)`` per direction; the VJP ``g`` is right when
    ``<g, direction>`` matches ``estimate`` to about ``scale * sqrt(eps)``. Used for targets
    without any reference, and as a tie-breaker.
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
