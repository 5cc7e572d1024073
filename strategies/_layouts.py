"""Memory layouts: lay a contiguous tensor out as a strided view of a NaN-filled storage.

Every non-contiguous layout is a view (``as_strided``) of a larger storage whose other elements
are garbage (NaN for floats, -7 for integers), so a Function that reads outside its view, or
assumes a dense or contiguous buffer, gets visibly wrong numbers instead of plausible ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._shapes import LONG_SIDE

#: Layout kinds, simplest first.
LAYOUTS = ("contiguous", "transposed", "sliced", "offset", "expanded", "channels_last")
#: Kinds whose `Layout.param` is used (the others draw no parameter).
PARAM_KINDS = ("transposed", "sliced", "offset", "expanded")
#: Garbage elements after every non-contiguous view (reads past the end show NaN).
TAIL = 1


@dataclass(frozen=True)
class Layout:
    """How a tensor sits in memory: a kind (see `LAYOUTS`) and one shape-independent parameter.

    ``param`` (0 is simplest) picks, among the dims of size > 1, innermost first:
    ``transposed``: which memory order (0: those dims reversed, as ``.mT`` does for 2-D);
    ``sliced``: the dim (``param // 2``) and the step (2 or 3); ``offset``: the storage offset
    (1 to 7); ``expanded``: a bitmask of the dims given stride 0 (0: the innermost).
    A kind that a shape cannot hold falls back (see `effective_kind`).

    ``conj``: a complex tensor is a lazy conjugate view (``is_conj()``): its storage holds the
    conjugated values and the conjugate bit says so, where a kernel that reads raw memory
    (a ``data_ptr``, a storage reinterpreted) sees the wrong sign of every imaginary part.
    It is ignored for real tensors. (Negative-bit views of complex tensors have no public
    constructor in torch, so they are not drawn.)
    """

    kind: str = "contiguous"
    param: int = 0
    conj: bool = False


def effective_kind(shape: tuple[int, ...] | torch.Size, kind: str) -> str:
    """The kind that ``shape`` can actually hold, falling back toward ``offset``.

    Zero-size tensors are always contiguous; a single element can only sit at an offset;
    ``channels_last`` needs 4-D with C > 1 and H*W > 1, ``transposed`` two dims of size > 1,
    ``sliced`` one, ``expanded`` one of at most `LONG_SIDE`.
    """
    if kind not in LAYOUTS:
        raise ValueError(f"unknown layout kind {kind!r}; expected one of {LAYOUTS}")
    if kind == "contiguous" or math.prod(shape) == 0:
        return "contiguous"
    big = sum(s > 1 for s in shape)
    if kind == "channels_last" and not (
        len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1
    ):
        kind = "transposed"
    if kind == "transposed" and big < 2:
        kind = "sliced"
    if kind == "expanded" and big and not any(1 < s <= LONG_SIDE for s in shape):
        kind = "sliced"
    if kind in ("sliced", "expanded") and big < 1:
        kind = "offset"
    return kind


def arrange(t: torch.Tensor, layout: Layout, protect: int = 0) -> torch.Tensor:
    """``t``'s values laid out in memory as ``layout`` says.

    ``expanded`` is the one kind that changes values: it repeats the first slice along the
    stride-0 dims (all that such a tensor can hold). It never gives stride 0 to the last
    ``protect`` dims (those a structure spans: a symmetric matrix, a row of probabilities) nor
    to a dim past `LONG_SIDE` (drawn to reach tile and block bugs, which one value repeated along
    it, every tile alike, would hide), and falls back to ``sliced`` where no other dim has room.
    """
    if layout.conj and t.is_complex():
        plain = Layout(layout.kind, layout.param)
        return arrange(t.conj_physical(), plain, protect).conj()
    kind = effective_kind(t.shape, layout.kind)
    if kind == "contiguous":
        return t
    shape = tuple(t.shape)
    big = [d for d in reversed(range(t.dim())) if shape[d] > 1]  # innermost first
    repeatable = [d for d in big if d < t.dim() - protect and shape[d] <= LONG_SIDE]
    if kind == "expanded" and not repeatable:
        kind = "sliced"
    p = layout.param
    if kind == "offset":
        offset = 1 + p % 7
        return _view(t, shape, _strides(shape, range(t.dim())), offset, offset + t.numel())
    if kind in ("transposed", "channels_last"):
        order = (0, 2, 3, 1) if kind == "channels_last" else _order(shape, big, p)
        return _view(t, shape, _strides(shape, order), 0, t.numel())
    if kind == "sliced":
        dim, step = big[(p // 2) % len(big)], 2 + p % 2
        padded = shape[:dim] + (shape[dim] * step + 1,) + shape[dim + 1 :]
        strides = list(_strides(padded, range(t.dim())))
        offset = strides[dim]
        strides[dim] *= step
        return _view(t, shape, tuple(strides), offset, math.prod(padded))
    # expanded: the first slice along the chosen dims, stored once, read with stride 0.
    chosen = [d for i, d in enumerate(repeatable) if p >> i & 1] or repeatable[:1]
    first = t[tuple(slice(0, 1) if d in chosen else slice(None) for d in range(t.dim()))]
    small = _view(
        first, tuple(first.shape), _strides(first.shape, range(t.dim())), 0, first.numel()
    )
    return small.expand(shape)


def _strides(shape, order) -> tuple[int, ...]:
    """Dense strides for ``shape`` with dims laid out in ``order`` (outermost first)."""
    strides = [0] * len(shape)
    step = 1
    for d in reversed(tuple(order)):
        strides[d] = step
        step *= max(shape[d], 1)
    return tuple(strides)


def _order(shape, big: list[int], p: int) -> list[int]:
    """A memory order whose dims of size > 1 are not in their contiguous order."""
    outer_first = sorted(big)
    m = len(outer_first)
    count = math.factorial(m)
    index = count - 1 - p % (count - 1)  # 0 is the identity, count - 1 the reversal
    pool, perm = list(outer_first), []
    for i in range(m - 1, -1, -1):
        k, index = divmod(index, math.factorial(i))
        perm.append(pool.pop(k))
    swap = dict(zip(outer_first, perm))
    return [swap.get(d, d) for d in range(len(shape))]


def _garbage(dtype: torch.dtype) -> float:
    return math.nan if dtype.is_floating_point or dtype.is_complex else -7


def _view(t: torch.Tensor, shape, strides, offset: int, used: int) -> torch.Tensor:
    """A view of ``shape``/``strides``/``offset`` into fresh garbage storage, holding ``t``."""
    base = torch.empty((used + TAIL,), dtype=t.dtype, device=t.device)
    if used == offset + t.numel():  # a dense view: garbage only before and after it
        base[:offset].fill_(_garbage(t.dtype))
        base[used:].fill_(_garbage(t.dtype))
    else:
        base.fill_(_garbage(t.dtype))
    view = base.as_strided(shape, strides, offset)
    view.copy_(t)
    return view


def describe_view(t: torch.Tensor) -> str:
    """``"conj"`` or ``"neg"`` for a lazily conjugated or negated view, else ``""``."""
    return "conj" if t.is_conj() else "neg" if t.is_neg() else ""


def describe_layout(t: torch.Tensor) -> str:
    """Classify a tensor's memory layout from its strides (for reports and coverage tables)."""
    if t.dim() == 0 or t.numel() <= 1:
        return "contiguous" if t.storage_offset() == 0 else "offset"
    if any(st == 0 and s > 1 for st, s in zip(t.stride(), t.shape)):
        return "expanded"
    if (
        t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
        and not t.is_contiguous()
    ):
        return "channels_last"
    if t.is_contiguous():
        return "contiguous" if t.storage_offset() == 0 else "offset"
    if _dense(t):
        return "transposed" if t.storage_offset() == 0 else "offset"
    return "sliced"


def _dense(t: torch.Tensor) -> bool:
    """Whether the elements fill a gap-free block of memory in some order."""
    expected = 1
    for stride, size in sorted((st, s) for st, s in zip(t.stride(), t.shape) if s > 1):
        if stride != expected:
            return False
        expected *= size
    return True
