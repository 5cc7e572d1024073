"""Input specs: `fg.tensor(...)` and the jaxtyping-style shape strings it takes.

Grammar (tokens separated by spaces):
    ``n``        named dim; equal names have equal sizes across all inputs of one call
    ``3``        fixed size
    ``_``        a dim of any size, independent of every other
    ``*batch``   variadic: zero or more dims, equal across inputs that use the same name
    ``#n``       broadcastable: ``n`` or 1
    ``*#batch``  broadcastable variadic: a suffix of ``*batch``, each dim ``n`` or 1
    ``...``      same as ``*_``
    ``""``       a 0-d tensor
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fuzzgrad.errors import InvalidRegistration, ShapeSpecError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"^(?P<star>\*)?(?P<hash>#)?(?:(?P<name>{_NAME})|(?P<size>\d+))$")

#: Name used for the shared shape of every input without an explicit shape string.
DEFAULT_SHAPE_NAME = "__default__"


@dataclass(frozen=True)
class Dim:
    """One token of a shape string."""

    name: str | None  # None for a fixed size; "_" for an anonymous dim
    size: int | None = None  # fixed size
    variadic: bool = False
    broadcast: bool = False

    def __str__(self) -> str:
        body = str(self.size) if self.name is None else self.name
        return ("*" if self.variadic else "") + ("#" if self.broadcast else "") + body


def parse_shape(text: str, *, where: str = "") -> tuple[Dim, ...]:
    """Parse a shape string into dims; raise `ShapeSpecError` naming ``where`` on bad syntax."""
    if not isinstance(text, str):
        raise ShapeSpecError(
            f"{where}shape must be a string like 'b n' or '*batch 3', got {text!r} "
            f"({type(text).__name__})."
        )
    dims: list[Dim] = []
    for token in text.split():
        if token == "...":
            token = "*_"
        m = _TOKEN.match(token)
        if m is None:
            raise ShapeSpecError(
                f"{where}cannot parse token {token!r} in shape {text!r}. Use names ('n'), sizes "
                "('3'), '_' for any size, '*batch' for several dims, '#n' for broadcastable "
                "dims, or '' for a 0-d tensor."
            )
        size = m["size"]
        if m["star"] and size is not None:
            raise ShapeSpecError(
                f"{where}token {token!r} in shape {text!r}: a variadic dim needs a name "
                "('*batch'), not a size."
            )
        dims.append(
            Dim(
                name=m["name"],
                size=int(size) if size is not None else None,
                variadic=bool(m["star"]),
                broadcast=bool(m["hash"]),
            )
        )
    if sum(d.variadic for d in dims) > 1:
        raise ShapeSpecError(
            f"{where}shape {text!r} has more than one variadic ('*') dim; at most one is allowed."
        )
    return tuple(dims)


@dataclass(frozen=True)
class TensorSpec:
    """What one positional tensor argument looks like; made by `fuzzgrad.tensor`."""

    shape: str | None = None
    low: float | None = None
    high: float | None = None
    dtypes: tuple[Any, ...] | None = None
    requires_grad: bool = True
    dims: tuple[Dim, ...] = field(default=(), compare=False, repr=False)

    def __repr__(self) -> str:
        parts = [repr(self.shape)] if self.shape is not None else []
        for key in ("low", "high", "dtypes"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value!r}")
        if not self.requires_grad:
            parts.append("requires_grad=False")
        return f"tensor({', '.join(parts)})"


def tensor(
    shape: str | None = None,
    *,
    low: float | None = None,
    high: float | None = None,
    dtypes: Any = None,
    requires_grad: bool = True,
) -> TensorSpec:
    """Describe one tensor argument of a registered Function.

    ``shape`` is a jaxtyping-style string (see this module's docstring); ``None`` means "the
    shared default shape": every input without a shape string gets the same shape, of any rank.
    ``low``/``high`` bound the drawn values (edge values respect them too). ``dtypes`` restricts
    this input's dtypes (default: the target's); integer dtypes give index-like inputs that never
    require grad. ``requires_grad=False`` marks an input the Function does not differentiate.
    """
    if shape is not None and not isinstance(shape, str):
        parse_shape(shape, where="fuzzgrad.tensor: ")  # raises, naming the bad value
    if low is not None and high is not None and not low < high:
        raise InvalidRegistration(f"fuzzgrad.tensor: low={low!r} must be less than high={high!r}.")
    if dtypes is not None:
        dtypes = tuple(dtypes) if isinstance(dtypes, (list, tuple)) else (dtypes,)
        _check_dtypes(dtypes, "fuzzgrad.tensor: ")
    return TensorSpec(shape, low, high, dtypes, bool(requires_grad))


def _check_dtypes(dtypes: tuple[Any, ...], where: str) -> None:
    import torch

    for d in dtypes:
        if not isinstance(d, torch.dtype):
            raise InvalidRegistration(
                f"{where}dtypes must be torch dtypes such as torch.float32, got {d!r}."
            )
    if not dtypes:
        raise InvalidRegistration(f"{where}dtypes is empty; leave it out to use the defaults.")
