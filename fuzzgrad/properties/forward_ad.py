"""``forward_ad``: the Function's ``jvp`` (forward-mode AD), when it defines one, matches the
references' Jacobian-vector products."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating, upcast
from fuzzgrad.properties.base import Property, Skip, defines, directions


class ForwardAD(Property):
    name = "forward_ad"
    order = 80
    summary = "the Function's `jvp`, when it defines one"

    def applies(self, target) -> bool:
        cls = target.autograd_function
        return cls is not None and defines(cls, "jvp")

    def check(self, run) -> None:
        if not run.wrt:
            raise Skip("nothing to differentiate")
        _forward_ad(run, run.case, run.wrt)


def forward_jvp(fn, args, wrt, tangents, dtype=None) -> list:
    """Per output of ``fn``, its tangent by forward-mode AD along ``tangents`` of the ``wrt``
    arguments (None for a non-floating output); ``dtype``: on fresh copies at that dtype."""
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


def _forward_ad(run, case, full) -> None:
    checker, target = run.checker, run.target
    tangents = directions(case, [case.args[i] for i in full], salt=2)
    try:
        # Its own tangents (and, in place, inputs): an in-place Function writes into both (its
        # jvp must update the tangent in place), and the references need them untouched.
        mine = case.args
        if run.nonleaf:
            mine = [a.clone() if isinstance(a, torch.Tensor) else a for a in case.args]
        got = forward_jvp(target.fn, mine, full, [t.clone() for t in tangents])
    except Exception as exc:  # noqa: BLE001
        run.fail("forward_ad", f"forward-mode AD raised {type(exc).__name__}: {exc}")
    ref = forward_jvp(checker.reference, case.args, full, tangents, torch.float64)
    paths = [f"jvp[output={k}]" for k in range(len(got))]
    keep = [k for k, g in enumerate(got) if g is not None or ref[k] is not None]
    # the reference's jvp at the case's own dtype: the error honest arithmetic makes there
    at = run.judge.at_dtype(
        lambda: [forward_jvp(checker.reference, case.args, full, tangents)[k] for k in keep]
    )
    first = run.judge.calibrated_list(
        [paths[k] for k in keep], [got[k] for k in keep], [ref[k] for k in keep], at
    )
    if first is None or checker.jax is None:
        if first is not None:
            run.fail("forward_ad", str(first), first)
        return
    _, jt = checker.jax(target.jax_reference, case.args, full, None, mode="jvp", extra=tangents)
    second = run.judge.calibrated_list(
        [paths[k] for k in keep], [got[k] for k in keep], [jt[k] for k in keep], at
    )
    found = run.judge.vote(
        case,
        first,
        second,
        lambda: run.judge.compare_list(
            [paths[k] for k in keep], [ref[k] for k in keep], [jt[k] for k in keep], None
        ),
    )
    if found is not None:
        run.fail("forward_ad", str(found), found)
