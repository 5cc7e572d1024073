"""Higher-order and transform properties: second order, forward-mode AD, vmap, CUDA vs CPU.

Each runs only where it applies: ``forward_ad`` when the Function defines ``jvp``, ``vmap`` when
it defines ``vmap`` or ``generate_vmap_rule``, ``cuda`` on CUDA cases. For a ``once_differentiable``
Function, ``second_order`` checks that a double backward raises instead of returning numbers.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fuzzgrad._compare import NEAR_OVERFLOW, TOLERANCES, compare
from fuzzgrad._oracles import HALF, as_float32, as_tuple, floating, upcast
from fuzzgrad._overflow import product_margin
from fuzzgrad._sensitivity import (
    NUDGE_SEED,
    abs_terms,
    add_up,
    eps_of,
    float64_rounding,
    larger,
    nudge_spread,
)


def _defines(cls: Any, name: str) -> bool:
    for klass in getattr(cls, "__mro__", ()):
        if klass.__module__.startswith("torch."):
            return False
        if name in klass.__dict__:
            return True
    return False


def applicable(target, prop: str) -> bool:
    """Whether ``prop`` means anything for ``target`` (others are skipped, not passed)."""
    cls = target.function
    if prop == "grad_meta":
        return cls is not None
    if prop == "forward_ad":
        return cls is not None and _defines(cls, "jvp")
    if prop == "vmap":
        return cls is not None and (
            _defines(cls, "vmap") or bool(getattr(cls, "generate_vmap_rule", False))
        )
    if prop == "cuda":
        return torch.cuda.is_available()
    return True


def _directions(case, like: list[torch.Tensor], salt: int) -> list[torch.Tensor]:
    """Seeded random directions shaped like ``like`` (tangents, second-order cotangents)."""
    seed = case.direction_seed + salt
    gen = torch.Generator().manual_seed(seed % (2**63))
    return [
        torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.dtype).to(t.device)
        for t in like
    ]


#: Second order costs about three first-order checks; it runs on one case in this many, chosen
#: by the case itself (its cotangent seed) so that a shrunk case still selects it.
SECOND_ORDER_EVERY = 3


#: Second order is checked on float64 and float32 cases: a double backward in float16 or
#: bfloat16 is dominated by rounding (sigmoid'(z) from a rounded sigmoid, say), and any two valid
#: formulas differ there by more than a tolerance that would still catch bugs.
HIGHER_ORDER_DTYPES = (None, torch.float64, torch.float32, torch.complex128, torch.complex64)


def _selected(case, every: int) -> bool:
    return case.direction_seed % every == 0


def check_higher(checker, case, full: list[int], cts: list) -> None:
    if (
        checker.wants("second_order")
        and full
        and any(c is not None for c in cts)
        and case.dtype in HIGHER_ORDER_DTYPES
        and _selected(case, SECOND_ORDER_EVERY)
    ):
        _second_order(checker, case, full, cts)
    elif (
        checker.wants("second_order")
        and checker.fused
        and not checker.target.once_differentiable
        and full
        and any(c is not None for c in cts)
        and case.dtype in HALF
        and _selected(case, SECOND_ORDER_EVERY)
    ):
        _second_order_fused(checker, case, full, cts)
    if checker.wants("forward_ad") and full:
        _forward_ad(checker, case, full)
    if checker.wants("vmap"):
        _vmap(checker, case)
    if checker.wants("cuda") and str(case.device).startswith("cuda"):
        _cuda(checker, case, full, cts)


# -- second order ---------------------------------------------------------------------------


def _hvp(fn, args, wrt, cts, us, dtype=None, mutates=False):
    """Second-order VJP: d<vjp(f)(x, v), u> / d(x, v); None where a grad does not depend.

    ``mutates``: the Function works in place (mark_dirty), so it gets non-leaf copies."""
    args = [upcast(a, dtype) if dtype is not None else a for a in args]
    leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    for i in wrt:
        leaves[i] = leaves[i].requires_grad_(True)
    vs = [
        None
        if c is None
        else (upcast(c, dtype) if dtype else c.detach().clone()).requires_grad_(True)
        for c in cts
    ]
    us = [upcast(u, dtype) if dtype else u for u in us]
    with torch.enable_grad():
        call = [a.clone() if mutates and i in wrt else a for i, a in enumerate(leaves)]
        outs = as_tuple(fn(*call))
        pairs = [(o, v) for o, v in zip(outs, vs) if v is not None]
        first = torch.autograd.grad(
            [o for o, _ in pairs],
            [leaves[i] for i in wrt],
            [v for _, v in pairs],
            allow_unused=True,
            create_graph=True,
        )
        live = [(g, u) for g, u in zip(first, us) if g is not None and g.requires_grad]
        inputs = [leaves[i] for i in wrt] + [v for _, v in pairs]
        if not live:
            return [None] * len(inputs)
        return list(
            torch.autograd.grad(
                [g for g, _ in live], inputs, [u for _, u in live], allow_unused=True
            )
        )


def _hvp_paths(full, cts) -> list[str]:
    """Names of `_hvp`'s results: the inputs differentiated, then the live cotangents."""
    return [f"hvp[input={i}]" for i in full] + [
        f"hvp[grad_output={k}]" for k, c in enumerate(cts) if c is not None
    ]


def _second_order(checker, case, full, cts) -> None:
    target = checker.target
    us = _directions(case, [case.args[i] for i in full], salt=1)
    if target.once_differentiable:
        try:
            got = _hvp(target.fn, case.args, full, cts, us, mutates=checker._nonleaf)
        except RuntimeError:
            return  # the clear error once_differentiable promises
        if any(g is not None for g in got):
            checker._fail(
                "second_order",
                "the backward is marked once_differentiable, yet a "
                "double backward returned numbers instead of raising",
                case,
            )
        return
    try:
        got = _hvp(target.fn, case.args, full, cts, us, mutates=checker._nonleaf)
    except Exception as exc:  # noqa: BLE001
        checker._fail("second_order", f"double backward raised {type(exc).__name__}: {exc}", case)
    paths = _hvp_paths(full, cts)
    # a second derivative of a product is the product over two inputs: its terms may overflow
    # max|x|**2 times below the largest value
    margin = product_margin(checker.magnitudes, 2)

    def judge(expected, calib, slack=None, got=got):
        return _compare_list(checker, paths, got, expected, calib, slack, margin)

    ref = _hvp(checker.reference, case.args, full, cts, us, torch.float64)
    calib = None
    if case.dtype not in (None, torch.float64):
        try:
            calib = _hvp(checker.reference, case.args, full, cts, us, None)
        except Exception:  # noqa: BLE001
            calib = None
    first = judge(ref, calib)
    if first is not None:
        # rounding-sized moves of the inputs, cotangents and direction (fuzzgrad._sensitivity)
        slack = _hvp_slack(checker, case, full, cts, us, got, ref)
        if slack is not None and judge(ref, calib, slack) is None:
            return
        if calib is None:
            # float64: the reference's own rounding, from its float32 error scaled by eps64/eps32
            # (as Checker._conditioning does for first order); a double backward through a
            # normalisation of tiny values is noise of ~1e3 even in float64
            cond = _hvp_conditioning(checker, case, full, cts, us, ref)
            if cond is not None and judge(ref, cond) is None:
                return
    if first is None or checker.jax is None:
        if first is not None:
            checker._fail(
                "second_order",
                f"{first} (the Function's backward is not "
                "differentiable correctly; mark it once_differentiable if second order "
                "is not supported)",
                case,
                first,
            )
        return
    jgx, jgc = checker.jax(target.jax_reference, case.args, full, cts, mode="hvp", extra=us)
    second = judge(list(jgx) + list(jgc), calib)
    if second is not None and judge(ref, list(jgx) + list(jgc)) is None:
        first = None  # within the references' own disagreement (see Checker._check_pair)
    checker.vote(
        "second_order",
        case,
        first,
        second,
        lambda: judge(list(jgx) + list(jgc), None, got=ref),
    )


def _second_order_fused(checker, case, full, cts) -> None:
    """precision="fused" in half precision: the double backward must be the Function's own
    float32 double backward (inputs, cotangents and directions upcast with ``Tensor.float()``)
    rounded once, as for first order (`Checker._check_fused`); no reference enters."""
    fn, mutates = checker.target.fn, checker._nonleaf
    us = _directions(case, [case.args[i] for i in full], salt=1)
    try:
        got = _hvp(fn, case.args, full, cts, us, mutates=mutates)
    except Exception as exc:  # noqa: BLE001
        checker._fail("second_order", f"double backward raised {type(exc).__name__}: {exc}", case)

    try:
        ref = _hvp(
            fn,
            [as_float32(a) for a in case.args],
            full,
            [as_float32(c) for c in cts],
            [as_float32(u) for u in us],
            mutates=mutates,
        )
    except Exception:  # noqa: BLE001 - a float32 crash is the float32 cases' finding
        return
    paths = _hvp_paths(full, cts)
    for path, g, r in zip(paths, got, ref):
        if r is None or not floating(r):
            continue
        g = torch.zeros_like(r, dtype=case.dtype) if g is None else g
        m, _ = compare(path, g, r.to(g.dtype), fused=True, overrides=checker.target.tolerances)
        if m is not None:
            checker._fail(
                "second_order",
                f"{m} (precision='fused': against the Function's own float32 double backward, "
                "rounded once)",
                case,
                m,
            )


def _hvp_slack(checker, case, full, cts, us, got, ref) -> list | None:
    """Rounding slack for a double backward: the float64 reference's spread under two nudges,
    its term magnitudes, and the Function's own ulp-step jitter (each where computable)."""

    def evaluate(args, c, u):
        return _hvp(checker.reference, args, full, c, u, torch.float64)

    return add_up(
        nudge_spread(evaluate, [case.args, cts, us], ref),
        _hvp_terms(checker, case, full, cts, us),
        _hvp_noise(checker, case, full, cts, us, got, ref),
    )


def _hvp_conditioning(checker, case, full, cts, us, ref) -> list | None:
    try:
        low = _hvp(checker.reference, case.args, full, cts, us, torch.float32)
    except Exception:  # noqa: BLE001
        return None
    return [float64_rounding(lo, hi) for lo, hi in zip(low, ref)]


def _ulp_step(t, gen):
    """``t`` with every element moved one ulp up or down at random (floating real tensors)."""
    if not floating(t) or t.is_complex():
        return t
    up = torch.rand(t.shape, generator=gen) < 0.5
    toward = torch.where(up, math.inf, -math.inf).to(t.dtype)
    return torch.nextafter(t.detach(), toward)


#: One-ulp steps `_hvp_noise` takes (a cancelling formula's residue can stay put under a step).
NOISE_STEPS = 4


def _hvp_noise(checker, case, full, cts, us, here, ref) -> list | None:
    """How much the Function's own double backward jitters when every input, cotangent and
    direction moves by one ulp: rounding noise (a formula that cancels internally, e.g.
    L2-normalising one element, whose exact derivatives are 0, jumps between 0 and +-1 ulp of
    its terms). A wrong formula changes smoothly, by about what the reference's change is (which
    the reference's own spread allows anyway); the jitter beyond the reference's change counts
    too, where the two move apart."""
    gen = torch.Generator().manual_seed(NUDGE_SEED)
    mutates = checker._nonleaf
    worst = None
    for _ in range(NOISE_STEPS):
        args = [_ulp_step(a, gen) for a in case.args]
        moved_cts = [None if c is None else _ulp_step(c, gen) for c in cts]
        moved_us = [_ulp_step(u, gen) for u in us]
        try:
            mine = _hvp(checker.target.fn, args, full, moved_cts, moved_us, mutates=mutates)
            theirs = _hvp(checker.reference, args, full, moved_cts, moved_us, torch.float64)
        except Exception:  # noqa: BLE001 - a step can leave the domain: no slack from it
            return worst
        step = []
        for c1, c0, r1, r0 in zip(mine, here, theirs, ref):
            if r1 is None or r0 is None:
                step.append(None)
                continue
            c1 = torch.zeros_like(r1) if c1 is None else c1.detach().to(torch.float64)
            c0 = torch.zeros_like(r0) if c0 is None else c0.detach().to(torch.float64)
            jitter = torch.maximum((c1 - c0).abs(), ((c1 - c0) - (r1 - r0)).abs())
            step.append(jitter.nan_to_num(0.0, 0.0, 0.0))
        worst = step if worst is None else [larger(a, b) for a, b in zip(worst, step)]
    return worst


def _hvp_terms(checker, case, full, cts, us) -> list | None:
    """eps * |u| @ |J| of the float64 first-order vjp as a function of (inputs, cotangents):
    what rounding costs where the second-order result is a cancellation of large terms."""
    wide = [a.detach().to(torch.float64) if floating(a) else a for a in case.args]
    live = [k for k, c in enumerate(cts) if c is not None]

    def vjp(*xs):
        xw, vs = xs[: len(full)], xs[len(full) :]
        args = list(wide)
        for i, x in zip(full, xw):
            args[i] = x
        outs = as_tuple(checker.reference(*args))
        grads = torch.autograd.grad(
            [outs[k] for k in live], xw, list(vs), allow_unused=True, create_graph=True
        )
        return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xw))

    inputs = [wide[i] for i in full] + [cts[k].detach().to(torch.float64) for k in live]
    eps = [eps_of(case.args[i]) for i in full] + [eps_of(cts[k]) for k in live]
    try:
        got = abs_terms(vjp, inputs, [u.detach().to(torch.float64) for u in us], eps)
    except Exception:  # noqa: BLE001 - complex inputs, exotic references: no slack from it
        return None
    return None if got is None else got[1]


#: Second-order (and forward-mode) results in reduced precision compound the rounding of two
#: passes through formulas that need not match the reference's: their default tolerances are
#: this many times the first-order ones (a target's own ``tolerances`` are used as given).
HIGHER_ORDER_SLACK = 10.0


def _higher_tolerances(target) -> dict:
    out = {
        dt: (r * HIGHER_ORDER_SLACK, a * HIGHER_ORDER_SLACK)
        for dt, (r, a) in TOLERANCES.items()
        if dt not in (torch.float64, torch.complex128)
    }
    out.update(target.tolerances)
    return out


def _compare_list(checker, paths, got, expected, calib, slack=None, margin=NEAR_OVERFLOW):
    for n, (path, g, e) in enumerate(zip(paths, got, expected)):
        c = calib[n] if calib is not None else None
        if g is None and e is not None:
            g = torch.zeros_like(e)
        m, _ = compare(
            path,
            g,
            e,
            calib=c,
            overrides=_higher_tolerances(checker.target),
            overflow_regime=checker.overflow_regime,
            slack=slack[n] if slack is not None else None,
            near_overflow=margin,
        )
        if m is not None:
            return m
    return None


# -- forward-mode AD ---------------------------------------------------------------------------


def _jvp(fn, args, wrt, tangents, dtype=None):
    import warnings

    import torch.autograd.forward_ad as fwAD

    args = [upcast(a, dtype) if dtype is not None else a for a in args]
    tangents = [upcast(t, dtype) if dtype else t for t in tangents]
    with fwAD.dual_level(), warnings.catch_warnings():
        # torch's forward-AD decompositions use deprecated torch.jit on first use: not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        duals = list(args)
        for i, t in zip(wrt, tangents):
            primal = args[i].detach()
            if any(s == 0 for s in primal.stride()):  # torch cannot attach a tangent to stride 0
                primal = primal.contiguous()
            duals[i] = fwAD.make_dual(primal, t)
        outs = as_tuple(fn(*duals))
        result = []
        for o in outs:
            if isinstance(o, torch.Tensor) and floating(o):
                primal, tangent = fwAD.unpack_dual(o)
                result.append(tangent if tangent is not None else torch.zeros_like(primal))
            else:
                result.append(None)
    return result


def _forward_ad(checker, case, full) -> None:
    target = checker.target
    tangents = _directions(case, [case.args[i] for i in full], salt=2)
    try:
        got = _jvp(target.fn, case.args, full, tangents)
    except Exception as exc:  # noqa: BLE001
        checker._fail("forward_ad", f"forward-mode AD raised {type(exc).__name__}: {exc}", case)
    ref = _jvp(checker.reference, case.args, full, tangents, torch.float64)
    paths = [f"jvp[output={k}]" for k in range(len(got))]
    keep = [k for k, g in enumerate(got) if g is not None or ref[k] is not None]
    first = _compare_list(
        checker, [paths[k] for k in keep], [got[k] for k in keep], [ref[k] for k in keep], None
    )
    if first is None or checker.jax is None:
        if first is not None:
            checker._fail("forward_ad", str(first), case, first)
        return
    _, jt = checker.jax(target.jax_reference, case.args, full, None, mode="jvp", extra=tangents)
    second = _compare_list(
        checker, [paths[k] for k in keep], [got[k] for k in keep], [jt[k] for k in keep], None
    )
    checker.vote(
        "forward_ad",
        case,
        first,
        second,
        lambda: _compare_list(
            checker, [paths[k] for k in keep], [ref[k] for k in keep], [jt[k] for k in keep], None
        ),
    )


# -- vmap --------------------------------------------------------------------------------------


def _vmap(checker, case) -> None:
    fn = checker.target.fn
    tensors = [i for i, a in enumerate(case.args) if isinstance(a, torch.Tensor)]
    if not tensors:
        return
    second = [a * 0.5 + 0.25 if floating(a) else a for a in case.args]
    for batched in (tensors, tensors[:1]):  # every tensor batched; only the first batched
        args = list(case.args)
        dims = [None] * len(args)
        for i in batched:
            args[i] = torch.stack([case.args[i], second[i]])
            dims[i] = 0
        try:
            with torch.no_grad():
                out = as_tuple(torch.func.vmap(fn, in_dims=tuple(dims))(*args))
                one = as_tuple(fn(*case.args))
                two = as_tuple(
                    fn(*[second[i] if i in batched else a for i, a in enumerate(case.args)])
                )
        except Exception as exc:  # noqa: BLE001
            checker._fail("vmap", f"torch.func.vmap raised {type(exc).__name__}: {exc}", case)
        for k, (o, a, b) in enumerate(zip(out, one, two)):
            if not isinstance(o, torch.Tensor):
                continue
            want = torch.stack([a, b])
            m, _ = compare(
                f"vmap output[{k}] (batched inputs {batched})",
                o,
                want,
                overrides=checker.target.tolerances,
            )
            if m is not None:
                checker._fail(
                    "vmap", f"{m}: vmap disagrees with calling the Function per sample", case, m
                )


# -- CUDA vs CPU -------------------------------------------------------------------------------


def _cuda(checker, case, full, cts) -> None:
    fn = checker.target.fn
    cpu_args = [a.cpu() if isinstance(a, torch.Tensor) else a for a in case.args]
    results = []
    for args, ct in (
        (case.args, cts),
        (cpu_args, [c.cpu() if c is not None else None for c in cts]),
    ):
        leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        for i in full:
            leaves[i] = leaves[i].requires_grad_(True)
        outs = as_tuple(fn(*leaves))
        pairs = [(o, c) for o, c in zip(outs, ct) if c is not None]
        grads = (
            torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in full],
                [c for _, c in pairs],
                allow_unused=True,
            )
            if pairs
            else []
        )
        results.append((outs, grads))
    (gpu_outs, gpu_grads), (cpu_outs, cpu_grads) = results
    for path, g, c in [
        (f"output[{k}]", o, p) for k, (o, p) in enumerate(zip(gpu_outs, cpu_outs))
    ] + [(f"grad[input={i}]", g, p) for i, g, p in zip(full, gpu_grads, cpu_grads)]:
        if isinstance(g, torch.Tensor) and isinstance(c, torch.Tensor):
            m, _ = compare(
                f"cuda vs cpu {path}",
                g.cpu(),
                c.to(torch.float64),
                overrides=checker.target.tolerances,
            )
            if m is not None:
                checker._fail("cuda", str(m), case, m)
