"""The overflow regime: inputs so large that where and how a formula's intermediates overflow
is not a finding, and the results those inputs reach.

An input is past the overflow size when ``|x| >= sqrt(max / NEAR_OVERFLOW)`` of its dtype:
squaring it comes near overflowing, and a product of three such overflows. A case with such an
input is in the overflow regime (`overflow_regime`); `fuzzgrad.verdict.compare.compare` then excuses
inf/NaN results, but only where those inputs reach (`find_reach`): a NaN elsewhere in the same
case is judged like any other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import Evaluation, floating
from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.verdict.compare import NEAR_OVERFLOW

#: What the inputs past the overflow size become, with their sign, to find their reach.
TAMED = 1.5


@dataclass(frozen=True)
class Magnitude:
    """The largest ``|x|`` of one real floating input: ``top`` with inf counted (NaN ignored),
    ``finite`` without inf either."""

    dtype: torch.dtype
    top: float
    finite: float


def magnitudes(args) -> tuple[Magnitude, ...]:
    """The `Magnitude` of each non-empty real floating input: one ``amax`` each, once per case
    (`overflow_regime`, `near_max` and `product_margin` all read it)."""
    out = []
    for a in args:
        if floating(a) and a.numel():
            size = a.detach().abs()  # a complex value's modulus
            top = float(size.amax())
            if math.isnan(top) or math.isinf(top):  # rare: look closer only then
                top = float(size.nan_to_num(0.0, math.inf).amax())
                finite = float(size.nan_to_num(0.0, 0.0).amax())
            else:
                finite = top
            out.append(Magnitude(size.dtype, top, finite))
    return tuple(out)


def overflow_regime(sizes: Sequence[Magnitude]) -> bool:
    """Whether some input is so large (``|x| >= sqrt(max / NEAR_OVERFLOW)`` of its dtype) that
    squaring it comes near overflowing, and a product of three such overflows: then where and
    how a formula's intermediates overflow is not a finding."""
    return any(m.top >= sqrt_max(m.dtype) for m in sizes)


def near_max(sizes: Sequence[Magnitude]) -> bool:
    """Whether some input is within `NEAR_OVERFLOW` of its dtype's largest finite value (inf
    counts, as max)."""
    return any(m.top >= torch.finfo(m.dtype).max / NEAR_OVERFLOW for m in sizes)


def tamed(a: Any) -> Any:
    """``a`` with its elements at or past the overflow size set to +-`TAMED` (see `find_reach`)."""
    if not floating(a) or not a.numel():
        return a
    a = a.detach()
    size = a.abs()
    big = size >= sqrt_max(size.dtype)
    if a.is_complex():  # the same direction, modulus TAMED
        return torch.where(big, a / size.clamp_min(1e-300) * TAMED, a)
    return torch.where(big, a.sign() * TAMED, a)


def _changed(results: list[tuple[Any, ...]]) -> tuple[torch.Tensor | None, ...]:
    """Per result position, where the reference's or the Function's value differs between the
    case's inputs and the tamed ones (``results``: reference, tamed reference, Function, tamed
    Function). None where unknown: shapes differ or nothing is a tensor (a missing gradient
    is a zero)."""
    out: list[torch.Tensor | None] = []
    for values in zip(*results):
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        if not tensors or any(t.shape != tensors[0].shape for t in tensors):
            out.append(None)
            continue
        ref, ref_tamed, own, own_tamed = (
            v.detach().cpu() if isinstance(v, torch.Tensor) else torch.zeros(tensors[0].shape)
            for v in values
        )
        out.append(~same_each(ref, ref_tamed) | ~same_each(own, own_tamed))
    return tuple(out)


def same_each(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: equal, or both NaN."""
    return (a == b) | (a.isnan() & b.isnan())


@functools.cache
def sqrt_max(dtype: torch.dtype) -> float:
    """The overflow size of ``dtype``."""
    return (torch.finfo(dtype).max / NEAR_OVERFLOW) ** 0.5


def find_reach(
    reference: Callable[..., Evaluation],
    fn: Callable[..., Any],
    args: Sequence[Any],
    wrt: Sequence[int],
    cotangents: Sequence[Any] | None,
) -> Evaluation | None:
    """Per output and gradient element, whether an input past the overflow size reaches it,
    so that an intermediate may honestly overflow there: the elements whose value changes when
    those inputs are `tamed`, in ``reference`` (``reference(args, wrt, cotangents)``, float64)
    or in the Function ``fn`` itself (its own evaluation order may carry a large value further
    than the reference's). A value that is NaN either way is not the large inputs' doing. None
    (every element, as if unknown) where a run raises; a mask is None where shapes differ."""
    calm = [tamed(a) for a in args]
    try:
        runs = [reference(xs, wrt, cotangents) for xs in (args, calm)]
        runs += [torch_vjp(fn, xs, wrt, cotangents) for xs in (args, calm)]
    except Exception:  # noqa: BLE001 - unknown reach: every element is excused
        return None
    return Evaluation(_changed([r.outputs for r in runs]), _changed([r.grads for r in runs]))


def product_margin(sizes: Sequence[Magnitude], order: int) -> float:
    """The `NEAR_OVERFLOW` factor for results whose terms may be the result times up to
    ``order`` inputs (a derivative of a product is the product over one input, a second
    derivative over two): an intermediate of such a formula may overflow while the result is
    ``max|x| ** order`` times below the largest value (finite inputs only: an infinite one puts
    the case in the overflow regime)."""
    largest = max([1.0, *(m.finite for m in sizes)])
    try:
        return NEAR_OVERFLOW * largest**order
    except OverflowError:  # inputs near max: the overflow regime excuses more than this anyway
        return math.inf


#: Operations whose inf from finite operands is a pole (a division by zero, the log of zero), not
#: an overflow: an underflow to 0 upstream makes one, and that is no excuse.
_POLES = frozenset(
    {
        "div",
        "truediv",
        "rtruediv",
        "rdiv",
        "floordiv",
        "rfloordiv",
        "floor_divide",
        "true_divide",
        "reciprocal",
        "rsqrt",
        "log",
        "log2",
        "log10",
        "log1p",
        "pow",
        "rpow",
        "float_power",
        "atanh",
        "xlogy",
        "digamma",
        "lgamma",
        "polygamma",
        "tan",
        "remainder",
        "fmod",
        "mod",
        "xlog1py",
        "logit",
        "erfinv",
    }
)


def _floats(tree) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_leaves

    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def overflow_watch():
    """A context (a `torch.utils._python_dispatch.TorchDispatchMode`) whose ``overflowed`` says
    whether, while it was active, an operator other than a pole (`_POLES`) turned finite
    floating operands into an inf: the dtype's range overflowed (``exp(13.5)`` in float16). The
    reference run at the case's dtype is watched, its backward included (a dispatch mode sees
    the operators autograd's engine runs, as torch's own FLOP counter does: a float16 softmax's
    backward overflows in ``grad_output @ v.T`` while every forward value is small): where it
    overflows, a NaN or inf of the Function there is the overflow regime's, not an underflow's
    (``x*x`` to 0, then 0/0)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    _import_dynamo_untimed()

    class OverflowWatch(TorchDispatchMode):
        overflowed = False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if not self.overflowed:
                name = func.overloadpacket.__name__.strip("_")
                if name not in _POLES:
                    self.overflowed = _overflowed(out, args, kwargs)
            return out

    return OverflowWatch()


def _import_dynamo_untimed() -> None:
    """Import ``torch._dynamo`` (a second, once per process), which torch imports the first time
    a tensor is detached under a dispatch mode, with the example's timer (``SIGALRM``, the
    runner's example timeout) paused: a one-time import is not the example's running time, and
    counted in, it timed out the first low-precision case of a loaded machine."""
    import signal
    import sys
    import threading

    if "torch._dynamo" in sys.modules:
        return
    timed = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    paused = signal.setitimer(signal.ITIMER_REAL, 0) if timed else (0.0, 0.0)
    try:
        import torch._dynamo  # noqa: F401
    finally:
        if paused[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *paused)


def _overflowed(out, args, kwargs) -> bool:
    """Whether ``out`` holds an inf while every floating operand is finite (a layout with no
    ``isinf``, sparse say, counts as no overflow). Autograd's efficient zero tensors (the
    gradient of an unused input in a double backward) are all zeros, and reading one crashes
    the process in torch 2.x: they are skipped."""
    try:
        outs = [o for o in _floats(out) if not o._is_zerotensor()]
        return any(bool(o.isinf().any()) for o in outs) and all(
            bool(t.isfinite().all()) for t in _floats((args, kwargs)) if not t._is_zerotensor()
        )
    except (RuntimeError, NotImplementedError):
        return False
