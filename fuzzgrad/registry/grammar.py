"""The shape grammar of `fuzzgrad.tensor` and `fuzzgrad.size`, with per-name size bounds.

Tokens, separated by spaces:
    ``n``        named dim; equal names have equal sizes across all inputs of one call
    ``3``        fixed size
    ``_``        a dim of any size, independent of every other
    ``*batch``   variadic: zero or more dims, equal across inputs that use the same name
    ``#n``       broadcastable: ``n`` or 1
    ``*#batch``  broadcastable variadic: a suffix of ``*batch``, each dim ``n`` or 1
    ``...``      same as ``*_``
    ``p*q``      a size expression: sums and products of names and numbers (``n+1``,
                 ``2*n+1``, ``p*q``), computed from the sizes the names draw, never drawn itself
    ``""``       a 0-d tensor

A named dim may carry bounds: ``n>=3``, ``n<300``, ``k<=n`` (another name), ``3<=n<=300``.
Bounds hold for the name in the whole call, whichever input states them. A variadic dim takes
number bounds on each of its sizes: ``*batch>=1`` (no empty batch dim), ``*batch<=8``.

This module imports nothing heavy: the strategies (`fuzzgrad.strategies`) build on it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fuzzgrad.errors import ShapeSpecError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"^(?P<star>\*)?(?P<hash>#)?(?:(?P<name>{_NAME})|(?P<size>\d+))$")
_OPERAND = re.compile(rf"^(?:{_NAME}|\d+)$")
_OPS = re.compile(r"(<=|>=|<|>)")
_EXPR = re.compile(rf"^(?P<hash>#)?(?P<body>(?:{_NAME}|\d+)(?:[*+](?:{_NAME}|\d+))+)$")

#: A size expression: a sum of products, each term a tuple of factors (numbers and names).
Expr = tuple[tuple[int | str, ...], ...]

#: Name used for the shared shape of every input without an explicit shape string.
DEFAULT_SHAPE_NAME = "__default__"


@dataclass(frozen=True)
class Bound:
    """``name <= value + offset`` (``upper``) or ``name >= value + offset``; ``value`` is an int
    or the name of another size."""

    name: str
    upper: bool
    value: int | str
    offset: int = 0

    def __str__(self) -> str:
        rhs = str(self.value)
        if self.offset:
            rhs += f"{self.offset:+d}"
        return f"{self.name}{'<=' if self.upper else '>='}{rhs}"

    def limit(self, sizes: dict) -> int | None:
        """The bound's value given the sizes drawn so far (None: its other name is not drawn)."""
        if isinstance(self.value, int):
            return self.value + self.offset
        other = sizes.get(self.value)
        return None if other is None else other + self.offset


@dataclass(frozen=True)
class Dim:
    """One token of a shape string."""

    name: str | None  # None for a fixed size; "_" for an anonymous dim
    size: int | None = None  # fixed size
    variadic: bool = False
    broadcast: bool = False
    bounds: tuple[Bound, ...] = ()
    #: a size expression (``p*q``, ``n+1``): the dim's size is computed, never drawn
    expr: Expr | None = None

    def __str__(self) -> str:
        if self.expr is not None:
            body = "+".join("*".join(map(str, term)) for term in self.expr)
        else:
            body = str(self.size) if self.name is None else self.name
        text = ("*" if self.variadic else "") + ("#" if self.broadcast else "") + body
        lower = [b for b in self.bounds if not b.upper]
        upper = [b for b in self.bounds if b.upper]
        if len(lower) == 1 and len(upper) == 1:  # "2<=n<=8", as written
            low = str(lower[0])[len(lower[0].name) + 2 :]
            return f"{low}<={text}" + str(upper[0])[len(upper[0].name) :]
        return text + "".join(str(b)[len(b.name) :] for b in self.bounds)

    @property
    def expr_names(self) -> tuple[str, ...]:
        """The names a size expression reads, in order (none for other dims)."""
        found = (f for term in self.expr or () for f in term if isinstance(f, str))
        return tuple(dict.fromkeys(found))


def evaluate(expr: Expr, sizes: Mapping[str, Any]) -> int | None:
    """A size expression's value given the ``sizes`` (None while a name in it is unknown)."""
    total = 0
    for term in expr:
        product = 1
        for f in term:
            value = f if isinstance(f, int) else sizes.get(f)
            if not isinstance(value, int):
                return None
            product *= value
        total += product
    return total


def _expression(token: str, text: str, where: str) -> Dim | None:
    """A size-expression token (``p*q``, ``#n+1``) as a `Dim`, or None if it is not one."""
    m = _EXPR.match(token)
    if m is None:
        return None
    expr = tuple(tuple(_operand(f) for f in term.split("*")) for term in m["body"].split("+"))
    if not any(isinstance(f, str) for term in expr for f in term):
        raise ShapeSpecError(
            f"{where}token {token!r} in shape {text!r} has no name: write the size "
            f"({evaluate(expr, {})}) instead."
        )
    if "_" in (f for term in expr for f in term):
        raise ShapeSpecError(
            f"{where}token {token!r} in shape {text!r}: '_' has no size to compute with; "
            "name the dim."
        )
    return Dim(name=None, broadcast=bool(m["hash"]), expr=expr)


def _operand(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _bound(name: str, op: str, value: int | str, *, flipped: bool = False) -> Bound:
    """``name op value`` (or ``value op name`` when ``flipped``) as a `Bound`."""
    if flipped:
        op = {"<=": ">=", "<": ">"}[op]
    upper = op in ("<=", "<")
    offset = {"<=": 0, ">=": 0, "<": -1, ">": 1}[op]
    if isinstance(value, int):
        return Bound(name, upper, value + offset)
    return Bound(name, upper, value, offset)


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
        computed = _expression(token, text, where)
        if computed is not None:
            dims.append(computed)
            continue
        parts = _OPS.split(token)  # "n", "n>=3" or "3<=n<=300"
        body, tail = parts[0], parts[1:3]
        head: tuple[str, ...] = ()
        if len(parts) == 5:
            head, body, tail = (parts[0], parts[1]), parts[2], parts[3:5]
        ok = len(parts) in (1, 3, 5) and all(_OPERAND.match(p) for p in parts[::2][1:])
        ok = ok and (not head or (head[1] in ("<", "<=") and tail[0] in ("<", "<=")))
        ok = ok and bool(_OPERAND.match(head[0])) if head else ok
        m = _TOKEN.match(body) if ok else None
        if m is None:
            raise ShapeSpecError(
                f"{where}cannot parse token {token!r} in shape {text!r}. Use names ('n'), sizes "
                "('3'), '_' for any size, '*batch' for several dims, '#n' for broadcastable "
                "dims, 'n>=3' or 'k<=n' for bounded sizes, 'p*q' or 'n+1' for sizes computed "
                "from others, or '' for a 0-d tensor."
            )
        size, name = m["size"], m["name"]
        if m["star"] and size is not None:
            raise ShapeSpecError(
                f"{where}token {token!r} in shape {text!r}: a variadic dim needs a name "
                "('*batch'), not a size."
            )
        bounds = []
        # a variadic dim's bounds hold for each of its sizes, under its key ("*batch")
        bound_name = ("*" if m["star"] else "") + (name or "")
        if tail:
            bounds.append(_bound(bound_name, tail[0], _operand(tail[1])))
        if head:
            bounds.append(_bound(bound_name, head[1], _operand(head[0]), flipped=True))
        if bounds and (name is None or name == "_"):
            raise ShapeSpecError(
                f"{where}token {token!r} in shape {text!r}: only a named dim takes bounds "
                "('n>=3', '*batch>=1'), not a fixed size or '_'."
            )
        if m["star"] and any(isinstance(b.value, str) for b in bounds):
            raise ShapeSpecError(
                f"{where}token {token!r} in shape {text!r}: a variadic dim's sizes take number "
                "bounds only ('*batch>=1', '*batch<=8')."
            )
        if any(b.value == name for b in bounds):
            raise ShapeSpecError(
                f"{where}token {token!r} in shape {text!r} bounds a size by itself."
            )
        dims.append(
            Dim(
                name=name,
                size=int(size) if size is not None else None,
                variadic=bool(m["star"]),
                broadcast=bool(m["hash"]),
                bounds=tuple(bounds),
            )
        )
    if sum(d.variadic for d in dims) > 1:
        raise ShapeSpecError(
            f"{where}shape {text!r} has more than one variadic ('*') dim; at most one is allowed."
        )
    return tuple(dims)


def parse_size(text: str, *, where: str = "") -> tuple[str, tuple[Bound, ...]]:
    """A `fuzzgrad.size` string: one name, maybe bounded (``"k<=n"``): the name and bounds."""
    dims = parse_shape(text, where=where) if isinstance(text, str) else ()
    if len(dims) != 1 or dims[0].name in (None, "_") or dims[0].variadic or dims[0].broadcast:
        raise ShapeSpecError(
            f"{where}a size is one name, maybe bounded ('n', 'k<=n', 'n>=3'), got {text!r}."
        )
    return dims[0].name, dims[0].bounds


def intervals(
    bounds: Iterable[Bound], known: Mapping[str, Any] | None = None
) -> dict[str, tuple[int, int | None]] | None:
    """The tightest ``(low, high)`` (None: no upper bound) each name in ``bounds`` can take,
    given the bounds, the sizes ``known`` so far (ints; others are ignored) and that sizes are
    never negative; None when no sizes meet them all.

    Bounds are difference constraints (``k <= n - 1``), so a size drawn anywhere inside its
    interval still leaves every other name a size meeting all bounds: draw names one at a time,
    each inside its interval given those before it, and no bound is ever broken (``1<=k<n`` makes
    ``n`` at least 2 before ``k`` is drawn)."""
    bounds = tuple(bounds)
    named = {b.name for b in bounds} | {b.value for b in bounds if isinstance(b.value, str)}
    fixed = tuple(
        sorted(
            (k, v)
            for k, v in (known or {}).items()
            if k in named and isinstance(v, int) and not isinstance(v, bool)
        )
    )
    return _intervals(bounds, fixed)


@functools.lru_cache(maxsize=4096)
def _intervals(
    bounds: tuple[Bound, ...], fixed: tuple[tuple[str, int], ...]
) -> dict[str, tuple[int, int | None]] | None:
    # an edge (u, v, w) says v <= u + w; "" is the constant 0. Shortest paths from "" give each
    # name's upper bound, shortest paths to "" its lower one (Bellman-Ford: a handful of names)
    edges: list[tuple[str, str, int]] = []
    for b in bounds:
        other = b.value if isinstance(b.value, str) else ""
        shift = b.offset if isinstance(b.value, str) else b.value + b.offset
        edges.append((other, b.name, shift) if b.upper else (b.name, other, -shift))
    names_ = sorted({n for u, v, _ in edges for n in (u, v)} - {""})
    edges += [(n, "", 0) for n in names_]  # n >= 0
    for name, value in fixed:
        edges += [("", name, value), (name, "", -value)]
    up = _shortest(edges, len(names_))
    down = _shortest([(v, u, w) for u, v, w in edges], len(names_))
    if up is None or down is None:
        return None
    return {n: (-down.get(n, 0), up.get(n)) for n in names_}


def conflict(bounds: Iterable[Bound]) -> str | None:
    """Why no sizes meet ``bounds`` (a smallest set of them that none meet), or None."""
    culprits = list(dict.fromkeys(bounds))
    if intervals(culprits) is not None:
        return None
    for b in list(culprits):
        rest = [c for c in culprits if c != b]
        if intervals(rest) is None:
            culprits = rest
    return (
        f"the size bounds {', '.join(map(str, culprits))} leave no sizes that meet them all "
        "(sizes are never negative). Loosen one of them."
    )


def _shortest(edges: list[tuple[str, str, int]], count: int) -> dict[str, int] | None:
    """Shortest distances from "" along ``edges``; None on a negative cycle (no solution)."""
    dist: dict[str, int] = {"": 0}
    for step in range(count + 1):
        changed = False
        for u, v, w in edges:
            if u in dist and (v not in dist or dist[u] + w < dist[v]):
                dist[v] = dist[u] + w
                changed = True
        if not changed:
            return dist
        if step == count:
            return None
    return dist


def names(dims: tuple[Dim, ...]) -> list[str]:
    """The named (non-variadic, non-anonymous) dims and the names size expressions read, in
    order."""
    out: list[str] = []
    for d in dims:
        if d.expr is not None:
            out += [n for n in d.expr_names if n not in out]
        elif d.name not in (None, "_") and not d.variadic and d.name not in out:
            out.append(d.name)
    return out
