"""Oracles: independent evaluations of a target's math, all with one signature.

``oracle(fn, args, wrt, cotangents) -> Evaluation`` where ``args`` are the call's arguments,
``wrt`` the indices of the arguments to differentiate, and ``cotangents`` one tensor (or None, for
a non-differentiable output) per output. `get_oracle` chooses by name: ``torch`` (autograd of the
torch reference, `torch_ref`), ``jax`` (`jax_ref`); `autoref` builds a torch reference from a
Function's own forward, and `numerical` is central finite differences for targets with none.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzzgrad.oracles.evaluation import Evaluation


def get_oracle(name: str) -> Callable[..., Evaluation]:
    """An oracle by name: ``"torch"`` or ``"jax"``."""
    if name == "torch":
        from fuzzgrad.oracles.torch_ref import torch_oracle

        return torch_oracle
    if name == "jax":
        from fuzzgrad.oracles.jax_ref import shared_jax

        return shared_jax()
    raise ValueError(f"unknown oracle {name!r}; choose 'torch' or 'jax'")


__all__ = ["Evaluation", "get_oracle"]
