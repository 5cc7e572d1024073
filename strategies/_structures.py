"""Structured tensors: a drawn fill made symmetric, positive-definite, orthogonal, a general
well-conditioned square matrix, unit-norm along
its rows, a probability vector, sorted, strictly positive, or a tensor of valid indices.

Each structure is a map from the plain fill (`strategies._values.fill`) to the structure, chosen
so that the simplest fill (a constant 0) gives the simplest structured value (the identity, the
uniform distribution, all ones, index 0) and seeded fills give well-conditioned ones; layouts are
applied after it. `violation` says whether a tensor has a structure, for diagnosis, which may
only report inputs the spec can produce.
"""

from __future__ import annotations

import math

import torch

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.registry.grammar import Dim

#: Structures over the last two dims, which must be equal (a square matrix, batched).
SQUARE = ("symmetric", "positive_definite", "orthogonal", "well_conditioned")
#: Structures along the last dim.
ROWS = ("unit_rows", "simplex", "sorted")
#: Structures of each element.
ELEMENTS = ("positive", "index")
STRUCTURES = SQUARE + ROWS + ELEMENTS
#: The default condition-number cap of a positive-definite or well-conditioned input.
DEFAULT_MAX_COND = 100.0


def protected_dims(structure: str | None) -> int:
    """How many trailing dims a structure spans (a stride-0 layout there would break it)."""
    return 2 if structure in SQUARE else 1 if structure in ROWS else 0


def impose(
    structure: str, t: torch.Tensor, *, scale: float = 1.0, max_cond=None, high=None
) -> torch.Tensor:
    """``t`` (a fill) made into ``structure``, at ``t``'s dtype and device (``high``: the
    spec's upper bound, which a positive tensor keeps)."""
    if structure == "index":
        return t  # the fill already drew integers in [low, high)
    if structure == "sorted":
        return t.sort(dim=-1).values
    if structure == "symmetric":
        return t.tril() + t.tril(-1).mT
    if structure == "positive":
        y = t.abs() if high is None else t.abs().clamp(max=high)
        one = 1.0 if high is None else min(1.0, float(high))  # high > low >= 0
        return torch.where(y == 0, torch.full_like(y, one), y)
    x = t.to(torch.float64).nan_to_num(0.0, 1.0, -1.0)
    if structure == "positive_definite":
        cond = max_cond or DEFAULT_MAX_COND
        room = torch.finfo(t.dtype).max / (4 * cond) if t.dtype.is_floating_point else 1.0
        out = _positive_definite(x, cond) * min(scale, room)
    elif structure == "orthogonal":
        out = _orthogonal(x)
    elif structure == "well_conditioned":
        out = _well_conditioned(x, max_cond or DEFAULT_MAX_COND) * min(scale, 1.0)
    elif structure == "unit_rows":
        out = _unit_rows(x)
    else:
        out = _simplex(x)
    return out.to(t.dtype)


def _eye_like(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[-1]
    return torch.eye(n, dtype=x.dtype).expand(x.shape)


def _positive_definite(x: torch.Tensor, max_cond: float) -> torch.Tensor:
    """I + S with S = x x^T scaled to a Frobenius norm of max_cond - 1: eigenvalues in
    [1, max_cond], so the condition number is at most the cap (x = 0 gives the identity)."""
    if x.numel():  # no overflow in the product: only its direction matters
        x = x / x.abs().amax((-2, -1), keepdim=True).clamp_min(1e-300)
    s = x @ x.mT
    norm = torch.linalg.matrix_norm(s, keepdim=True) if s.numel() else s
    s = torch.where(norm > 0, s * ((max_cond - 1) / norm.clamp_min(1e-300)), torch.zeros_like(s))
    return _eye_like(x) + s


def _well_conditioned(x: torch.Tensor, max_cond: float) -> torch.Tensor:
    """I + E, E = x scaled to a Frobenius norm r = (c - 1) / (c + 1) < 1: every singular value
    lies in [1 - r, 1 + r], so the condition number is at most c = max_cond; neither symmetric
    nor normal (x = 0 gives the identity)."""
    if not x.numel():
        return x
    x = x / x.abs().amax((-2, -1), keepdim=True).clamp_min(1e-300)  # no overflow in the norm
    norm = torch.linalg.matrix_norm(x, keepdim=True)
    r = (max_cond - 1) / (max_cond + 1)
    e = torch.where(norm > 0, x * (r / norm.clamp_min(1e-300)), torch.zeros_like(x))
    return _eye_like(x) + e


def _orthogonal(x: torch.Tensor) -> torch.Tensor:
    """Q of the QR decomposition of I + x, signs fixed so that R has a non-negative diagonal
    (x = 0 gives the identity)."""
    if x.numel() == 0:
        return x
    q, r = torch.linalg.qr(_eye_like(x) + x / x.abs().amax().clamp_min(1.0))
    signs = torch.diagonal(r, dim1=-2, dim2=-1).sign()
    return q * torch.where(signs == 0, torch.ones_like(signs), signs).unsqueeze(-2)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm; an all-zero row becomes (1, 0, ..., 0)."""
    if x.shape[-1] == 0:
        return x
    x = x / x.abs().amax(-1, keepdim=True).clamp_min(1e-300)  # no overflow in the norm
    first = torch.zeros_like(x)
    first[..., 0] = 1.0
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-300), first)


def _simplex(x: torch.Tensor) -> torch.Tensor:
    """|x| normalised to sum 1 along the last dim (zeros stay zeros); a zero row is uniform."""
    if x.shape[-1] == 0:
        return x
    w = x.abs()
    w = w / w.amax(-1, keepdim=True).clamp_min(1e-300)
    total = w.sum(-1, keepdim=True)
    uniform = torch.full_like(w, 1.0 / w.shape[-1])
    return torch.where(total > 0, w / total.clamp_min(1e-300), uniform)


def inject_indices(t: torch.Tensor, injections, low: int, high: int) -> torch.Tensor:
    """Edge values of an index tensor: the largest valid index for the big edge classes, the
    smallest for the rest, at the injections' positions (sprinkled ones at every 4th)."""
    if not injections or not t.numel() or high <= low:
        return t
    flat = t.reshape(-1).clone()
    for position, kind, negative in injections:
        big = kind in ("bound", "max", "large", "exp_limit", "inf") and not negative
        value = high - 1 if big else low
        if position >= 0:
            flat[position % flat.numel()] = value
        else:
            flat[::4] = value
    return flat.reshape(t.shape)


def violation(
    structure: str,
    t: torch.Tensor,
    *,
    drawn_dtype: torch.dtype | None = None,
    max_cond=None,
    low=None,
    high=None,
) -> str | None:
    """Why ``t`` does not have ``structure`` (None when it does), allowing the rounding of
    ``drawn_dtype`` (the dtype the value was drawn in; ``t``'s own by default)."""
    if structure == "index":
        if t.dtype.is_floating_point or t.dtype.is_complex:
            return "an index tensor must have an integer dtype"
        below = low is not None and t.numel() and bool(t.min() < low)
        above = high is not None and t.numel() and bool(t.max() >= high)
        return f"indices outside [{low}, {high})" if below or above else None
    if not t.numel():
        return None
    x = t.detach().to(torch.float64)
    if structure == "positive":
        return "a value <= 0" if bool((x <= 0).any()) else None
    if structure == "sorted":
        return "not sorted along the last dim" if bool((x.diff(dim=-1) < 0).any()) else None
    dtype = drawn_dtype or t.dtype
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 2.0**-52
    n = max(x.shape[-1], 1)
    tol = 8 * eps * n
    if structure in SQUARE:
        if x.shape[-1] != x.shape[-2]:
            return "not square"
        if structure == "well_conditioned":
            return _conditioned(x, max_cond or DEFAULT_MAX_COND, tol)
        scale = float(x.abs().amax().clamp_min(1.0))
        if float((x - x.mT).abs().amax()) > tol * scale and structure != "orthogonal":
            return "not symmetric"
        if structure == "orthogonal":
            err = (x.mT @ x - _eye_like(x)).abs().amax()
            return "not orthogonal" if float(err) > tol else None
        if structure == "positive_definite":
            if not bool(x.isfinite().all()):
                return "not finite"
            try:
                values = torch.linalg.eigvalsh((x + x.mT) / 2)
            except RuntimeError:  # torch.linalg.LinAlgError: no eigenvalues to speak of
                return "not positive-definite"
            lo, hi = values[..., 0], values[..., -1]
            cond = max_cond or DEFAULT_MAX_COND
            if bool((lo <= -tol * hi).any()) or bool((hi > cond * lo + tol * cond * hi).any()):
                return "not positive-definite within the condition-number cap"
        return None
    if structure == "simplex":
        if bool((x < 0).any()):
            return "a negative probability"
        err = (x.sum(-1) - 1).abs().amax()
        return "rows do not sum to 1" if float(err) > tol else None
    if structure == "unit_rows":
        err = (torch.linalg.vector_norm(x, dim=-1) - 1).abs().amax()
        return "rows are not of unit norm" if float(err) > tol else None
    raise ValueError(f"unknown structure {structure!r}")


def _conditioned(x: torch.Tensor, max_cond: float, tol: float) -> str | None:
    if not bool(x.isfinite().all()):
        return "not finite"
    values = torch.linalg.svdvals(x)
    lo, hi = values[..., -1], values[..., 0]
    if bool((hi > max_cond * lo + tol * max_cond * hi).any()):
        return "condition number above the cap"
    return None


def cond_ok(max_cond) -> bool:
    return isinstance(max_cond, (int, float)) and math.isfinite(max_cond) and max_cond >= 1


def _square(dims: tuple[Dim, ...]) -> bool:
    if len(dims) < 2:
        return False
    a, b = dims[-2:]
    if a.variadic or b.variadic or a.broadcast or b.broadcast or "_" in (a.name, b.name):
        return False
    return (a.name is not None and a.name == b.name) or (
        a.name is None and a.size == b.size and a.expr == b.expr
    )


def check_structure(spec, dims: tuple[Dim, ...], dtypes, where: str) -> None:
    """A spec's structure fits its shape (a square one ends in two equal dims, a row one in a
    named or fixed dim) and the target's ``dtypes`` (real structures on real dtypes)."""
    structure = spec.structure
    if structure in SQUARE and not _square(dims):
        raise InvalidRegistration(
            f"{where}structure={structure!r} needs a square matrix, a shape ending in two "
            f"equal dims such as '*batch n n' or 'n n', got {spec.shape!r}."
        )
    if structure in ROWS:
        last = dims[-1] if dims else None
        if last is None or last.variadic or last.broadcast:
            raise InvalidRegistration(
                f"{where}structure={structure!r} works along the last dim: give a shape "
                f"ending in a named or fixed dim such as '*batch n', got {spec.shape!r}."
            )
    if structure not in (None, "index", "symmetric") and not spec.dtypes and dtypes:
        if any(d.is_complex for d in dtypes):
            raise InvalidRegistration(
                f"{where}structure={structure!r} is real-valued; the target's dtypes include "
                "complex ones. Give this input dtypes=[...] of real floats."
            )
