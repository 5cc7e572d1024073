"""Input specs: `fuzzgrad.tensor`, `fuzzgrad.dim`, `fuzzgrad.size`, and how a registration's
``inputs=[...]`` list is read and checked, one spec per positional argument.

An entry of ``inputs=`` is a tensor spec (``fuzzgrad.tensor(...)``, or a bare shape string), a
dimension index of another argument (``fuzzgrad.dim(i)``), the size of a name
(``fuzzgrad.size("n")``), any Hypothesis strategy (a non-tensor argument, or a tensor from a
strategy of one's own or of hypothesis-torch), or a plain value, passed as is.

The shape grammar lives in `fuzzgrad.registry.grammar` (names, fixed sizes, ``_``, ``*batch``,
``#n``, bounds such as ``n>=3`` and ``k<=n``). Importing this module is cheap; the spec objects
themselves are Hypothesis strategies (`fuzzgrad.strategies`), built on first use.
"""

from __future__ import annotations

from typing import Any

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.registry.grammar import (
    DEFAULT_SHAPE_NAME,
    Bound,
    Dim,
    conflict,
    parse_shape,
    parse_size,
)

__all__ = [
    "DEFAULT_SHAPE_NAME",
    "Bound",
    "Dim",
    "check_inputs",
    "dim",
    "normalise_inputs",
    "normalise_sizes",
    "parse_shape",
    "size",
    "tensor",
]


def __getattr__(name: str) -> Any:
    if name == "TensorSpec":  # a Hypothesis strategy: imported only when asked for
        from fuzzgrad.strategies._spec import TensorSpec

        return TensorSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def tensor(
    shape: str | None = None,
    *,
    low: float | None = None,
    high: float | str | None = None,
    dtypes: Any = None,
    requires_grad: bool = True,
    structure: str | None = None,
    max_cond: float | None = None,
    max_side: int | None = None,
):
    """Describe one tensor argument of a registered Function; also a Hypothesis strategy of
    such tensors (draw it in your own ``@st.composite``: the tensors of one test case share one
    dtype and one size per name).

    ``shape`` is a jaxtyping-style string (see `fuzzgrad.registry.grammar`); ``None`` means "the
    shared default shape": every input without a shape string gets the same shape, of any rank.
    ``low``/``high`` bound the drawn values (edge values respect them too). ``dtypes``
    restricts this input's dtypes (default: the target's, one per call); integer dtypes give
    index-like inputs that never require grad. ``requires_grad=False`` marks an input the
    Function does not differentiate. ``max_side`` lets this input's dims go past 4096 (or
    keeps them below a smaller value); its element cap grows to match.

    ``structure``: ``"symmetric"``, ``"positive_definite"`` (eigenvalues in [1, ``max_cond``],
    default 100), ``"orthogonal"``, ``"well_conditioned"`` (a general square matrix, neither
    symmetric nor normal, with condition number at most ``max_cond``; these four on a shape
    ending in two equal dims),
    ``"unit_rows"``, ``"simplex"`` (rows of probabilities), ``"sorted"`` (along the last dim),
    ``"positive"``, or ``"index"``: integers in ``[low, high)`` (``low`` default 0) where
    ``high`` may name a size, ``fuzzgrad.tensor("b k", structure="index", high="n")``, for
    gather, scatter and embedding lookups.
    """
    from fuzzgrad.strategies._spec import TensorSpec
    from fuzzgrad.strategies._structures import ELEMENTS, STRUCTURES, cond_ok

    where = "fuzzgrad.tensor: "
    if shape is not None and not isinstance(shape, str):
        parse_shape(shape, where=where)  # raises, naming the bad value
    if dtypes is not None:
        dtypes = tuple(dtypes) if isinstance(dtypes, (list, tuple)) else (dtypes,)
        _check_dtypes(dtypes, where)
    if structure is not None and structure not in STRUCTURES:
        raise InvalidRegistration(
            f"{where}structure={structure!r} is not one of {', '.join(map(repr, STRUCTURES))}."
        )
    capped = ("positive_definite", "well_conditioned")
    if max_cond is not None and (structure not in capped or not cond_ok(max_cond)):
        raise InvalidRegistration(
            f"{where}max_cond={max_cond!r} caps the condition number of "
            "structure='positive_definite' or 'well_conditioned': a finite number >= 1 there, "
            "and nothing elsewhere."
        )
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise InvalidRegistration(f"{where}max_side must be a positive int, got {max_side!r}.")
    if structure == "index":
        dtypes = dtypes or (_int64(),)
        if any(d.is_floating_point or d.is_complex or str(d) == "torch.bool" for d in dtypes):
            raise InvalidRegistration(
                f"{where}structure='index' draws integers: dtypes must be integer dtypes such "
                f"as torch.int64, got {dtypes!r}."
            )
        if high is None or isinstance(high, bool) or not isinstance(high, (int, str)):
            raise InvalidRegistration(
                f"{where}structure='index' needs high=: an int, or the name of a size "
                f"(high='n': indices into a dim of size n), got {high!r}."
            )
        low = 0 if low is None else low
        if isinstance(high, int) and not low < high:
            raise InvalidRegistration(f"{where}low={low!r} must be less than high={high!r}.")
        return TensorSpec(shape, low, high, dtypes, False, structure, max_cond, max_side)
    if isinstance(high, str):
        raise InvalidRegistration(
            f"{where}high={high!r} names a size, which only structure='index' takes; give a number."
        )
    if low is not None and high is not None and not low < high:
        raise InvalidRegistration(f"{where}low={low!r} must be less than high={high!r}.")
    if structure is not None:
        bounded = ("sorted", "symmetric") + ELEMENTS
        if (low is not None or high is not None) and structure not in bounded:
            raise InvalidRegistration(
                f"{where}structure={structure!r} fixes the values' range itself; leave out "
                "low= and high=."
            )
        if structure == "positive" and low is not None and low < 0:
            raise InvalidRegistration(f"{where}structure='positive' needs low >= 0, got {low!r}.")
        if dtypes and any(not d.is_floating_point for d in dtypes):
            raise InvalidRegistration(
                f"{where}structure={structure!r} needs floating dtypes, got {dtypes!r}."
            )
    return TensorSpec(shape, low, high, dtypes, bool(requires_grad), structure, max_cond, max_side)


def dim(of: int, *, keepdim: bool = False):
    """A valid dimension index of argument ``of`` (a tensor): for rank r, 0..r-1 and -r..-1
    (a 0-d tensor takes 0 and -1, as torch's reductions do). ``keepdim=True`` draws an index
    into the shape with one more dim, -(r+1)..r, as ``unsqueeze`` and ``stack`` take."""
    from fuzzgrad.strategies._spec import DimSpec

    if isinstance(of, bool) or not isinstance(of, int) or of < 0:
        raise InvalidRegistration(
            f"fuzzgrad.dim: the argument index must be a non-negative int, got {of!r}."
        )
    return DimSpec(of, bool(keepdim))


def size(name: str):
    """The size of a named dim in this call, as an int argument: ``fuzzgrad.size("n")``, or a
    new name bounded by one, ``fuzzgrad.size("k<=n")`` (k in 0..n, drawn like any size)."""
    from fuzzgrad.strategies._spec import SizeSpec

    parsed, bounds = parse_size(name, where="fuzzgrad.size: ")
    return SizeSpec(parsed, bounds, name)


def _int64():
    import torch

    return torch.int64


def _check_dtypes(dtypes: tuple[Any, ...], where: str) -> None:
    import torch

    for d in dtypes:
        if not isinstance(d, torch.dtype):
            raise InvalidRegistration(
                f"{where}dtypes must be torch dtypes such as torch.float32, got {d!r}."
            )
    if not dtypes:
        raise InvalidRegistration(f"{where}dtypes is empty; leave it out to use the defaults.")


def normalise_inputs(inputs: list | tuple, where: str) -> tuple:
    """One spec per entry of an ``inputs=[...]`` list (a shape string is a tensor spec, a
    strategy draws the argument, anything else is passed as is)."""
    from hypothesis.errors import InvalidArgument
    from hypothesis.strategies import SearchStrategy

    from fuzzgrad.strategies._spec import Constant, DimSpec, SizeSpec, StrategyArg, TensorSpec

    out: list[TensorSpec | DimSpec | SizeSpec | StrategyArg | Constant] = []
    for i, spec in enumerate(inputs):
        if isinstance(spec, str):
            spec = tensor(spec)  # a bare shape string is a convenience for tensor(shape)
        if isinstance(spec, (TensorSpec, DimSpec, SizeSpec)):
            out.append(spec)
        elif isinstance(spec, SearchStrategy):
            try:
                spec.validate()
            except InvalidArgument as exc:
                raise InvalidRegistration(
                    f"{where}inputs[{i}] is not a valid strategy: {exc}"
                ) from None
            out.append(StrategyArg(spec))
        else:
            out.append(Constant(spec))
    return tuple(out)


def normalise_sizes(sizes: Any, where: str) -> dict[str, tuple[int | None, int | None]]:
    """A registration's ``sizes={"n": (3, 300)}`` option: name -> (low, high), None for open."""
    if sizes is None:
        return {}
    if not isinstance(sizes, dict):
        raise InvalidRegistration(
            f"{where}sizes must be a dict such as {{'n': (3, 300)}}, got {sizes!r}."
        )
    out = {}
    for name, pair in sizes.items():
        ok = isinstance(pair, (tuple, list)) and len(pair) == 2
        ok = ok and all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in pair)
        if not ok or not isinstance(name, str):
            raise InvalidRegistration(
                f"{where}sizes[{name!r}] must be a pair (low, high) of ints or None, got {pair!r}."
            )
        low, high = pair
        if low is not None and high is not None and low > high:
            raise InvalidRegistration(f"{where}sizes[{name!r}]: low {low} is above high {high}.")
        out[name] = (low, high)
    return out


def check_inputs(specs: tuple, *, sizes: dict, dtypes: tuple | None, where: str) -> None:
    """Check what only the whole list can tell: shapes parse, names are known and bounds are
    consistent, ``fuzzgrad.dim`` points at a tensor, structures fit their shapes, and something
    is differentiable. Raises `InvalidRegistration` naming the argument and the fix."""
    if not any(s.kind in ("tensor", "strategy") for s in specs):
        first = specs[0] if specs else None
        raise InvalidRegistration(
            f"{where}inputs has nothing to differentiate: inputs[0] must be fuzzgrad.tensor(...) "
            f"or a strategy drawing tensors, got {first!r} (plain values are passed as is)."
        )
    from fuzzgrad.strategies._structures import check_structure

    known: dict[str, int] = {}
    bounds: list[tuple[int, Bound]] = []
    for i, spec in enumerate(specs):
        if spec.kind != "tensor":
            continue
        dims = parse_shape(spec.shape, where=f"{where}inputs[{i}]: ") if spec.shape else ()
        for d in dims:
            if d.name not in (None, "_") and not d.variadic:
                known.setdefault(d.name, i)
            for name in d.expr_names:  # "p*q": p and q are drawn for it
                known.setdefault(name, i)
            bounds += [(i, b) for b in d.bounds]
        if spec.size_name:  # some index must be valid (as the cases draw it)
            bounds.append((i, Bound(spec.size_name, False, 1)))
        check_structure(spec, dims, dtypes, f"{where}inputs[{i}]: ")
    for i, spec in enumerate(specs):
        if spec.kind == "size":
            tied = [b for b in spec.bounds if isinstance(b.value, str)]
            if spec.name not in known and not tied:
                raise InvalidRegistration(
                    f"{where}inputs[{i}] is fuzzgrad.size({spec.text!r}), but no tensor has a "
                    f"dim named {spec.name!r} (known: {_names(known)}). Name a dim of a tensor, "
                    "tie a new name to one ('k<=n'), or use a strategy such as "
                    "st.integers(1, 8) for a free int."
                )
            known.setdefault(spec.name, i)
            bounds += [(i, b) for b in spec.bounds]
    for i, spec in enumerate(specs):
        if spec.kind == "tensor" and spec.size_name and spec.size_name not in known:
            raise InvalidRegistration(
                f"{where}inputs[{i}]: high={spec.size_name!r} names no size of the call "
                f"(known: {_names(known)}). Use the name of the dim the indices index into."
            )
        if spec.kind == "dim":
            _check_dim(specs, i, spec, where)
    # a strategy entry's fuzzgrad.tensor may use any name: sizes= bounds it there
    inside = any(s.kind == "strategy" for s in specs)
    for name in sizes:
        if name not in known and not inside:
            raise InvalidRegistration(
                f"{where}sizes names {name!r}, which no input uses (known: {_names(known)}). "
                "Use a name from the shape strings."
            )
    for i, b in bounds:
        if isinstance(b.value, str) and b.value not in known:
            raise InvalidRegistration(
                f"{where}inputs[{i}]: the bound {b} names an unknown size {b.value!r} (known: "
                f"{_names(known)}). Bound it by a name some input uses, or by a number."
            )
    _check_bounds([b for _, b in bounds], sizes, where)


def _names(known: dict) -> str:
    return ", ".join(sorted(known)) or "none"


def _check_dim(specs: tuple, i: int, spec, where: str) -> None:
    n = len(specs)
    target = specs[spec.of] if spec.of < n else None
    kind = getattr(target, "kind", None)
    tensor_like = kind in ("tensor", "strategy") or (
        kind == "constant" and hasattr(getattr(target, "value", None), "dim")
    )
    if spec.of >= n or spec.of == i or not tensor_like:
        what = (
            f"out of range: the Function takes {n} arguments (0..{n - 1})"
            if spec.of >= n
            else "itself"
            if spec.of == i
            else f"inputs[{spec.of}], which is {target!r}, not a tensor"
        )
        raise InvalidRegistration(
            f"{where}inputs[{i}] is {spec!r}, which points at {what}. Give fuzzgrad.dim the "
            "index of a tensor argument."
        )


def _check_bounds(bounds: list[Bound], sizes: dict, where: str) -> None:
    """Constant bounds leave each name some size, names do not bound each other in a cycle,
    and all bounds together leave every name a size (``1<=k<n`` with ``n<=1`` leaves none)."""
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    edges: dict[str, set[str]] = {}
    for name, (lo, hi) in sizes.items():
        bounds = bounds + ([Bound(name, False, lo)] if lo is not None else [])
        bounds = bounds + ([Bound(name, True, hi)] if hi is not None else [])
    for b in bounds:
        if isinstance(b.value, str):
            edges.setdefault(b.name, set()).add(b.value)
        elif b.upper:
            high[b.name] = min(high.get(b.name, b.value), b.value)
        else:
            low[b.name] = max(low.get(b.name, b.value), b.value)
    for name in set(low) & set(high):
        if low[name] > high[name]:
            raise InvalidRegistration(
                f"{where}the bounds on {name!r} leave it no size ({low[name]} <= {name} <= "
                f"{high[name]}). Loosen one of them."
            )
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(edges.get(name, ())):
            if state.get(other) == 1:
                cycle = " -> ".join(path + [name, other])
                raise InvalidRegistration(
                    f"{where}size bounds form a cycle ({cycle}); bound each name by ones "
                    "drawn before it, or by numbers."
                )
            if other not in state:
                visit(other, path + [name])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [])
    reason = conflict(bounds)
    if reason is not None:
        raise InvalidRegistration(f"{where}{reason}")
