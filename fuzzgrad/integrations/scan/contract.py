"""Input contracts inferred by trial, from a Function's ``forward`` signature.

Each family is a list of `fuzzgrad.tensor`/`fuzzgrad.dim` specs written as source text, so the
registration snippet a scan prints is exactly the contract it fuzzed. Families are tried
simplest first; the first on which the Function runs, forward and backward, on at least
`ACCEPT` of `DRAWS` drawn cases is kept (a backward that asserts a narrower contract than its
forward's, 3 columns say, tells what the Function means: it would otherwise fail every case).
Required parameters are fed (tensors, or ``fg.dim`` for one named like a dim); those with
defaults keep them.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Drawn cases per family, and the share of them the forward must run on.
DRAWS = 20
ACCEPT = 0.8
#: A family accepted is replaced by the wider one it is a special case of, when the forward
#: accepts that too: a Function that takes broadcastable shapes is fuzzed with them (a missing
#: reduction shows only there), a matrix product with non-square factors.
GENERALISES = {"one shape": "broadcastable", "square matrices": "matrix product"}
#: Parameter names read as a dimension index of the first tensor argument.
DIM_NAMES = ("dim", "axis")
#: Dtypes a scan draws: an inferred contract says nothing of the half-precision ones a
#: Function may never have been meant for (precision over recall).
DTYPES = "[torch.float64, torch.float32]"
#: What holds under any contract the forward accepts: the backward against autograd of its own
#: forward (or finite differences), crashes, gradient shapes and dtypes, NaNs, requires_grad
#: subsets and second order. Other properties are skipped and counted.
PROPERTIES = ("vjp", "grad_meta", "requires_grad_subsets", "second_order")


@dataclass(frozen=True)
class Contract:
    """One family's specs for the required parameters, as source text."""

    family: str
    inputs: tuple[str, ...]

    def specs(self) -> list[Any]:
        from types import SimpleNamespace

        from fuzzgrad.registry.spec import dim, tensor

        fg = SimpleNamespace(tensor=tensor, dim=dim)  # what the texts call, as `fuzzgrad.*`
        return [eval(text, {"fg": fg}) for text in self.inputs]  # noqa: S307 - our own text


@dataclass
class Inference:
    """The outcome for one Function: the contract kept (None: none fits) and what was tried,
    each family with the share of draws the forward ran on, or why it could not be tried."""

    contract: Contract | None
    tried: list[tuple[str, str]] = field(default_factory=list)
    parameters: tuple[str, ...] = ()
    #: Why autograd of the forward is not its derivative (then finite differences judge).
    differences: str | None = None

    def describe_tried(self) -> str:
        return "; ".join(f"{family}: {outcome}" for family, outcome in self.tried)


def required_parameters(cls: Any) -> tuple[str, ...] | None:
    """Names of ``forward``'s positional parameters without defaults (``ctx`` left out, unless
    the Function uses ``setup_context``); None where there is no usable signature."""
    from fuzzgrad.registry.target import custom_op_impl, uses_setup_context

    impl = custom_op_impl(cls)  # a custom operator: its Python function's signature
    try:
        params = list(inspect.signature(impl or cls.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    if impl is None and not uses_setup_context(cls):
        params = params[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in positional and p.default is p.empty)


def families(params: tuple[str, ...]) -> list[Contract]:
    """The contracts to try for these required parameters, simplest first."""
    tensors = [i for i, p in enumerate(params) if p not in DIM_NAMES]
    if not tensors:
        return []
    n = len(tensors)

    def build(family: str, shapes: list[str]) -> Contract:
        texts, it = [], iter(shapes)
        for p in params:
            if p in DIM_NAMES:
                texts.append(f"fg.dim({tensors[0]})")
            else:
                shape = next(it)
                texts.append(f"fg.tensor({shape!r})" if shape else "fg.tensor()")
        return Contract(family, tuple(texts))

    out = [build("one shape", [""] * n)]
    if n > 1:
        out.append(build("broadcastable", ["*#batch"] * n))
    out.append(build("matrices", ["m n"] * n))
    out.append(build("square matrices", ["n n"] * n))
    if n > 1:
        out.append(build("matrix product", [f"d{i} d{i + 1}" for i in range(n)]))
    return out


def infer(cls: Any, name: str, traced: Contract | None = None) -> Inference:
    """Try the families for ``cls`` in order and keep the first its forward accepts; a contract
    ``traced`` from real calls (`fuzzgrad.integrations.scan.trace`) is tried first."""
    if traced is not None:
        inference = Inference(None)
        if _accepts(cls, name, traced, inference):
            inference.contract = traced
            return _settle(cls, name, inference)
        rest = infer(cls, name)
        rest.tried[:0] = inference.tried
        return rest
    params = required_parameters(cls)
    if params is None:
        return Inference(None, [("signature", "forward takes *args or has no signature")])
    candidates = families(params)
    if not candidates:
        return Inference(None, [("signature", "forward takes no tensor argument")], params)
    inference = Inference(None, parameters=params)
    by_family = {c.family: c for c in candidates}
    for contract in candidates:
        if inference.contract is not None and contract.family != GENERALISES.get(
            inference.contract.family
        ):
            continue
        if _accepts(cls, name, contract, inference):
            inference.contract = contract
            wider = by_family.get(GENERALISES.get(contract.family, ""))
            if wider is None:
                break
    return _settle(cls, name, inference)


def _convention_problem(cls: Any, name: str, contract: Contract) -> str | None:
    import torch

    from fuzzgrad.integrations.scan.oracle import convention_problem
    from fuzzgrad.registry.target import make_target

    target = make_target(cls, name=name, inputs=contract.specs(), dtypes=[torch.float64])
    return convention_problem(target)


def _settle(cls: Any, name: str, inference: Inference) -> Inference:
    """The kept contract's oracle (autograd of the forward, or differences), unless the
    backward answers in another parametrisation: then no contract, saying why."""
    contract = inference.contract
    if contract is None:
        return inference
    convention = _convention_problem(cls, name, contract)
    if convention is not None:
        inference.tried.append((f"{contract.family} (kept)", f"not judged: {convention}"))
        inference.contract = None
        return inference
    inference.differences = _own_derivative_problem(cls, name, contract)
    return inference


def _own_derivative_problem(cls: Any, name: str, contract: Contract) -> str | None:
    import torch

    from fuzzgrad.integrations.scan.oracle import own_derivative_problem
    from fuzzgrad.registry.target import make_target

    target = make_target(cls, name=name, inputs=contract.specs(), dtypes=[torch.float64])
    return own_derivative_problem(target)


def _accepts(cls: Any, name: str, contract: Contract, inference: Inference) -> bool:
    """Whether the forward runs on enough draws of ``contract`` (noted in ``inference.tried``)."""
    ok, drawn, why = _trial(cls, name, contract)
    if drawn == 0:
        inference.tried.append((contract.family, f"no case drawn ({why})"))
        return False
    inference.tried.append((contract.family, f"forward and backward ran on {ok}/{drawn}" + why))
    return ok >= ACCEPT * drawn


def _trial(cls: Any, name: str, contract: Contract) -> tuple[int, int, str]:
    """How many of `DRAWS` derandomized cases of ``contract`` the forward runs on, of how many
    drawn, and the last error seen (for the report)."""
    from hypothesis import given

    from fuzzgrad.errors import FuzzgradError
    from fuzzgrad.integrations.scan.oracle import draws
    from fuzzgrad.registry.target import make_target
    from fuzzgrad.strategies import cases

    try:
        target = make_target(cls, name=name, inputs=contract.specs(), dtypes=_dtypes())
    except FuzzgradError as exc:
        return 0, 0, str(exc)
    counts = {"ok": 0, "drawn": 0}
    last: list[str] = []

    @draws(DRAWS)
    @given(cases(target))
    def trial(case: Any) -> None:
        counts["drawn"] += 1
        if _runs(target.fn, _leaves(case.args), last):
            counts["ok"] += 1

    trial()
    why = f" (last error: {last[-1]})" if last and counts["ok"] < counts["drawn"] else ""
    return counts["ok"], counts["drawn"], why


def _runs(fn: Callable[..., Any], args: tuple, last: list[str]) -> bool:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args)
    except Exception as exc:  # noqa: BLE001 - the forward's own error is the trial's outcome
        last.append(_first_line(exc))
        return False
    outs = out if isinstance(out, tuple) else (out,)
    if not any(isinstance(o, torch.Tensor) for o in outs):
        return False
    return _backward_runs(args, outs, last)


def _backward_runs(args: tuple, outs: tuple, last: list[str]) -> bool:
    """Whether the backward runs on the call (or there is none to run): a contract on which the
    backward raises for most draws is one the Function does not mean (a forward that accepts
    any shape and a backward that asserts 3 columns), not a bug to report on every case."""
    import torch

    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    diff = [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
    if not leaves or not diff:
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.autograd.grad(diff, leaves, [torch.ones_like(o) for o in diff], allow_unused=True)
    except Exception as exc:  # noqa: BLE001 - the backward's own error is the trial's outcome
        last.append(f"backward raised {_first_line(exc)}")
        return False
    return True


def _leaves(args: tuple) -> tuple:
    """The case's arguments, every floating tensor a leaf that requires grad (what the backward
    is run on)."""
    import torch

    return tuple(
        a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
        for a in args
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"


def _dtypes() -> tuple[Any, ...]:
    import torch

    return (torch.float64, torch.float32)


#: Share of fuzzed cases the forward may reject (discarded) before a scanned target is an
#: error: the trial accepted the contract on `ACCEPT` of its draws, and the fuzzer draws more
#: edge cases (0-d, empty) than the trial does.
MAX_DISCARDS = 0.5


def snippet(function: str, name: str, inference: Inference) -> str:
    """A ready-to-edit registration of ``function`` (an expression) with the inferred contract."""
    contract = inference.contract
    assert contract is not None
    lines = [
        "fg.register(",
        f"    {function},",
        f"    name={name!r},",
        f"    inputs=[{', '.join(contract.inputs)}],  # inferred: {contract.family}",
        f"    dtypes={DTYPES},",
        f"    properties={list(PROPERTIES)!r},  # what holds under any contract; widen it",
        f"    max_discards={MAX_DISCARDS},  # cases the forward rejects; narrow inputs= instead",
    ]
    if inference.differences:
        why = inference.differences.replace("\n", " ")
        lines.append(f'    oracle="differences",  # {why}')
    return "\n".join([*lines, ")"])
