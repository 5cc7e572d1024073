"""entmax's sparse softmax alternatives (https://github.com/deep-spin/entmax), fuzzed.

The references follow the papers, not the library's code: sparsemax is the sort-based threshold
of Martins & Astudillo (2016, Alg. 1), 1.5-entmax the exact sort-based one of Peters, Niculae &
Martins (2019, Alg. 2), and alpha-entmax, normmax and budget sparsemax the thresholded forms their
docstrings state, with the threshold found by bisection and differentiated implicitly. Each is
written once, for torch and JAX alike (see `_arrays`). The Fenchel-Young losses are
``H(p*) + <p* - onehot(y), x>`` (Blondel, Martins & Niculae, 2019) on those mappings.

    pip install -e ".[examples]" && fuzzgrad fuzz examples/entmax_ops.py
"""

from __future__ import annotations

import torch
from _arrays import bisect, sort_descending, stop, take, xp
from entmax.activations import Entmax15Function, SparsemaxFunction
from entmax.losses import (
    Entmax15LossFunction,
    EntmaxBisectLossFunction,
    SparsemaxLossFunction,
)
from entmax.root_finding import (
    BudgetBisectFunction,
    EntmaxBisectFunction,
    NormmaxBisectFunction,
    SparsemaxBisectFunction,
)
from hypothesis import strategies as st

import fuzzgrad as fg

# --- the documented math --------------------------------------------------------------------


def _rows(x, dim):
    """``x`` with ``dim`` moved last and shifted by its (constant) maximum, which changes none
    of these mappings; and the 1-based ranks ``1..d`` of a row."""
    n = xp(x)
    z = n.moveaxis(x, dim, -1)
    z = z - stop(n.amax(z, axis=-1, keepdims=True))
    return z, n.arange(1, z.shape[-1] + 1, dtype=z.dtype)


def _support(z, size):
    """The mask of a row's ``size`` largest values (ties at the boundary are in or out
    together in both algorithms, so a value comparison finds them)."""
    n = xp(z)
    kth = take(sort_descending(stop(z)), n.clip(size, min=1) - 1)
    return z >= kth


def sparsemax(x, dim=-1):
    """Martins & Astudillo (2016), Alg. 1: the support is the k(z) largest values, with
    k(z) = max{k : 1 + k z_(k) > sum of the k largest}; tau = (sum over it - 1) / k(z)."""
    n = xp(x)
    z, k = _rows(x, dim)
    srt = sort_descending(stop(z))
    mask = _support(z, n.sum(1 + k * srt > n.cumsum(srt, axis=-1), axis=-1, keepdims=True))
    tau = (n.sum(z * mask, axis=-1, keepdims=True) - 1) / n.sum(mask, axis=-1, keepdims=True)
    return n.moveaxis(n.clip(z - tau, min=0), -1, dim)


def entmax15(x, dim=-1):
    """Peters et al. (2019), Alg. 2 on z = x / 2: tau_k = mean_k - sqrt((1 - ss_k) / k) over
    the k largest, the support is where tau_k <= z_(k), and p = max(z - tau, 0) ** 2."""
    n = xp(x)
    z, k = _rows(x / 2, dim)
    srt = sort_descending(stop(z))
    mean, mean_sq = n.cumsum(srt, axis=-1) / k, n.cumsum(srt * srt, axis=-1) / k
    tau_k = mean - n.sqrt(n.clip((1 - k * (mean_sq - mean**2)) / k, min=0))
    mask = _support(z, n.sum(tau_k <= srt, axis=-1, keepdims=True))
    size = n.sum(mask, axis=-1, keepdims=True)
    mean = n.sum(z * mask, axis=-1, keepdims=True) / size
    spread = n.sum(mask * (z - mean) ** 2, axis=-1, keepdims=True)
    return n.moveaxis(n.clip(z - (mean - n.sqrt((1 - spread) / size)), min=0) ** 2, -1, dim)


def _threshold(z, g, dg, total, lo, hi, steps=80):
    """The tau in [lo, hi] where sum(g(z - tau)) = total (g increasing), by bisection on
    constants, then two Newton steps in which ``z`` (and what ``g`` closes over) keep their
    derivatives: from the root, one step has the implicit function theorem's first derivative,
    two have its second too. Where no element is active (slope 0) tau is not unique and p
    does not move: no step."""
    n = xp(z)
    f = lambda tau: n.sum(g(z - tau), axis=-1, keepdims=True) - total
    lo, hi = bisect(lambda tau: stop(f(tau)), stop(lo), stop(hi), steps)
    tau = (lo + hi) / 2
    for _ in range(2):
        slope = n.sum(dg(z - tau), axis=-1, keepdims=True)
        flat = stop(slope) == 0
        tau = tau + n.where(flat, 0.0, f(tau) / n.where(flat, 1.0, slope))
    return tau


def _powers(power):
    """g(u) = max(u, 0) ** power and its derivative (0 where u <= 0, whatever the power)."""

    def g(u):
        return xp(u).clip(u, min=0) ** power

    def dg(u):
        n = xp(u)
        return n.where(u > 0, power * n.where(u > 0, u, 1) ** (power - 1), 0)

    return g, dg


def entmax_bisect(x, alpha=1.5, dim=-1):
    """alpha-entmax (its docstring): argmax <x, p> + H_alpha(p) over the simplex, which is
    p = max((alpha - 1) x - tau, 0) ** (1 / (alpha - 1)) with tau making sum(p) = 1."""
    n = xp(x)
    z = _rows(x, dim)[0] * (alpha - 1)
    g, dg = _powers(1 / (alpha - 1))
    tau = _threshold(z, g, dg, 1, -n.ones_like(z[..., :1]), n.zeros_like(z[..., :1]))
    return n.moveaxis(g(z - tau), -1, dim)


def normmax_bisect(x, alpha=2.0, dim=-1):
    """alpha-normmax (its docstring): argmax <x, p> - ||p||_alpha over the simplex; by the KKT
    conditions p = u / sum(u), u = max(x - tau, 0) ** (1 / (alpha - 1)), ||u||_alpha = 1."""
    n = xp(x)
    z = _rows(x, dim)[0]
    g, dg = _powers(alpha / (alpha - 1))
    tau = _threshold(z, g, dg, 1, -n.ones_like(z[..., :1]), n.zeros_like(z[..., :1]))
    u = n.clip(z - tau, min=0) ** (1 / (alpha - 1))
    return n.moveaxis(u / n.sum(u, axis=-1, keepdims=True), -1, dim)


def budget_bisect(x, budget=2, dim=-1):
    """budget sparsemax (its docstring): argmax <x, p> - ||p||^2 / 2 subject to 0 <= p <= 1
    and sum(p) = budget, which is p = clip(x - tau, 0, 1) with tau making the sum right."""
    n = xp(x)
    z = n.moveaxis(x, dim, -1)
    inside = lambda u: (u > 0) & (u < 1)  # the kinks' one-sided slopes are 0, as in a clip
    g = lambda u: n.where(inside(u), u, n.where(u >= 1, n.ones_like(u), n.zeros_like(u)))
    dg = lambda u: n.where(inside(u), n.ones_like(u), n.zeros_like(u))
    lo, hi = n.amin(stop(z), axis=-1, keepdims=True) - 1, n.amax(stop(z), axis=-1, keepdims=True)
    return n.moveaxis(g(z - _threshold(z, g, dg, budget, lo, hi)), -1, dim)


def fenchel_young(p, x, target, alpha):
    """The Fenchel-Young loss of a mapping to p: H_alpha(p) + <p - onehot(y), x> per row, with
    H_alpha the Tsallis entropy (1 - sum p^alpha) / (alpha (alpha - 1))."""
    n = xp(x)
    onehot = n.where(n.arange(x.shape[-1]) == target[..., None], n.ones_like(x), n.zeros_like(x))
    entropy = (1 - n.sum(p**alpha, axis=-1)) / (alpha * (alpha - 1))
    return entropy + n.sum((p - onehot) * x, axis=-1)


# --- the registrations ----------------------------------------------------------------------
# Each xfail names its entry in FINDINGS.md, where it is verified and reproduced on its own.

ROLL_LAST = "F1: with k < n and a negative dim other than -1, the k-doubling retry crashes"
SECOND_ORDER_NAN = "F2: double backward is NaN wherever an output is 0 (sqrt / pow at 0)"
BUDGET_SQUEEZE = "F3: wrong gradient when the size just before dim is 1 (an extra squeeze)"
LOSS_SECOND_ORDER = "F4: double backward is silently 0: p* is saved without a graph"
NO_SHIFT = "F5: NaN in bfloat16 for large inputs: the bisection does not subtract the max"
NORMMAX_SECOND_ORDER = "F6: double backward is NaN wherever an output is 0 (a masked pow at 0)"
BUDGET_SECOND_ORDER = "F7: double backward is NaN where no output is inside (0, 1) (a masked 0/0)"
# A finding that makes the forward raise or return NaN (F1, F3, F5) shows in every property that
# runs it, so those targets keep a whole-target xfail; one that shows in one property names it, and
# a failure of any other property fails the target. EntmaxBisectFunction keeps a whole-target
# xfail too: in float32 its forward is off by up to ~10x what the math's conditioning explains
# (2.8e-5 on a row of 31; benchmarks.md, session 9), a precision shortfall not listed as a defect.
# Half precision is left out of the other bisection targets, where F5 holds too, and of the
# losses, where a fuzzgrad report (bfloat16 Entmax15Loss 12% off with edge values) is not
# verified yet: a finding is listed only once verified.
full_precision = [torch.float64, torch.float32]

rows = fg.tensor("*batch n>=1")
top_k = st.sampled_from([None, 1, 2, 3])  # the partial sort's first k (None: a full sort)
alphas = st.sampled_from([1.25, 1.5, 2.0, 3.0])

fg.register(
    SparsemaxFunction,
    reference=lambda x, dim, k: sparsemax(x, dim),
    jax_reference=lambda x, dim, k: sparsemax(x, dim),
    inputs=[rows, fg.dim(0), top_k],
    xfail=ROLL_LAST,
)
fg.register(
    Entmax15Function,
    reference=lambda x, dim, k: entmax15(x, dim),
    jax_reference=lambda x, dim, k: entmax15(x, dim),
    inputs=[rows, fg.dim(0), top_k],
    xfail=f"{ROLL_LAST}; {SECOND_ORDER_NAN}",
)
fg.register(
    EntmaxBisectFunction,
    reference=entmax_bisect,
    jax_reference=entmax_bisect,
    inputs=[rows, alphas, fg.dim(0)],
    dtypes=full_precision,
    xfail=SECOND_ORDER_NAN,
)
fg.register(
    SparsemaxBisectFunction,
    reference=sparsemax,
    jax_reference=sparsemax,
    inputs=[rows, fg.dim(0)],
    dtypes=full_precision,
)
fg.register(
    NormmaxBisectFunction,
    reference=normmax_bisect,
    jax_reference=normmax_bisect,
    inputs=[rows, alphas, fg.dim(0)],
    xfail=f"{NO_SHIFT}; {NORMMAX_SECOND_ORDER}",
)
fg.register(
    BudgetBisectFunction,
    reference=budget_bisect,
    jax_reference=budget_bisect,
    inputs=[rows, fg.size("1<=k<=n")],
    xfail=f"{BUDGET_SQUEEZE}; {BUDGET_SECOND_ORDER}",
)

logits, labels = fg.tensor("b c>=1"), fg.tensor("b", structure="index", high="c")
for function, reference in [
    (SparsemaxLossFunction, lambda x, y, k: fenchel_young(sparsemax(x), x, y, 2.0)),
    (Entmax15LossFunction, lambda x, y, k: fenchel_young(entmax15(x), x, y, 1.5)),
]:
    fg.register(
        function,
        reference=reference,
        jax_reference=reference,
        inputs=[logits, labels, top_k],
        dtypes=full_precision,
        xfail={"second_order": LOSS_SECOND_ORDER},
    )
fg.register(
    EntmaxBisectLossFunction,
    reference=lambda x, y, a: fenchel_young(entmax_bisect(x, a), x, y, a),
    jax_reference=lambda x, y, a: fenchel_young(entmax_bisect(x, a), x, y, a),
    inputs=[logits, labels, alphas],
    dtypes=full_precision,
    xfail={"second_order": LOSS_SECOND_ORDER},
)
