"""The case's dtype for references that ask for it.

A reference runs in float64 (or at the case's dtype, for calibration), so a rule of the Function
that depends on its input dtype, such as ``torch.finfo(x.dtype).eps`` as a clamp, cannot be read
off the reference's own inputs. A reference (torch or JAX) that declares a keyword-only parameter
named ``dtype`` is called with ``dtype=`` the case's dtype (the Function's input dtype) while it
still computes on the oracle's float64 copies::

    reference=lambda x, *, dtype: torch.clamp(x, min=torch.finfo(dtype).eps).log()
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch


@functools.cache
def takes_dtype(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` declares a keyword-only parameter ``dtype``."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    p = params.get("dtype")
    return p is not None and p.kind is inspect.Parameter.KEYWORD_ONLY


@functools.cache
def _bound(fn: Callable[..., Any], dtype: torch.dtype) -> Callable[..., Any]:
    # One object per (reference, dtype): the JAX oracle caches compiled programs by identity.
    return functools.partial(fn, dtype=dtype)


def with_case_dtype(fn: Callable[..., Any] | None, dtype: torch.dtype | None):
    """``fn`` called with ``dtype=dtype`` where it asks for it (`takes_dtype`); else ``fn``."""
    if fn is None or dtype is None:
        return fn
    try:
        return _bound(fn, dtype) if takes_dtype(fn) else fn
    except TypeError:  # an unhashable callable: look it up (and bind it) every time
        return functools.partial(fn, dtype=dtype) if takes_dtype.__wrapped__(fn) else fn


def case_dtype(case: Any) -> torch.dtype | None:
    """The Function's input dtype in ``case``: the call's dtype, else (a whole-tuple strategy)
    that of its first floating or complex tensor."""
    if case is None:
        return None
    if getattr(case, "dtype", None) is not None:
        return case.dtype
    for a in case.args:
        if isinstance(a, torch.Tensor) and (a.dtype.is_floating_point or a.dtype.is_complex):
            return a.dtype
    return None
