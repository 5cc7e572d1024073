"""``func_transforms``: the Function under torch.func's transforms, when it supports them (the
``setup_context`` style, with ``vmap`` or ``generate_vmap_rule``): per-sample VJPs under
``vmap`` match a loop of plain backward calls, ``jacrev`` (and ``jacfwd``, with a ``jvp``)
matches the float64 reference's Jacobian, and ``jvp`` under ``vmap`` matches a loop of ``jvp``.
Run on one small case in `EVERY` (the Jacobians cost one backward per output element)."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating, upcast
from fuzzgrad.oracles.torch_ref import torch_oracle
from fuzzgrad.properties.base import Property, Skip, defines, directions, selected
from fuzzgrad.properties.forward_ad import forward_jvp
from fuzzgrad.properties.vmap import supports_vmap
from fuzzgrad.registry.target import uses_setup_context
from fuzzgrad.verdict.calibration import AtDtype

#: One case in this many (by its own seed) runs the transforms.
EVERY = 3
#: Jacobians are taken where every differentiated input and output has at most this many
#: elements.
MAX_JACOBIAN_SIDE = 16


class FuncTransforms(Property):
    name = "func_transforms"
    order = 95
    summary = (
        "torch.func: per-sample VJPs under `vmap`, `jacrev`/`jacfwd` against the reference's "
        "Jacobian, `jvp` under `vmap` (Functions that support them)"
    )

    def applies(self, target) -> bool:
        return supports_vmap(target) and uses_setup_context(target.autograd_function)

    def check(self, run) -> None:
        case = run.case
        if not run.wrt or not selected(case, EVERY):
            raise Skip("not sampled")
        if case.dtype not in (None, torch.float64, torch.float32):
            raise Skip("half precision")
        _per_sample_vjp(self.name, run)
        sizes = [case.args[i].numel() for i in run.wrt]
        sizes += [o.numel() for o in run.outputs if isinstance(o, torch.Tensor)]
        small = all(0 < n <= MAX_JACOBIAN_SIDE for n in sizes)  # torch.func: no empty Jacobians
        if small:
            _jacobians(self.name, run)
        if defines(run.target.autograd_function, "jvp"):
            _vmapped_jvp(self.name, run)


def _dense(t: torch.Tensor) -> torch.Tensor:
    """``t``, made contiguous if it has stride-0 dims: torch cannot attach a tangent to an
    expanded tensor (even for its own ops), which says nothing of the Function."""
    return t.contiguous() if any(s == 0 for s in t.stride()) else t


def _only(fn, args, wrt, k, *, fresh=False):
    """``fn`` as a function of the ``wrt`` arguments alone, returning its output ``k``.

    ``fresh`` (an in-place Function): ``fn`` gets a clone of every tensor argument, made
    inside the transformed function, as torch's own tests transform ``NumpyExp_``: a transform's
    primal is a leaf that requires grad, which no Function may write into."""

    def g(*xs):
        full = list(args)
        for i, x in zip(wrt, xs):
            full[i] = x
        if fresh:
            full = [a.clone() if isinstance(a, torch.Tensor) else a for a in full]
        return as_tuple(fn(*full))[k]

    return g


def _live(run) -> list[int]:
    return [
        k
        for k, (o, c) in enumerate(zip(run.outputs, run.cotangents))
        if c is not None and floating(o)
    ]


def _per_sample_vjp(name, run) -> None:
    """vmap over a batch of two cotangents of ``torch.func.vjp`` against two backward calls."""
    case, fn = run.case, run.target.fn
    for k in _live(run):
        g = _only(fn, case.args, run.wrt, k, fresh=run.nonleaf)
        ct = run.cotangents[k]
        batch = torch.stack([ct, ct * -0.5 + 0.25])
        try:
            _, pullback = torch.func.vjp(g, *[case.args[i] for i in run.wrt])
            got = torch.func.vmap(pullback)(batch)
        except Exception as exc:  # noqa: BLE001
            run.fail(
                name, f"vmap of torch.func.vjp (output {k}) raised {type(exc).__name__}: {exc}"
            )
        for b in range(2):
            leaves = [case.args[i].detach().requires_grad_(True) for i in run.wrt]
            with torch.enable_grad():
                out = g(*leaves)
            want = torch.autograd.grad(out, leaves, batch[b], allow_unused=True)
            at = _reference_vjps(run, k, batch[b])
            for n, i in enumerate(run.wrt):
                m = run.judge.between_runs(
                    f"per-sample vjp[output={k}, sample={b}] grad[input={i}]",
                    got[n][b],
                    want[n],
                    at,
                    n,
                )
                if m is not None:
                    run.fail(name, f"{m}: vmap of the vjp disagrees with a plain backward", m)


def _jacobians(name, run) -> None:
    """``jacrev`` (and ``jacfwd`` where a ``jvp`` exists) against the float64 reference's
    Jacobian (by torch autograd)."""
    case, fn, reference = run.case, run.target.fn, run.checker.reference
    if reference is None:
        return
    wide = [upcast(a, torch.float64) for a in case.args]
    modes = [("jacrev", torch.func.jacrev)]
    if defines(run.target.autograd_function, "jvp"):
        modes.append(("jacfwd", torch.func.jacfwd))

    def jacobian(args, k):
        g = _only(reference, args, run.wrt, k)
        return torch.autograd.functional.jacobian(g, tuple(args[i] for i in run.wrt))

    for k in _live(run):
        argnums = tuple(range(len(run.wrt)))
        want = jacobian(wide, k)
        # the reference's Jacobian at the case's own dtype, computed only where needed
        at = run.judge.at_dtype(lambda k=k: jacobian([upcast(a, None) for a in case.args], k))
        for what, transform in modes:
            try:
                got = transform(
                    _only(fn, case.args, run.wrt, k, fresh=run.nonleaf), argnums=argnums
                )(*[_dense(case.args[i]) if what == "jacfwd" else case.args[i] for i in run.wrt])
            except Exception as exc:  # noqa: BLE001
                run.fail(name, f"torch.func.{what} (output {k}) raised {type(exc).__name__}: {exc}")
            paths = [f"{what}[output={k}, input={i}]" for i in run.wrt]
            m = run.judge.calibrated_list(paths, list(got), list(want), at)
            if m is not None:
                run.fail(name, f"{m}: the Jacobian disagrees with the reference's", m)


def _vmapped_jvp(name, run) -> None:
    """vmap over a batch of two tangents of ``torch.func.jvp`` against two ``jvp`` calls."""
    case, fn = run.case, run.target.fn
    primals = tuple(_dense(case.args[i]) for i in run.wrt)
    tangents = directions(case, list(primals), salt=3)
    batch = [torch.stack([t, t * -0.5]) for t in tangents]
    for k in _live(run):
        g = _only(fn, case.args, run.wrt, k, fresh=run.nonleaf)
        try:
            got = torch.func.vmap(lambda *ts, g=g: torch.func.jvp(g, primals, ts)[1])(*batch)
            want = [torch.func.jvp(g, primals, tuple(t[b] for t in batch))[1] for b in range(2)]
        except Exception as exc:  # noqa: BLE001
            run.fail(
                name, f"vmap of torch.func.jvp (output {k}) raised {type(exc).__name__}: {exc}"
            )
        for b in range(2):
            at = _reference_jvps(run, k, [t[b] for t in batch])
            m = run.judge.between_runs(f"vmapped jvp[output={k}, sample={b}]", got[b], want[b], at)
            if m is not None:
                run.fail(name, f"{m}: vmap of the jvp disagrees with a plain jvp", m)


def _reference_vjps(run, k: int, ct) -> AtDtype | None:
    """Per differentiated input, the reference's vjp for cotangent ``ct`` of output ``k``, at
    the case's dtype and in float64 (`Judge.between_runs`), lazily."""
    reference, args = run.checker.reference, run.case.args
    cts = [ct if j == k else None for j in range(len(run.outputs))]

    def compute():
        low = torch_oracle(reference, args, run.wrt, cts, None)
        high = torch_oracle(reference, args, run.wrt, cts, torch.float64)
        return [(low.grads[i], high.grads[i]) for i in run.wrt]

    return run.judge.at_dtype(compute)


def _reference_jvps(run, k: int, tangents) -> AtDtype | None:
    """The reference's jvp of output ``k`` along ``tangents``, at the case's dtype and in
    float64 (`Judge.between_runs`), lazily."""
    reference, args = run.checker.reference, run.case.args

    def compute():
        low = forward_jvp(reference, args, run.wrt, tangents)
        return [(low[k], forward_jvp(reference, args, run.wrt, tangents, torch.float64)[k])]

    return run.judge.at_dtype(compute)
