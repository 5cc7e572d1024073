"""Rounding slack: how much error honest arithmetic at a case's dtype can make, per element.

A comparison first allows the per-dtype tolerance plus the reference's own error at the dtype
(`fuzzgrad.verdict.compare`). Where that fails, two estimates of the math's sensitivity to
rounding at this very input are added before anything is reported, each from the float64
reference:

- **Nudges.** Every floating input and cotangent moves by one rounding of its own dtype (relative
  eps, or a subnormal's spacing near zero), twice at random; how far the exact result moves is
  what a backward-stable algorithm may err by. This covers ill-conditioned points: a constant
  LayerNorm row times a huge weight, whose exact output is 0 but whose rounded centring is not.
- **Term magnitudes.** A dot product of rounded terms errs by about eps times the sum of the
  terms' absolute values, however small the result. For the forward that is ``|J| @ |x|`` (the
  first-order effect of rounding every input), for the vjp ``|g| @ |J|`` (the cotangent's terms):
  where a result is the cancellation of large terms (LayerNorm's input gradient on a 2-element
  row is ~1e-9 from terms of ~300), float32 arithmetic errs by ~eps times the terms, not the
  result. The Jacobian is taken only for cases small enough (`MAX_JACOBIAN` entries).

Both only run for a case that fails without them, so passing cases pay nothing.
"""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import Evaluation, as_tuple, floating
from fuzzgrad.oracles.torch_ref import torch_oracle

#: Seed of the rounding-sized input nudges.
NUDGE_SEED = 20240229
#: Largest Jacobian (output elements x input elements) computed for term magnitudes: 2 MB of
#: float64, taken only for a case that fails without it.
MAX_JACOBIAN = 1 << 18


def eps_of(t: torch.Tensor) -> float:
    """Machine epsilon of a floating tensor's dtype (of its real part for complex ones)."""
    return torch.finfo(t.real.dtype if t.is_complex() else t.dtype).eps


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(torch.complex128 if t.is_complex() else torch.float64)


def plus(a, b):
    """a + b where both are tensors, else whichever is not None."""
    if a is None or b is None:
        return a if b is None else b
    return a + b


def nudger():
    """A function moving a floating tensor, in float64, by one random rounding of its dtype:
    relative eps, or a subnormal's spacing near zero (anything else is returned as is)."""
    gen = torch.Generator().manual_seed(NUDGE_SEED)

    def nudge(t, alternate: bool = False):
        """``alternate``: up and down in turn along the elements (row-major) instead of at
        random, so that no row of two or more elements moves all one way (a constant row that
        stays constant says nothing about the rounding of its centring)."""
        if not floating(t):
            return t
        fin = torch.finfo(t.real.dtype if t.is_complex() else t.dtype)
        if alternate:
            u = (torch.arange(t.numel(), dtype=torch.float64) % 2 * 2 - 1).reshape(t.shape)
        else:
            u = torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1
        wide = _wide(t)
        if t.dtype == torch.float64:
            # A float64 nudge made in float64 would mostly round back to the value itself: move
            # every element one ulp, up or down at random, instead.
            return torch.nextafter(wide, torch.where(u >= 0, torch.inf, -torch.inf).to(wide))
        step = (wide.abs() * fin.eps).clamp_min(fin.smallest_normal * fin.eps)
        return wide + u * step

    return nudge


def moved(lo, hi):
    """|lo - hi| elementwise in ``hi``'s dtype. Where a rounding-sized nudge makes a finite
    result overflow (``lo`` infinite), the result is that sensitive: inf. Other non-finite
    differences (a nudge that left the math's domain, or ``hi`` itself non-finite) are 0: no
    information."""
    if not (isinstance(lo, torch.Tensor) and isinstance(hi, torch.Tensor)) or not floating(hi):
        return None
    lo = lo.to(hi.dtype)
    out = (lo - hi).abs().nan_to_num(0.0, 0.0, 0.0)
    return out.masked_fill_(lo.isinf() & hi.isfinite(), float("inf"))


def larger(a, b):
    """Elementwise maximum where both are tensors, else whichever is not None."""
    if a is None or b is None:
        return a if b is None else b
    return torch.maximum(a, b)


def nudge_spread(evaluate, groups, ref: list) -> list | None:
    """Elementwise, the worst of three nudges (two random, one alternating) of every tensor in
    ``groups`` (lists, or None) of ``|evaluate(*nudged groups) - ref|``; ``evaluate`` returns a
    list shaped like ``ref``. None if even the first nudge leaves the math's domain."""
    nudge = nudger()
    worst = None
    for k in range(3):
        alternate = k == 2
        try:
            other = evaluate(
                *[None if g is None else [nudge(t, alternate) for t in g] for g in groups]
            )
        except Exception:  # noqa: BLE001 - a nudge can leave the math's domain: no slack from it
            return worst
        here = [moved(o, r) for o, r in zip(other, ref)]
        worst = here if worst is None else [larger(a, b) for a, b in zip(worst, here)]
    return worst


def add_up(*slacks: list | None) -> list | None:
    """The elementwise sum of the slacks that exist (lists of tensors or None)."""
    present = [s for s in slacks if s is not None]
    if not present:
        return None
    out = present[0]
    for s in present[1:]:
        out = [plus(a, b) for a, b in zip(out, s)]
    return out


def float64_rounding(lo, hi):
    """A float64 result ``hi`` moved by its own estimated rounding error: the deviation of its
    float32 counterpart ``lo`` scaled by eps64/eps32 (None unless both are floating tensors)."""
    if not (isinstance(lo, torch.Tensor) and isinstance(hi, torch.Tensor)) or not floating(hi):
        return None
    ratio = torch.finfo(torch.float64).eps / torch.finfo(torch.float32).eps
    return hi + (lo.to(hi.dtype) - hi).nan_to_num(0.0, 0.0, 0.0) * ratio


def _flat(ev: Evaluation) -> list:
    return [*ev.outputs, *ev.grads]


def _unflat(flat: list | None, like: Evaluation) -> Evaluation | None:
    if flat is None:
        return None
    n = len(like.outputs)
    return Evaluation(tuple(flat[:n]), tuple(flat[n:]))


def nudged(reference, args, wrt, cts, ref: Evaluation) -> Evaluation | None:
    """Elementwise |reference(nudged) - reference|, the worse of two random nudges."""

    def evaluate(a, c):
        return _flat(torch_oracle(reference, a, wrt, c, torch.float64))

    return _unflat(nudge_spread(evaluate, [args, cts], _flat(ref)), ref)


def abs_terms(f, inputs, weights, eps) -> tuple[list, list] | None:
    """Rounding-sized term magnitudes of ``f`` at float64 ``inputs`` (a Jacobian, when small).

    Returns ``(forward, backward)``: per output of ``f``, ``sum_i |J_i| @ (eps_i * |x_i|)``, and
    per input, ``eps_i * sum_k |w_k| @ |J_ki|`` for the output weights ``w_k`` (cotangents; a None
    weight adds nothing). None when the Jacobian would be too large or cannot be taken.
    """
    try:
        probe = [o for o in as_tuple(f(*inputs))]
    except Exception:  # noqa: BLE001
        return None
    n_out = sum(o.numel() for o in probe)
    n_in = sum(x.numel() for x in inputs)
    if not n_out or not n_in or n_out * n_in > MAX_JACOBIAN:
        return None

    def g(*xs):
        return tuple(as_tuple(f(*xs)))

    try:
        jac = torch.autograd.functional.jacobian(g, tuple(inputs), vectorize=True)
    except Exception:  # noqa: BLE001 - a reference vmap cannot batch: one backward per output
        try:
            jac = torch.autograd.functional.jacobian(g, tuple(inputs))
        except Exception:  # noqa: BLE001 - e.g. a reference autograd cannot differentiate
            return None
    forward: list = []
    backward: list = [None] * len(inputs)
    for k, o in enumerate(probe):
        total = torch.zeros(o.shape, dtype=torch.float64)
        for i, x in enumerate(inputs):
            block = jac[k][i].abs().nan_to_num(0.0, 0.0, 0.0).reshape(o.numel(), -1)
            total += (block @ (x.abs().nan_to_num(0.0, 0.0, 0.0).reshape(-1) * eps[i])).reshape(
                o.shape
            )
            w = weights[k] if k < len(weights) else None
            if isinstance(w, torch.Tensor):
                terms = w.abs().nan_to_num(0.0, 0.0, 0.0).reshape(-1) @ block * eps[i]
                backward[i] = plus(backward[i], terms.reshape(x.shape))
        forward.append(total)
    return forward, backward


def term_magnitudes(reference, args, wrt, cts, ref: Evaluation) -> Evaluation | None:
    """eps * (|J| @ |x|) per output element and eps * (|g| @ |J|) per gradient element."""
    wrt = [i for i in wrt if floating(args[i]) and not args[i].is_complex()]
    out_ok = [
        isinstance(o, torch.Tensor) and floating(o) and not o.is_complex() for o in ref.outputs
    ]
    if not wrt:
        return None
    wide = [_wide(a) if floating(a) else a for a in args]

    def f(*xs):
        full = list(wide)
        for i, x in zip(wrt, xs):
            full[i] = x
        got = as_tuple(reference(*full))
        return tuple(o for o, ok in zip(got, out_ok) if ok)

    kept = [k for k, ok in enumerate(out_ok) if ok]
    weights = [
        _wide(cts[k]) if cts is not None and k < len(cts) and cts[k] is not None else None
        for k in kept
    ]
    got = abs_terms(f, [wide[i] for i in wrt], weights, [eps_of(args[i]) for i in wrt])
    if got is None:
        return None
    forward, backward = got
    outs: list = [None] * len(ref.outputs)
    for k, t in zip(kept, forward):
        outs[k] = t
    grads: list = [None] * len(args)
    for i, t in zip(wrt, backward):
        grads[i] = t
    return Evaluation(tuple(outs), tuple(grads))


def rounding_slack(reference, args, wrt, cts, ref: Evaluation) -> Evaluation | None:
    """The sum of both estimates (either may be None where it cannot be computed)."""
    terms = term_magnitudes(reference, args, wrt, cts, ref)
    flat = add_up(
        _flat(n) if (n := nudged(reference, args, wrt, cts, ref)) else None,
        _flat(terms) if terms else None,
    )
    return _unflat(flat, ref)
