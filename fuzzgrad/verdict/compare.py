"""The one comparison entry point: custom values against the float64 oracle, per-dtype tolerances.

An element passes when
``|actual - e| <= atol + rtol*|e| + widen*(|calib - e| + max|calib - e|)``
where ``e`` is the float64 oracle and ``calib`` is the same reference math evaluated at the
custom Function's own dtype: the error the reference itself makes at that dtype is allowed (plus
its worst error anywhere in the tensor), so a float16 Function is never held to float64 accuracy.
Where the reference at the dtype is non-finite but the float64 oracle is finite, the reference
math itself breaks down at that dtype, and any finite custom value is accepted there (a NaN or
inf is not, unless a registration opts out with ``nonfinite_ok``); where the oracle
is inf and ``calib`` (there, the other reference) is finite, the custom value may match
``calib``. Elsewhere
non-finite values must match the oracle's (an oracle ``NaN`` means the math is undefined
there and accepts anything; an oracle ``inf`` takes the same ``inf`` or ``NaN``),
except where the float64 oracle is near or past the dtype's largest value (within
`NEAR_OVERFLOW`) and the custom value is ``inf`` or ``NaN`` (an intermediate may overflow in
any evaluation order, and then the sign says nothing), or the oracle
is ``inf`` and the custom value is as near to overflowing, or the reference at the dtype gives
that same non-finite value. When an input is so large that squaring it comes within
`NEAR_OVERFLOW` of overflowing (``overflow_regime``), inf/NaN on the custom side is accepted,
and where the float64 reference is non-finite its finite values are not judged either (they
may come from overflowed intermediates too); both only at the elements those large inputs
reach, where that is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

#: Default (rtol, atol) per dtype, from torch.testing.assert_close's table, loosened for
#: float32/float16 because the comparison is against a float64 oracle, not a same-dtype result.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-3, 1e-3),
    torch.bfloat16: (1.6e-2, 1e-2),
    torch.complex128: (1e-7, 1e-7),
    torch.complex64: (1e-5, 1e-5),
}
#: How many times the reference's own low-precision error is allowed on top.
WIDEN = 4.0
#: Results within this factor of the dtype's largest finite value may overflow to inf.
NEAR_OVERFLOW = 16.0


@dataclass(frozen=True)
class Mismatch:
    """Why ``path`` differs: a sentence for people, plus the numbers for reports."""

    path: str
    message: str
    max_abs: float = math.inf
    max_rel: float = math.inf
    index: tuple[int, ...] | None = None
    actual: float | None = None
    expected: float | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def tolerance(dtype: torch.dtype, overrides: dict | None = None) -> tuple[float, float]:
    """The (rtol, atol) for a dtype, with a target's per-dtype overrides applied."""
    if overrides and dtype in overrides:
        return tuple(overrides[dtype])
    return TOLERANCES.get(dtype, (0.0, 0.0))


#: For ``precision="fused"``: float32 arithmetic may err by this many float32 eps of the
#: tensor's largest value before the one rounding to half precision.
FUSED_NOISE = 64.0


def fused_tolerance(dtype: torch.dtype, expected: torch.Tensor) -> tuple[float, float]:
    """(rtol, atol) for a Function that computes in float32 and rounds once to ``dtype``.

    One rounding to ``dtype`` errs by at most half an ulp, i.e. ``eps/2`` relative; ``rtol`` is
    ``eps``, twice that. ``atol`` covers what float32 arithmetic adds before the rounding (relative
    to the tensor's largest finite value) and the absolute spacing of subnormals.
    """
    fin = torch.finfo(dtype)
    e = expected.detach().abs()
    finite = e[e.isfinite()]
    scale = float(finite.max()) if finite.numel() else 0.0
    noise = FUSED_NOISE * torch.finfo(torch.float32).eps * scale
    return fin.eps, noise + fin.smallest_normal * fin.eps


def _reach_mask(overflow_regime: bool | torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The elements an overflow regime excuses: all, or those of a mask of the same shape."""
    if isinstance(overflow_regime, torch.Tensor) and overflow_regime.shape == shape:
        return overflow_regime.detach().to("cpu", torch.bool)
    return torch.ones(shape, dtype=torch.bool)


def _index(flat: int, shape: torch.Size) -> tuple[int, ...]:
    out = []
    for size in reversed(shape):
        out.append(flat % size if size else 0)
        flat //= size if size else 1
    return tuple(reversed(out))


def _compare_values(path: str, actual: Any, expected: Any) -> Mismatch | None:
    """A non-tensor output (a count, a flag) against the reference's: equal values pass; a
    number against a one-element tensor (how JAX returns a Python number) compares by value."""

    def plain(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.numel() == 1 and not x.is_complex():
            return x.detach().cpu().item()
        return x

    a, e = plain(actual), plain(expected)
    if isinstance(a, torch.Tensor) or isinstance(e, torch.Tensor):
        got, want = type(actual).__name__, type(expected).__name__
        return Mismatch(path, f"a {got} where the reference gives a {want}")
    try:
        same = bool(a == e) or (a != a and e != e)  # NaN equals NaN here
    except Exception:  # noqa: BLE001 - values without a plain equality
        same = a is e
    return None if same else Mismatch(path, f"{actual!r} but the reference gives {expected!r}")


def compare(
    path: str,
    actual: torch.Tensor | None,
    expected: torch.Tensor | None,
    *,
    calib: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
    overrides: dict | None = None,
    check_dtype: torch.dtype | None = None,
    overflow_regime: bool | torch.Tensor = False,
    slack: torch.Tensor | None = None,
    fused: bool = False,
    judge_reach: bool = True,
    near_overflow: float = NEAR_OVERFLOW,
    nonfinite_ok: bool = False,
) -> tuple[Mismatch | None, float]:
    """Compare one tensor; return the mismatch (or None) and the worst error/tolerance ratio.

    ``None`` on either side stands for zeros (an unused input's gradient). ``dtype`` picks the
    tolerance (default: ``actual``'s dtype); ``check_dtype``, when given, is the dtype ``actual``
    must have. ``overflow_regime`` says the inputs hold values so large (``|x|`` at least
    ``sqrt(max / NEAR_OVERFLOW)``) that any formula's intermediates overflow somewhere: there,
    inf/NaN on either side is not a finding (wrong finite values still are, unless the
    reference is non-finite somewhere in the tensor). A boolean tensor instead of ``True``
    says which elements the large inputs reach (`fuzzgrad.verdict.overflow.find_reach`): only those
    are excused, and ``judge_reach=False`` leaves them out altogether. ``slack``, elementwise,
    is how far the exact result moves under a rounding-sized change of the inputs (the math's
    own conditioning there); `WIDEN` times it is allowed on top, at that element only. ``fused`` (a
    half-precision result against the same Function's float32 result rounded once, for
    ``precision="fused"``) replaces the dtype's default tolerance by `fused_tolerance`.
    ``near_overflow`` is the factor below the dtype's largest value from which a result may
    overflow in some evaluation order (`NEAR_OVERFLOW`; more where intermediates are products
    of the inputs, see `fuzzgrad.verdict.overflow.product_margin`). ``nonfinite_ok`` (the
    registration's ``nonfinite_ok`` names the property) accepts a NaN or inf wherever the
    reference at the dtype (``calib``) gives one too, though the float64 oracle is finite.
    """
    if actual is None and expected is None:
        return None, 0.0
    if not isinstance(actual, (torch.Tensor, type(None))) or not isinstance(
        expected, (torch.Tensor, type(None))
    ):
        return _compare_values(path, actual, expected), 0.0
    if actual is None:
        actual = torch.zeros_like(expected)
    if expected is None:
        expected = torch.zeros_like(actual, dtype=torch.float64)
    if not isinstance(actual, torch.Tensor):
        return Mismatch(path, f"expected a tensor, got {type(actual).__name__}"), math.inf
    if tuple(actual.shape) != tuple(expected.shape):
        return Mismatch(
            path, f"shape {tuple(actual.shape)} but the reference gives {tuple(expected.shape)}"
        ), math.inf
    if check_dtype is not None and actual.dtype != check_dtype:
        return Mismatch(
            path, f"dtype {actual.dtype} but the reference gives {check_dtype}"
        ), math.inf
    dtype = dtype or actual.dtype
    if actual.numel() == 0:
        return None, 0.0
    if not (actual.dtype.is_floating_point or actual.dtype.is_complex):
        a = actual.detach().cpu()
        e = expected.detach().cpu().to(a.dtype)
        bad = a != e
        if bad.any():
            i = int(bad.reshape(-1).nonzero()[0])
            return Mismatch(
                path,
                f"{int(bad.sum())} of {a.numel()} elements differ; first at index "
                f"{_index(i, a.shape)}: {a.reshape(-1)[i].item()} vs {e.reshape(-1)[i].item()}",
                index=_index(i, a.shape),
            ), math.inf
        return None, 0.0
    rtol, atol = tolerance(dtype, overrides)
    if fused and not (overrides and dtype in overrides):
        rtol, atol = fused_tolerance(dtype, expected)
    a = actual.detach().to("cpu", torch.complex128 if actual.is_complex() else torch.float64)
    e = expected.detach().to("cpu", a.dtype)
    c = calib.detach().to("cpu", a.dtype) if calib is not None else e
    allowed = e.abs().mul_(rtol).add_(atol)
    if calib is not None:
        # The reference's own error at this dtype, elementwise and at its worst anywhere in the
        # tensor (a float32 Function may compute in another order than the reference and err
        # elsewhere); where the reference is non-finite it says nothing here.
        calib_err = (c - e).abs().nan_to_num(0.0, 0.0, 0.0)
        allowed.add_(WIDEN * (calib_err + calib_err.max()))
    if slack is not None:
        # an infinite slack (a rounding-sized nudge overflows the result) allows anything finite
        extra = slack.detach().to("cpu", torch.float64).nan_to_num(0.0, math.inf, 0.0)
        allowed.add_(WIDEN * extra)
    if atol <= 0:  # an override of (rtol, 0): no division by 0 where the oracle is 0
        allowed.clamp_min_(1e-300)
    err = (a - e).abs()  # not abs_: complex tensors have no in-place abs
    ratio = err / allowed
    worst = float(ratio.max())
    if worst <= 1.0:  # the common case, all finite and close (a NaN anywhere makes worst NaN)
        return None, worst
    ok = (err <= allowed) & e.isfinite() & a.isfinite()
    # Non-finite semantics: NaN matches NaN; inf matches the same inf.
    same = (a == e) | (a.isnan() & e.isnan())
    # Where the float64 oracle itself overflows, NaN and inf are the same verdict ("overflow").
    same |= (~e.isfinite() & a.isnan()) | e.isnan()
    # Where the float64 oracle is NaN the math is undefined there (a zero norm's Hessian, 0/0):
    # any custom value is as good as the reference's.
    if calib is not None:
        agree = (a == c) | (a.isnan() & c.isnan())
        # Where the reference math itself breaks down at this dtype (overflow to inf/NaN while the
        # float64 oracle is finite), a finite value is as good as the reference's: not a finding.
        broke = ~c.isfinite() & e.isfinite()
        if not nonfinite_ok:
            # ... but a NaN or inf where the exact result is finite is one, even where the
            # reference at this dtype makes it too (``x * x`` underflowing to 0, then 0/0): only
            # the overflow regime and results near the dtype's largest value excuse it (below).
            wrong = e.isfinite() & ~a.isfinite()
            agree &= ~wrong
            broke &= ~wrong
        same |= agree | broke
        # ... and the other way round: where the oracle overflowed and the calibration did not
        # (the other reference's evaluation order), the custom value may match the calibration.
        other = e.isinf() & c.isfinite()
        if bool(other.any()):
            same |= other & ((a - c).abs() <= c.abs().mul_(rtol).add_(atol))
    real = dtype.to_real() if dtype.is_complex else dtype
    fmax = torch.finfo(real).max if real.is_floating_point else math.inf
    # Within a factor NEAR_OVERFLOW of the dtype's largest value, any evaluation order may
    # overflow, in an intermediate too (then inf of either sign, or NaN): not a finding. A
    # complex value counts by its modulus (either part may overflow first).
    near = e.isfinite() & (e.abs() > fmax / near_overflow)
    same |= near & ~a.isfinite()
    # ... and the other way round: the oracle overflowed where the custom value is huge.
    huge = e.isinf() & (a.abs() > fmax / near_overflow)
    if not a.is_complex():
        huge &= a.sign() == e.sign()
    same |= huge
    if isinstance(overflow_regime, torch.Tensor) or overflow_regime:
        reach = _reach_mask(overflow_regime, a.shape)
        if not judge_reach or not bool(e[reach].isfinite().all()):
            # The reference overflowed where the large inputs reach: its finite values there are
            # suspect too (an overflowed variance makes a finite, wrong, zero gradient elsewhere
            # in its row), so nothing there is judged.
            ok |= reach
        same |= ~a.isfinite() & reach
    ok |= same
    ratio = ratio.nan_to_num(math.inf, math.inf, math.inf)
    ratio = torch.where(ok, ratio.clamp_max(1.0), ratio)
    worst = float(ratio.max()) if ratio.numel() else 0.0
    if bool(ok.all()):
        return None, worst
    bad = ~ok
    flat_err = torch.where(bad, err.nan_to_num(math.inf, math.inf, math.inf), 0.0).reshape(-1)
    i = int(flat_err.argmax())
    idx = _index(i, a.shape)
    av, ev = a.reshape(-1)[i].item(), e.reshape(-1)[i].item()
    rel = abs(av - ev) / abs(ev) if ev not in (0, 0.0) and math.isfinite(abs(ev)) else math.inf
    n_bad = int(bad.sum())
    msg = (
        f"{n_bad} of {a.numel()} elements differ; worst at index {idx}: got {av:.6g}, "
        f"expected {ev:.6g} (abs err {abs(av - ev):.3g}, rel err {rel:.3g}; "
        f"rtol={rtol:g}, atol={atol:g} for {str(dtype).replace('torch.', '')})"
    )
    return Mismatch(path, msg, float(flat_err[i]), rel, idx, av, ev), worst
