"""``second_order``: Hessian-vector products (double backward) match both references; a
``once_differentiable`` backward must raise instead.

Checked on one case in `SECOND_ORDER_EVERY` (by the case's own seed, so a shrunk case still
selects it), in float64 and float32: a double backward in half precision is dominated by
rounding. With ``precision="fused"``, half-precision cases are held to the Function's own float32
double backward, rounded once.
"""

from __future__ import annotations

import math

import torch

from fuzzgrad.oracles.evaluation import (
    HALF,
    as_float32,
    as_tuple,
    floating,
    kept_outputs,
    place,
    saved_as,
    upcast,
    widen,
)
from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.properties.base import Property, PropertyFailure, Skip, directions, selected
from fuzzgrad.verdict.compare import compare
from fuzzgrad.verdict.overflow import product_margin
from fuzzgrad.verdict.slack import (
    NUDGE_SEED,
    abs_terms,
    add_up,
    eps_of,
    float64_rounding,
    larger,
    nudge_spread,
)

#: Second order costs about three first-order checks; it runs on one case in this many.
SECOND_ORDER_EVERY = 3
#: The dtypes second order is checked in (None: a case without floating inputs).
HIGHER_ORDER_DTYPES = (None, torch.float64, torch.float32, torch.complex128, torch.complex64)


class SecondOrder(Property):
    name = "second_order"
    order = 70
    summary = (
        "Hessian-vector products match both references; a `once_differentiable` backward must "
        "raise instead"
    )

    def applies(self, target) -> bool:
        return int(target.options.get("max_order", 2)) >= 2

    def check(self, run) -> None:
        case, full, cts = run.case, run.wrt, run.cotangents
        if not full or all(c is None for c in cts):
            raise Skip("nothing to differentiate")
        if not selected(case, SECOND_ORDER_EVERY):
            raise Skip("not sampled")
        if case.dtype in HIGHER_ORDER_DTYPES:
            _second_order(run, case, full, cts)
        elif run.checker.fused and not run.target.once_differentiable and case.dtype in HALF:
            _second_order_fused(run, case, full, cts)
        else:
            raise Skip("half precision")


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
        inputs = [leaves[i] for i in wrt] + [v for _, v in pairs]
        # an output that depends on no input differentiated (a reference that ignores it)
        pairs = [(o, v) for o, v in pairs if isinstance(o, torch.Tensor) and o.requires_grad]
        if not pairs:
            return [None] * len(inputs)
        first = torch.autograd.grad(
            [o for o, _ in pairs],
            [leaves[i] for i in wrt],
            [v for _, v in pairs],
            allow_unused=True,
            create_graph=True,
        )
        live = [(g, u) for g, u in zip(first, us) if g is not None and g.requires_grad]
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


def _second_order(run, case, full, cts) -> None:
    checker, target = run.checker, run.target
    us = directions(case, [case.args[i] for i in full], salt=1)
    if target.once_differentiable:
        try:
            got = _hvp(target.fn, case.args, full, cts, us, mutates=run.nonleaf)
        except RuntimeError:
            return  # the clear error once_differentiable promises
        if any(g is not None for g in got):
            run.fail(
                "second_order",
                "the backward is marked once_differentiable, yet a "
                "double backward returned numbers instead of raising",
            )
        return
    try:
        got = _hvp(target.fn, case.args, full, cts, us, mutates=run.nonleaf)
    except Exception as exc:  # noqa: BLE001
        run.fail("second_order", f"double backward raised {type(exc).__name__}: {exc}")
    paths = _hvp_paths(full, cts)
    # a second derivative of a product is the product over two inputs: its terms may overflow
    # max|x|**2 times below the largest value
    margin = product_margin(run.judge.magnitudes, 2)

    def judge(expected, calib, slack=None, got=got):
        return run.judge.compare_list(paths, got, expected, calib, slack, margin)

    ref = _hvp(checker.reference, case.args, full, cts, us, torch.float64)
    # the reference's double backward at the case's own dtype, computed only where needed
    at = run.judge.at_dtype(lambda: _hvp(checker.reference, case.args, full, cts, us, None))
    first = run.judge.calibrated_list(paths, got, ref, at, margin=margin)
    calib = at.value if at is not None else None
    if first is not None:
        # rounding-sized moves of the inputs, cotangents and direction (fuzzgrad.verdict.slack)
        slack = _hvp_slack(run, case, full, cts, us, got, ref)
        if slack is not None and judge(ref, calib, slack) is None:
            return
        if calib is None:
            # float64: the reference's own rounding, from its float32 error scaled by eps64/eps32
            # (as Judge._conditioning does for first order); a double backward through a
            # normalisation of tiny values is noise of ~1e3 even in float64
            cond = _hvp_conditioning(checker, case, full, cts, us, ref)
            if cond is not None and judge(ref, cond) is None:
                return
    if first is None or checker.jax is None:
        if first is not None:
            _fail(run, full, cts, us, got, f"{first} (the Function's backward is not "
                  f"differentiable correctly{_saved_hint(run)})", first)  # fmt: skip
        return
    jgx, jgc = checker.jax(checker.judge.jax_reference, case.args, full, cts, mode="hvp", extra=us)
    second = judge(list(jgx) + list(jgc), calib)
    if second is not None and judge(ref, list(jgx) + list(jgc)) is None:
        first = None  # within the references' own disagreement (see Judge.pair)
    found = run.judge.vote(case, first, second, lambda: judge(list(jgx) + list(jgc), None, got=ref))
    if found is not None:
        _fail(run, full, cts, us, got, f"{found}{_saved_hint(run, ';')}", found)


def _fail(run, full, cts, us, got, message, mismatch) -> None:
    """Fail ``second_order``; where the double backward is the derivative of the Function's own
    first-order backward (`_follows_backward`), the wrong value comes from that backward, and
    the failure says so (its finding folds into the backward's, `fuzzgrad.verdict.identity`)."""
    follows = _follows_backward(run, full, cts, us, got)
    if follows:
        message += (
            "; this double backward is the derivative of the Function's own backward, which is "
            "wrong here: fix the backward first"
        )
    try:
        run.fail("second_order", message, mismatch)
    except PropertyFailure as exc:
        exc.follows_backward = follows  # type: ignore[attr-defined]
        raise


#: Per dtype, the steps of the central differences `_follows_backward` takes (relative to the
#: inputs' scale) and the relative agreement it asks of them.
FOLLOW_STEPS = {torch.float64: ((1e-4, 5e-5), 1e-3), torch.float32: ((1e-2, 5e-3), 1e-2)}


def _follows_backward(run, full, cts, us, got) -> bool:
    """See `_follows`; anything it cannot tell (it raises) is a finding of its own."""
    try:
        return _follows(run, full, cts, us, got)
    except Exception:  # noqa: BLE001 - a check of fuzzgrad's own must never cost the finding
        return False


def _follows(run, full, cts, us, got) -> bool:
    """Whether ``got``, the Function's double backward, is the derivative of its own first-order
    backward on this case: ``<got, d>`` against central differences of ``<backward(x + h d),
    u>`` along a random direction ``d`` of the inputs, then one of the cotangents, apart (in one
    mixed direction a large right term would hide a small wrong one), each with two steps that
    agree with each other, at the case's dtype: a float32 overflow is float32's; NaN on both
    sides counts as agreeing. Then a wrong second order is the wrong backward's, not a bug of
    its own; anything else (raises, steps that disagree, a complex case) is not."""
    case = run.case
    if case.dtype not in FOLLOW_STEPS:
        return False  # complex, or no floating input: not told
    args = [upcast(a, None) for a in case.args]
    vs = [None if c is None else upcast(c, None) for c in cts]
    wrt = [i for i in full if floating(args[i])]
    live = {k: v for k, v in enumerate(vs) if v is not None}
    gen = torch.Generator().manual_seed(case.direction_seed % (2**63) + 7)
    dx = {i: torch.randn(args[i].shape, generator=gen, dtype=torch.float64) for i in wrt}
    dv = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in live.items()}
    dx = {i: d.to(args[i].dtype) for i, d in dx.items()}
    dv = {k: d.to(live[k].dtype) for k, d in dv.items()}
    paths = [*wrt, *(len(case.args) + k for k in live)]
    if len(got) != len(paths):
        return False
    fn = run.target.fn
    if run.nonleaf:  # it writes its inputs: each call gets copies, as the checks' calls do
        fn = lambda *xs: run.target.fn(*(x.clone() if floating(x) else x for x in xs))  # noqa: E731
    u64 = [upcast(u, torch.float64) for u in us]
    line = _Line(fn, args, vs, wrt, u64, case.dtype)
    return all(
        line.agrees(got, paths, x_dir, v_dir)
        for x_dir, v_dir in ((dx, {}), ({}, dv))
        if x_dir or v_dir
    )


class _Line:
    """``<backward(x + h dx, v + h dv), u>`` and its central differences (see `_follows`)."""

    def __init__(self, fn, args, vs, wrt, u64, dtype) -> None:
        self.fn, self.args, self.vs, self.wrt, self.u64 = fn, args, vs, wrt, u64
        self.steps, self.rtol = FOLLOW_STEPS[dtype]
        self.eps = torch.finfo(dtype).eps
        floats = [float(a.abs().max()) for a in args if floating(a) and a.numel()]
        self.scale = max([1.0, *floats])

    def value(self, h: float, dx: dict, dv: dict) -> float:
        xs = [a + h * dx[i] if i in dx else a for i, a in enumerate(self.args)]
        cs = [v + h * dv[k] if k in dv else v for k, v in enumerate(self.vs)]
        grads = torch_vjp(self.fn, xs, self.wrt, cs).grads
        pairs = [(g, u) for g, u in zip((grads[i] for i in self.wrt), self.u64) if g is not None]
        return sum(float((g.double() * u).sum()) for g, u in pairs)

    def agrees(self, got, paths, dx: dict, dv: dict) -> bool:
        n = len(self.args)
        direction = {**dx, **{n + k: d for k, d in dv.items()}}
        predicted = sum(
            float((g.detach().to(torch.float64) * direction[p].double()).sum())
            for g, p in zip(got, paths)
            if g is not None and p in direction
        )
        try:
            ends = [
                (self.value(h * self.scale, dx, dv), self.value(-h * self.scale, dx, dv))
                for h in self.steps
            ]
        except Exception:  # noqa: BLE001 - cannot tell: a finding of its own
            return False
        estimates = [(up - down) / (2 * h * self.scale) for (up, down), h in zip(ends, self.steps)]
        if math.isnan(predicted) or any(math.isnan(e) for e in estimates):
            return math.isnan(predicted) and all(math.isnan(e) for e in estimates)
        a, b = estimates
        # relative to the values compared, plus the rounding error of the differences (a fixed
        # floor would call a double backward of 0 the derivative of any small backward)
        values = max(abs(v) for pair in ends for v in pair)
        noise = 64 * self.eps * values / (min(self.steps) * self.scale)
        tol = self.rtol * max(abs(a), abs(b)) + noise
        return abs(a - b) <= tol and abs(predicted - a) <= 10 * tol


def _saved_hint(run, lead: str = ";") -> str:
    """Advice for a wrong double backward: a backward that uses tensors its forward computed
    (saved without a graph: forward runs without grad) cannot be differentiated correctly."""
    node = next((o.grad_fn for o in run.outputs if isinstance(o, torch.Tensor) and o.grad_fn), None)
    known = {place(t) for t in [*run.called, *run.outputs] if isinstance(t, torch.Tensor)}
    try:
        saved = [t for t in getattr(node, "saved_tensors", ()) if isinstance(t, torch.Tensor)]
    except Exception:  # noqa: BLE001 - freed after backward, or not readable: no count
        saved = []
    # a tensor without a place (nested, meta) is not counted: the hint claims only what it knows
    computed = [t for t in saved if (p := place(t)) is not None and p not in known]
    why = (
        f" (its backward uses {len(computed)} tensor(s) its forward computed and saved without "
        "a graph)"
        if computed
        else ""
    )
    return (
        f"{lead} if second order is not supported{why}, mark the backward "
        "@once_differentiable or register with max_order=1"
    )


def _second_order_fused(run, case, full, cts) -> None:
    """precision="fused" in half precision: the double backward must be the Function's own
    float32 double backward (inputs, cotangents and directions upcast with ``Tensor.float()``)
    rounded once, as for first order (`CaseRun.check_fused`); no reference enters."""
    checker = run.checker
    fn, mutates = checker.target.fn, run.nonleaf
    us = directions(case, [case.args[i] for i in full], salt=1)
    try:
        got = _hvp(fn, case.args, full, cts, us, mutates=mutates)
    except Exception as exc:  # noqa: BLE001
        run.fail("second_order", f"double backward raised {type(exc).__name__}: {exc}")

    def own_float32(keep_outputs: bool) -> list:
        # keep_outputs: the float32 run keeps the half outputs the Function keeps, rounded
        # (`CaseRun.float32_kept_run`), asked for only where the plain run differs
        kept = kept_outputs(fn, case.args, full) if keep_outputs else []
        with saved_as(kept):
            return _hvp(
                fn,
                [as_float32(a) for a in case.args],
                full,
                [as_float32(c) for c in cts],
                [as_float32(u) for u in us],
                mutates=mutates,
            )

    try:
        ref = own_float32(False)
    except Exception:  # noqa: BLE001 - a float32 crash is the float32 cases' finding
        return
    kept_ref: list | None = None
    tolerances = checker.target.tolerances
    for k, (path, g, r) in enumerate(zip(_hvp_paths(full, cts), got, ref)):
        if r is None or not floating(r):
            continue
        g = torch.zeros_like(r, dtype=case.dtype) if g is None else g
        m, _ = compare(path, g, r.to(g.dtype), fused=True, overrides=tolerances)
        if m is not None:
            if kept_ref is None:
                try:
                    kept_ref = own_float32(True)
                except Exception:  # noqa: BLE001
                    kept_ref = []
            r = kept_ref[k] if kept_ref else None
            if isinstance(r, torch.Tensor):
                m, _ = compare(path, g, r.to(g.dtype), fused=True, overrides=tolerances)
        if m is not None:
            run.fail(
                "second_order",
                f"{m} (precision='fused': against the Function's own float32 double backward, "
                "rounded once)",
                m,
            )


def _hvp_slack(run, case, full, cts, us, got, ref) -> list | None:
    """Rounding slack for a double backward: the float64 reference's spread under two nudges,
    its term magnitudes, and the Function's own ulp-step jitter (each where computable)."""
    checker = run.checker

    def evaluate(args, c, u):
        return _hvp(checker.reference, args, full, c, u, torch.float64)

    return add_up(
        nudge_spread(evaluate, [case.args, cts, us], ref),
        _hvp_terms(checker, case, full, cts, us),
        _hvp_noise(run, case, full, cts, us, got, ref),
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


def _hvp_noise(run, case, full, cts, us, here, ref) -> list | None:
    """How much the Function's own double backward jitters when every input, cotangent and
    direction moves by one ulp: rounding noise (a formula that cancels internally, e.g.
    L2-normalising one element, whose exact derivatives are 0, jumps between 0 and +-1 ulp of
    its terms). A wrong formula changes smoothly, by about what the reference's change is (which
    the reference's own spread allows anyway); the jitter beyond the reference's change counts
    too, where the two move apart."""
    gen = torch.Generator().manual_seed(NUDGE_SEED)
    checker, mutates = run.checker, run.nonleaf
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
        step: list[torch.Tensor | None] = []
        for c1, c0, r1, r0 in zip(mine, here, theirs, ref):
            if r1 is None or r0 is None:
                step.append(None)
                continue
            c1 = torch.zeros_like(r1) if c1 is None else widen(c1)
            c0 = torch.zeros_like(r0) if c0 is None else widen(c0)
            jitter = torch.maximum((c1 - c0).abs(), ((c1 - c0) - (r1 - r0)).abs())
            step.append(jitter.nan_to_num(0.0, 0.0, 0.0))
        worst = step if worst is None else [larger(a, b) for a, b in zip(worst, step)]
    return worst


def _hvp_terms(checker, case, full, cts, us) -> list | None:
    """eps * |u| @ |J| of the float64 first-order vjp as a function of (inputs, cotangents):
    what rounding costs where the second-order result is a cancellation of large terms."""
    if any(floating(a) and a.is_complex() for a in case.args):
        return None  # term magnitudes are taken of real Jacobians
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
