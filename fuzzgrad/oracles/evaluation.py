"""What every oracle returns: an `Evaluation` (outputs and one gradient per argument), and the
small tensor helpers the oracles, verdicts and properties share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Evaluation:
    """Outputs (always a tuple) and one gradient per argument (None where not asked or unused);
    for a torch evaluation with inputs that require grad, whether each output is
    differentiable (empty where unknown)."""

    outputs: tuple[Any, ...]
    grads: tuple[torch.Tensor | None, ...]
    differentiable: tuple[bool, ...] = ()


def as_tuple(out: Any) -> tuple[Any, ...]:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def place(t: torch.Tensor) -> tuple | None:
    """Where a tensor's elements live, to tell whether two tensors are one: its storage's
    address, offset and shape (a sparse tensor: the places of its parts); None where it has no
    storage to compare (nested, meta, a subclass without one). Never raises: it serves hints
    and bookkeeping, which must not cost a finding."""
    try:
        if t.is_nested or t.is_meta:
            return None
        if t.layout == torch.strided:
            return t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape)
        if t.layout == torch.sparse_coo:
            return "coo", place(t._indices()), place(t._values()), tuple(t.shape)
        return str(t.layout), place(t.values()), tuple(t.shape)  # compressed sparse layouts
    except Exception:  # noqa: BLE001 - exotic tensors: no place rather than a crash
        return None


def floating(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex)


#: The half-precision dtypes (what ``precision="fused"`` speaks of).
HALF = (torch.float16, torch.bfloat16)


def as_float32(x: Any) -> Any:
    """A half-precision tensor as float32 the way a Function's own upcast makes it
    (``Tensor.float()`` keeps the strides of a dense layout, so a float32 path sums in the same
    order as the half path did after upcasting); anything else is returned as is."""
    if not (isinstance(x, torch.Tensor) and x.dtype in HALF):
        return x
    return x.detach().float()


def kept_outputs(fn, args, wrt) -> list[torch.dtype | None]:
    """For each tensor autograd saves for backward, in order, when ``fn`` runs on copies of
    ``args`` with ``wrt`` requiring grad: the half dtype of a saved half-precision output (a
    fused Function that keeps its output for its backward, as softmax kernels do), else None.
    See `saved_as`."""
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    leaves = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
    for i in wrt:
        leaves[i].requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = [o for o in as_tuple(fn(*leaves)) if isinstance(o, torch.Tensor)]

    places = {place(o) for o in outputs} - {None}
    return [t.dtype if t.dtype in HALF and place(t) in places else None for t in saved]


@contextlib.contextmanager
def saved_as(kept: list[torch.dtype | None]) -> Iterator[None]:
    """Autograd saves each float32 tensor at a position where `kept_outputs` found a saved half
    output rounded to that dtype: a float32 run of a fused Function then keeps its output for
    the backward as its half-precision run does (rounded once, as the output is), and the
    backward reads the same values. Every other saved tensor (and any past ``kept``) is kept as
    is: an intermediate kept in half precision is not rounded once."""
    order = iter(kept)

    def pack(t: torch.Tensor) -> torch.Tensor:
        dtype = next(order, None)
        if dtype is not None and t.dtype == torch.float32:
            return t.to(dtype).to(torch.float32)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


def upcast(x: Any, dtype: torch.dtype | None) -> Any:
    """A fresh contiguous copy at ``dtype`` (floating tensors only): oracles never alias inputs."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach().resolve_conj().resolve_neg()
    if dtype is not None and x.dtype.is_floating_point:
        x = x.to(dtype)
    return x.clone(memory_format=torch.contiguous_format)


def widen(x: torch.Tensor) -> torch.Tensor:
    """A floating tensor in float64 (complex128 for a complex one), detached."""
    return x.detach().to(torch.complex128 if x.is_complex() else torch.float64)


def layout_copy(x: Any) -> Any:
    """A copy of a tensor with its sizes, strides and storage offset (a fresh storage; an
    expanded, overlapping tensor becomes a contiguous copy, as nothing may write into it)."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach()
    if any(st == 0 and n > 1 for st, n in zip(x.stride(), x.shape)):
        return x.clone()
    storage = x.storage_offset() + sum((n - 1) * st for n, st in zip(x.shape, x.stride())) + 1
    base = torch.empty(storage if x.numel() else 0, dtype=x.dtype, device=x.device)
    out = base.as_strided(x.shape, x.stride(), x.storage_offset() if x.numel() else 0)
    out.copy_(x)
    return out
