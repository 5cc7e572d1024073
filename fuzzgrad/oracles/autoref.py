"""References for targets that bring none: the Function's own forward, or finite differences.

A forward made of torch ops is its own reference math: run it under autograd with a recording
``ctx`` and let autograd differentiate it. That is impossible when forward leaves autograd (numpy,
``.detach()``, in-place writes into its input, ``mark_dirty``); `auto_reference` then says which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from fuzzgrad.errors import InvalidRegistration


class _RecordingCtx:
    """Stands in for ``ctx`` when forward is run as reference math (saves nothing for real)."""

    def __init__(self, n_inputs: int, name: str):
        self.needs_input_grad = (True,) * n_inputs
        self.materialize_grads = True
        self._name = name

    def save_for_backward(self, *tensors: Any) -> None:
        self.saved_tensors = tensors

    def save_for_forward(self, *tensors: Any) -> None:
        pass

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def mark_dirty(self, *tensors: Any) -> None:
        raise AutoReferenceImpossible(
            f"fuzzgrad: target {self._name!r} has no reference and its forward calls "
            "ctx.mark_dirty (it works in place), so it cannot serve as its own reference. "
            "Register it with reference=<out-of-place torch math>."
        )


class AutoReferenceImpossible(InvalidRegistration):
    """The Function's forward cannot be differentiated by autograd as reference math."""


def auto_reference(target) -> Callable[..., Any]:
    """A torch reference built from ``target.function.forward`` (see the module docstring)."""
    cls = target.function
    if cls is None and target.own_math is not None:
        return _own_math_reference(target)
    if cls is None:
        raise AutoReferenceImpossible(
            f"fuzzgrad: target {target.name!r} is a plain callable without a reference; pass "
            "reference= or jax_reference=."
        )
    from fuzzgrad.registry.target import uses_setup_context

    setup_style = uses_setup_context(cls)

    def reference(*args: Any) -> Any:
        # Non-leaf copies, so a forward that works in place reaches mark_dirty (and explains).
        args = tuple(
            a.clone() if isinstance(a, torch.Tensor) and a.requires_grad else a for a in args
        )
        if setup_style:
            out = cls.forward(*args)
        else:
            out = cls.forward(_RecordingCtx(len(args), target.name), *args)
        return _differentiable(target, args, out, "its forward", "or jax_reference=")

    return reference


def _differentiable(target, args, out, what: str, alternative: str) -> Any:
    """``out``, unless inputs require grad and no output does: then the reference math left
    autograd (numpy, ``.detach()``, ``.item()``, ``torch.no_grad``) and cannot serve."""
    outs = out if isinstance(out, tuple) else (out,)
    if any(a.requires_grad for a in args if isinstance(a, torch.Tensor)) and not any(
        isinstance(o, torch.Tensor) and o.requires_grad for o in outs
    ):
        raise AutoReferenceImpossible(
            f"fuzzgrad: target {target.name!r} has no reference, and {what} is not "
            "differentiable by autograd (it leaves torch: numpy, .detach(), .item() or "
            f"torch.no_grad). Register it with reference=<torch math> {alternative}."
        )
    return out


def _own_math_reference(target) -> Callable[..., Any]:
    """A ``torch.library.custom_op``'s Python function, run directly under autograd (below the
    operator, whose backward is the hand-written ``register_autograd`` formula under test)."""
    impl = target.own_math

    def reference(*args: Any) -> Any:
        args = tuple(
            a.clone() if isinstance(a, torch.Tensor) and a.requires_grad else a for a in args
        )
        what = "its custom operator's Python function"
        return _differentiable(target, args, impl(*args), what, "or jax_reference=")

    return reference
