"""`CaseRun`: one case's evaluations, made once and on demand, shared by the properties.

The Function is called first (its outputs, the leaves that require grad, what it was actually
called with); everything else is computed when a property first asks for it: the cotangents,
the float64 reference, the reference at the case's dtype (calibration), the Function's backward,
its float32 run (``precision="fused"``). A property reports through `CaseRun.fail`.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import (
    HALF,
    Evaluation,
    as_float32,
    as_tuple,
    floating,
    kept_outputs,
    saved_as,
)
from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.properties.base import Skip, failure_type
from fuzzgrad.verdict.compare import Mismatch, compare
from fuzzgrad.verdict.judge import Discard
from fuzzgrad.verdict.overflow import same_each

#: What autograd says when a Function writes into an input it was given as is (see
#: `CaseRun.call`).
_WRITES_INTO_INPUTS = (
    "leaf Variable that requires grad",
    "more than one element of the written-to tensor refers to a single memory location",
)


def same_bits(a: Any, b: Any) -> bool:
    """Whether two results are bit for bit the same (NaN equal to NaN); None matches None."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return (a is None) == (b is None)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not (a.dtype.is_floating_point or a.dtype.is_complex):
        return bool(torch.equal(a, b))
    return bool(same_each(a, b).all())


#: Why a case is discarded whose expanded input an in-place Function writes (`CaseRun.start`).
WRITES_EXPANDED = "an input written in place (mark_dirty) is expanded (stride 0)"


def expanded(t: Any) -> bool:
    """Whether a tensor has elements that share memory (a stride-0 dim of size > 1)."""
    return isinstance(t, torch.Tensor) and any(
        st == 0 and n > 1 for st, n in zip(t.stride(), t.shape)
    )


def _stored(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` with each dim that is stride 0 in ``like`` cut to its first slice: where ``like``
    is ``t``, a view of what ``t`` stores, one that can be written."""
    return t[tuple(slice(0, 1) if st == 0 else slice(None) for st in like.stride())]


def restore(args, snapshot) -> None:
    """Write the values of ``snapshot`` back into the tensors of ``args`` that changed (an
    expanded one through its stored slice: torch refuses a write into shared memory)."""
    with torch.no_grad():
        for a, a0 in zip(args, snapshot):
            if isinstance(a, torch.Tensor) and not same_bits(a, a0):
                _stored(a, a).copy_(_stored(a0, a))


def materialise(case, outputs) -> list[torch.Tensor | None]:
    """The cotangents a case uses for these outputs (None for non-differentiable ones)."""
    fixed = case.notes.get("fixed_cotangents")
    if fixed is not None:  # a replayed case brings its exact cotangents
        return [
            c if isinstance(o, torch.Tensor) and o.requires_grad else None
            for o, c in zip(outputs, fixed)
        ]
    live = [
        k
        for k, o in enumerate(outputs)
        if isinstance(o, torch.Tensor) and floating(o) and o.requires_grad
    ]
    unused = {k for k in live if case.unused_outputs >> k & 1}
    if len(unused) == len(live):  # a backward needs at least one output used
        unused = set()
    return [
        case.cotangent_for(k, o) if k in live and k not in unused else None
        for k, o in enumerate(outputs)
    ]


class CaseRun:
    """The evaluations of one case (see the module docstring)."""

    def __init__(self, checker, case, wrt: list[int]):
        self.checker = checker
        self.target = checker.target
        self.judge = checker.judge
        self.case = case
        self.wrt = wrt  # the floating inputs that require grad
        self.nonleaf = checker.declared_nonleaf
        self.snapshot = [a.clone() if isinstance(a, torch.Tensor) else a for a in case.args]
        self._grads: list | None = None
        self._grads_error: BaseException | None = None

    # -- the Function's own call ------------------------------------------------------------------
    def call(self, args, wrt, snapshot=None) -> tuple[tuple, list, list]:
        """Call the Function on leaves (views of ``args``) with ``wrt`` requiring grad; return
        its outputs, the leaves and what it was called with.

        A Function found to write into its inputs (autograd refuses its in-place write into a
        leaf that requires grad, or into an input whose elements share memory) is called on
        copies from then on; ``args`` are first restored from ``snapshot`` (their values before
        the call), as the write happened before autograd refused it."""
        leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        for i in wrt:
            leaves[i] = leaves[i].requires_grad_(True)
        called = leaves
        if self.nonleaf:
            # In-place (mark_dirty) Functions get copies: a leaf that requires grad cannot be
            # modified in place, and the case's own inputs must stay intact for the references.
            called = [a.clone() if isinstance(a, torch.Tensor) else a for a in leaves]
        try:
            with torch.enable_grad():
                outputs = as_tuple(self.target.fn(*called))
        except RuntimeError as exc:
            if not self.nonleaf and any(m in str(exc) for m in _WRITES_INTO_INPUTS):
                self.nonleaf = True
                if snapshot is not None:
                    restore(args, snapshot)
                return self.call(args, wrt)
            raise
        return outputs, leaves, called

    def start(self) -> None:
        """Call the Function on the case (raising what it raises)."""
        case, full = self.case, self.wrt
        outs, leaves, called = self.call(case.args, full, self.snapshot)
        if not self.nonleaf and any(o is c for o in outs for c in called):
            # mark_dirty on an input that does not require grad: undo it, then use copies.
            self.nonleaf = True
            restore(case.args, self.snapshot)
            outs, leaves, called = self.call(case.args, full)
        self.outputs, self.leaves, self.called = outs, leaves, called
        self.judge.nonleaf = self.nonleaf
        if self.nonleaf and any(
            expanded(a) and any(o is c for o in outs) for a, c in zip(case.args, called)
        ):
            # Outside an in-place Function's contract: torch refuses to write into an expanded
            # tensor even for its own in-place ops, and a write through numpy lands
            # several times in one element.
            self.checker.stats.record_discard(WRITES_EXPANDED, self.checker.describe(case))
            raise Discard(WRITES_EXPANDED)
        self.versions = [a._version if isinstance(a, torch.Tensor) else None for a in called]
        self.cotangents = materialise(case, outs)
        case.notes["cotangents"] = self.cotangents
        checker = self.checker
        self.grads_wanted = (
            bool(full) and any(c is not None for c in self.cotangents) and checker.needs("grads")
        )
        self.ref_cotangents = self.cotangents if self.grads_wanted else None
        self.judge.regime_for(full, self.ref_cotangents)
        wants_purity = checker.wants("purity")
        self.output_snapshot = (
            [o.detach().clone() if isinstance(o, torch.Tensor) else o for o in outs]
            if wants_purity
            else None
        )
        self.cotangent_snapshot = (
            [c.clone() if c is not None else None for c in self.cotangents]
            if wants_purity
            else None
        )

    # -- references -------------------------------------------------------------------------------
    @functools.cached_property
    def reference(self) -> Evaluation:
        """The float64 reference (with gradients where a property needs them)."""
        return self.judge.oracle(
            self.case, self.wrt, self.ref_cotangents, torch.float64, self.checker.describe
        )

    @functools.cached_property
    def calibration(self):
        """The reference at the case's own dtype, lazily (None for float64 cases)."""
        return self.judge.calibration(self.case, self.wrt, self.ref_cotangents)

    @functools.cached_property
    def float32_run(self) -> Evaluation | None:
        """``precision="fused"`` in half precision: the Function on the case's inputs and
        cotangents upcast with `as_float32`; None elsewhere, or where that raises (a float32
        crash is the float32 cases' finding)."""
        return self._float32(keep_outputs=False)

    @functools.cached_property
    def float32_kept_run(self) -> Evaluation | None:
        """`float32_run` where each output the Function keeps for its backward (as softmax
        kernels do) is kept rounded to the half dtype, as its half-precision run keeps it
        (`kept_outputs`, one more half-precision forward): asked for only where a backward
        differs from `float32_run`."""
        return self._float32(keep_outputs=True)

    def _float32(self, *, keep_outputs: bool) -> Evaluation | None:
        if not (self.checker.fused and self.case.dtype in HALF):
            return None
        args = [as_float32(a) for a in self.case.args]
        if self.nonleaf:
            args = [a.clone() if floating(a) else a for a in args]
        cts = self.ref_cotangents
        try:
            kept = kept_outputs(self.target.fn, self.case.args, self.wrt) if keep_outputs else []
            with saved_as(kept):
                return torch_vjp(
                    self.target.fn,
                    args,
                    self.wrt,
                    None if cts is None else [as_float32(c) for c in cts],
                )
        except Exception:  # noqa: BLE001
            return None

    # -- the Function's backward ------------------------------------------------------------------
    def backward(self, outs, leaves, wrt, cts, *, retain, prop) -> list:
        """The Function's gradients for ``cts``: one per argument (None where not asked)."""
        pairs = [(o, c) for o, c in zip(outs, cts) if c is not None]
        grads: list[torch.Tensor | None] = [None] * len(self.case.args)
        if not pairs or not wrt:
            return grads
        try:
            got = torch.autograd.grad(
                [o for o, _ in pairs],
                [leaves[i] for i in wrt],
                [c for _, c in pairs],
                allow_unused=True,
                retain_graph=retain,
            )
        except Exception as exc:  # noqa: BLE001
            self.fail(prop, f"backward raised {type(exc).__name__}: {exc}")
        for i, g in zip(wrt, got):
            grads[i] = g
        return grads

    def grads(self, prop: str) -> list:
        """The Function's gradients for the case's cotangents, once per case. The first
        property to ask owns a crash of the backward; later ones are skipped."""
        if self._grads is None:
            if self._grads_error is not None:
                raise Skip("backward raised (reported once)")
            try:
                self._grads = self.backward(
                    self.outputs,
                    self.leaves,
                    self.wrt,
                    self.cotangents,
                    retain=self.checker.needs("retain"),
                    prop=prop,
                )
            except BaseException as exc:
                self._grads_error = exc
                raise
        return self._grads

    def grads_so_far(self) -> list | None:
        """The gradients `grads` computed for this case, if a property asked already (None: not
        computed, or the backward raised)."""
        return self._grads

    # -- verdicts ---------------------------------------------------------------------------------
    def judge_pair(self, kind: str, outputs=None, grads=None, wrt=None, cts=None):
        """`fuzzgrad.verdict.judge.Judge.pair` for this case."""
        return self.judge.pair(
            kind,
            self.case,
            self.wrt if wrt is None else wrt,
            self.cotangents if cts is None else cts,
            outputs,
            grads,
            self.reference,
            self.calibration,
        )

    def check_fused(self, prop, paths, got, want, kept=None) -> None:
        """precision="fused": each half-precision result must be the Function's own float32
        result (`float32_run`) rounded once to the half dtype. Both sides are the Function, so
        no reference's rounding enters; whether the float32 path is right is judged on float32
        cases. A forgotten upcast (half intermediates) is caught. ``kept``: a function giving
        the same results of `float32_kept_run`, which a result that differs from ``want`` may
        match instead (a backward reading the rounded output its Function kept)."""
        alternative = None
        for k, (path, g, w) in enumerate(zip(paths, got, want)):
            if not (isinstance(g, torch.Tensor) and floating(g) and isinstance(w, torch.Tensor)):
                continue
            m, _ = compare(path, g, w.to(g.dtype), fused=True, overrides=self.target.tolerances)
            if m is not None and kept is not None:
                alternative = kept() if alternative is None else alternative
                w = alternative[k] if alternative else None
                if isinstance(w, torch.Tensor):
                    m, _ = compare(
                        path, g, w.to(g.dtype), fused=True, overrides=self.target.tolerances
                    )
            if m is not None:
                self.fail(
                    prop,
                    f"{m} (precision='fused': against the Function's own float32 result, "
                    "rounded once)",
                    m,
                )

    def fail(self, prop: str, message: str, mismatch: Mismatch | None = None):
        """Report that ``prop`` does not hold on this case (raises its failure type)."""
        raise failure_type(prop)(message, mismatch=mismatch, case=self.case)
