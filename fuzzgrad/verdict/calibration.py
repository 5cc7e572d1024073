"""Calibration at the case's dtype: the reference math run at the dtype the Function runs at,
whose own error there a low-precision result may make too (`fuzzgrad.verdict.rules.CALIBRATION`).

Computed lazily, on first use: only a comparison that fails without it needs it. `Calibration`
is the first-order one (outputs and gradients, `fuzzgrad.verdict.judge.Judge.pair`); `AtDtype`
holds any other results (a jvp, a Hessian-vector product, a Jacobian, vmapped outputs) that a
property computes from the reference at the dtype (`Judge.at_dtype`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import Evaluation


def low_precision(dtype: torch.dtype | None) -> bool:
    """Whether results at ``dtype`` are calibrated (anything narrower than float64)."""
    return dtype not in (None, torch.float64, torch.complex128)


class AtDtype:
    """Results of the reference math at the case's own dtype, computed on first use by
    ``compute`` (`get`; None where that raises): only a comparison that fails without them
    needs them."""

    def __init__(self, compute: Callable[[], Any]):
        self._compute = compute
        self._done = False
        self.value: Any = None

    def get(self) -> Any:
        if not self._done:
            self._done = True
            try:
                self.value = self._compute()
            except Exception:  # noqa: BLE001 - outside the reference's domain at this dtype
                self.value = None
        return self.value


class Calibration:
    """The reference evaluated at the case's own dtype (`Judge.oracle` with no float64
    upcast), computed on first use: only a comparison that fails without it needs it.

    Its output dtypes, which the Function's outputs must have, depend only on the dtypes of the
    arguments; they are kept per dtype signature, and computed eagerly for a new one."""

    def __init__(self, judge: Any, case, wrt, cts):  # a fuzzgrad.verdict.judge.Judge
        self._args = (judge, case, wrt, cts)
        self._key = tuple(
            a.dtype if isinstance(a, torch.Tensor) else type(a).__name__ for a in case.args
        )
        self.value: Evaluation | None = None
        self.out_dtypes = judge._out_dtypes.get(self._key)
        if self.out_dtypes is None:
            self.get()

    def get(self) -> Evaluation:
        if self.value is None:
            judge, case, wrt, cts = self._args
            self.value = judge.oracle(case, wrt, cts, None)
            self.out_dtypes = tuple(
                o.dtype if isinstance(o, torch.Tensor) else None for o in self.value.outputs
            )
            judge._out_dtypes[self._key] = self.out_dtypes
        return self.value
