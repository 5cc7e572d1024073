"""``compile`` (opt-in; on in the nightly profile): the Function called inside
``torch.compile(..., dynamic=True)`` gives the outputs and gradients its eager calls give,
judged against the references like an eager call. Compiling is slow: once per target and dtype
signature (shapes are dynamic), and its time is counted in ``Stats.compile_seconds``."""

from __future__ import annotations

import time
import warnings

import torch

from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.properties.base import Property, Skip

#: The backend ``torch.compile`` uses (registration option ``compile_backend`` overrides).
BACKEND = "inductor"


def _limit_hit() -> type[Exception]:
    """What Dynamo raises at its recompile limit where told to (`_compiled_vjp`); an exception
    never raised where this torch has no such setting (its Dynamo then falls back to eager as
    before). Looked up on use: importing torch._dynamo costs seconds, in every worker."""
    import torch._dynamo.exc as exc

    return getattr(exc, "FailOnRecompileLimitHit", _Never)


class _Never(Exception):
    pass


def _compiled_vjp(compiled, args, run):
    """The compiled call's outputs and gradients; Dynamo's recompile limit raises (`_limit_hit`)
    rather than silently running the Function eagerly."""
    limit = {"fail_on_recompile_limit_hit": True}
    known = {k: v for k, v in limit.items() if hasattr(torch._dynamo.config, k)}
    with warnings.catch_warnings(), torch._dynamo.config.patch(**known):
        warnings.simplefilter("ignore", DeprecationWarning)  # Dynamo's own notices
        return torch_vjp(compiled, args, run.wrt, run.cotangents if run.grads_wanted else None)


class Compile(Property):
    name = "compile"
    order = 110
    default = False
    needs = frozenset({"grads"})  # its gradients are judged against the reference's
    summary = (
        "inside `torch.compile(dynamic=True)` outputs and gradients match the references as "
        "eager ones do (opt-in; on in the nightly profile)"
    )

    def check(self, run) -> None:
        case = run.case
        if case.device != "cpu" and not str(case.device).startswith("cuda"):
            raise Skip("a device torch.compile does not target")
        signature = tuple(
            (str(a.dtype), a.dim()) if isinstance(a, torch.Tensor) else type(a).__name__
            for a in case.args
        )
        cache = run.checker.cache.setdefault(self.name, {})
        compiled = cache.get(signature)
        started = time.perf_counter()
        if compiled is None:
            torch._dynamo.reset() if len(cache) > 8 else None  # bounded recompiles
            backend = run.target.options.get("compile_backend", BACKEND)
            compiled = cache[signature] = torch.compile(
                run.target.fn, dynamic=True, backend=backend
            )
        args = case.args
        if run.nonleaf:
            args = [a.clone() if isinstance(a, torch.Tensor) else a for a in run.snapshot]
        try:
            try:
                got = _compiled_vjp(compiled, args, run)
            except _limit_hit():
                # Dynamo's recompile limit (guards on requires_grad, strides ...): past it,
                # Dynamo runs the Function eagerly and this property would pass unchecked; so
                # a fresh start instead, and the call compiled again
                torch._dynamo.reset()
                cache.clear()
                backend = run.target.options.get("compile_backend", BACKEND)
                compiled = cache[signature] = torch.compile(
                    run.target.fn, dynamic=True, backend=backend
                )
                got = _compiled_vjp(compiled, args, run)
        except Exception as exc:  # noqa: BLE001
            run.fail(
                self.name, f"under torch.compile the Function raised {type(exc).__name__}: {exc}"
            )
        finally:
            run.checker.stats.compile_seconds += time.perf_counter() - started
        for kind, values in (("outputs", got.outputs), ("grads", got.grads)):
            if kind == "grads" and not run.grads_wanted:
                continue
            found = run.judge.pair(
                kind,
                case,
                run.wrt,
                run.cotangents,
                values if kind == "outputs" else None,
                values if kind == "grads" else None,
                run.reference,
                run.calibration,
            )
            if found is not None:
                run.fail(self.name, f"under torch.compile(dynamic=True): {found}", found)
