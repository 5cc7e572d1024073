"""Triton for the built-in Triton targets: where it runs, and the host-side helpers they share.

Importing this module decides, once per process, how Triton kernels run:

- on a machine with CUDA, compiled, on CUDA tensors (``DEVICES == ("cuda",)``);
- on a machine without, through Triton's interpreter on CPU tensors (``DEVICES == ("cpu",)``).
  The interpreter is switched on by ``TRITON_INTERPRET=1``, which Triton reads when it is
  imported, so this module sets it *for the whole process* (and the worker processes it spawns)
  when CUDA is missing, Triton is not imported yet and the variable is unset. A user's own
  ``@triton.jit`` kernels imported afterwards are then interpreted too.

``USABLE`` is false where Triton is not installed, or was imported earlier without the
interpreter on a machine without CUDA (its kernels then cannot run at all); ``WHY_NOT`` says
which, and the target modules then register nothing. ``triton`` and ``tl`` are None where it is
not installed, so modules may import them unconditionally.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from typing import Any

import torch

#: How to get Triton, for skip messages and errors.
INSTALL_HINT = 'pip install -e ".[triton]"  (or pip install "fuzzgrad[triton]")'


def _import_triton() -> tuple[Any, str | None]:
    if importlib.util.find_spec("triton") is None:
        return None, f"Triton is not installed: {INSTALL_HINT}"
    cuda = torch.cuda.is_available()
    if not cuda and "triton" not in sys.modules and "TRITON_INTERPRET" not in os.environ:
        os.environ["TRITON_INTERPRET"] = "1"
    import triton

    interpreting = os.environ.get("TRITON_INTERPRET", "0") == "1"
    if not (cuda or interpreting):
        return triton, (
            "no CUDA here, and Triton was imported before fuzzgrad could switch its interpreter "
            "on: set TRITON_INTERPRET=1 in the environment"
        )
    return triton, None


triton, WHY_NOT = _import_triton()
tl: Any = triton.language if triton is not None else None
USABLE = WHY_NOT is None
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
#: Where the kernels run: the device types a Triton target's cases are drawn on.
DEVICES = ("cpu",) if INTERPRETED else ("cuda",)
#: The dtypes the kernels are fuzzed in. Not bfloat16 under the interpreter: Triton 3.9's
#: interpreter converts bfloat16 subnormals (below 1.2e-38) to and from float32 wrongly, and
#: truncates float32 to bfloat16 where a GPU rounds to nearest (fuzzgrad found the first at once).
DTYPES = (torch.float64, torch.float32, torch.float16) + (() if INTERPRETED else (torch.bfloat16,))


class Unusable:
    """Stands in for the kernels where Triton cannot run: using one says why."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"fuzzgrad: the Triton kernels cannot run here: {WHY_NOT}")


def acc_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The kernels' accumulation type: float64, whatever the inputs' dtype. A Function
    registered ``precision="fused"`` must compute on half-precision inputs exactly as it does on
    their float32 upcast; and in float32 the backward of a norm over a row of one or two elements
    cancels to noise above its exact value (fuzzgrad found both on float32 accumulation)."""
    return torch.float64


def acc_type(*tensors: torch.Tensor) -> Any:
    """`acc_dtype` as a Triton type, for a kernel's ``ACC`` argument."""
    return tl.float64 if acc_dtype(*tensors) == torch.float64 else tl.float32


def rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as a 2-d (rows, last dim) view where strides allow it (a copy where not): the
    kernels take both strides, so a transposed, sliced or expanded input stays as it is."""
    if t.dim() == 0:
        return t.reshape(1, 1)
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])  # not -1: ambiguous when empty


def launch(kernel: Any, programs: int, *args: Any, **meta: Any) -> None:
    """Run ``kernel`` on ``programs`` programs (none: nothing to do). Under the interpreter the
    kernel's arithmetic is numpy's, whose overflow warnings are silenced: a GPU's IEEE arithmetic
    overflows to inf silently, and the results say what happened."""
    if programs <= 0:
        return
    if INTERPRETED:
        import numpy as np

        with np.errstate(all="ignore"):
            kernel[(programs,)](*args, **meta)
    else:  # on the device of its tensors: a launch goes to the current device
        device = next(a.device for a in args if isinstance(a, torch.Tensor))
        with torch.cuda.device(device):
            kernel[(programs,)](*args, num_warps=1, **meta)
