"""``grad_meta``: what ``backward`` returns has each input's shape, dtype and device *before*
autograd silently sums or casts it (double backward and torch.func callers get it raw).

A gradient of a shape that autograd sums to its input's (``sum_to``: the input's shape
broadcasts to it, as a ``(b, 1)`` gradient of a 0-d parameter does) is no failure: autograd's
engine sums it for every caller, and torch.func's transforms do as well (``reductify`` in
``torch/_functorch/autograd_function.py``; jacrev, vmap of vjp, grad of vmap and double backward
give the same numbers). It is counted as a note (`SUMMED_SHAPE`); a wrong value after the sum
is the ``vjp`` property's, and a transform that breaks on it ``func_transforms``'.

For a plain callable that calls the Function (``Target.wraps``), the Function's own inputs are
found through its graph node: each gradient is held to the input it belongs to, where that is
one of the callable's arguments as passed (a leaf), whatever the callable bound or reordered."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import as_tuple, floating
from fuzzgrad.properties.base import Property, Skip

#: The note counted (in `fuzzgrad.verdict.stats.Stats.skipped`) for a case whose backward returned
#: a gradient of a shape autograd sums to its input's.
SUMMED_SHAPE = "grad_meta: a gradient of a shape autograd sums to its input's (noted, not failed)"


def sums_to(grad: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether autograd's engine sums a gradient of shape ``grad`` to an input of ``shape``
    (the input's shape broadcasts to the gradient's: ``is_expandable_to``), rather than
    raising "returned an invalid gradient"."""
    try:
        return tuple(torch.broadcast_shapes(shape, grad)) == tuple(grad)
    except RuntimeError:
        return False


class GradMeta(Property):
    name = "grad_meta"
    order = 50  # last of the first-order checks: calling backward by hand may have side effects
    needs = frozenset({"grads", "retain"})
    summary = (
        "what `backward` returns has each input's dtype and device *before* autograd silently "
        "casts it, and a shape autograd can sum to the input's"
    )

    def applies(self, target) -> bool:
        return target.autograd_function is not None

    def check(self, run) -> None:
        if not run.grads_wanted:
            raise Skip("nothing to differentiate")
        cls = run.target.autograd_function
        outs, cts = run.outputs, run.cotangents
        node = next((o.grad_fn for o in outs if isinstance(o, torch.Tensor) and o.grad_fn), None)
        if node is None or type(node).__name__ != f"{cls.__name__}Backward":
            raise Skip("the last node is not the Function's")  # a wrapper adds ops after it
        grads_in = [
            c.clone() if c is not None else (torch.zeros_like(o) if floating(o) else None)
            for o, c in zip(outs, cts)
        ]
        try:
            raw = as_tuple(node.apply(*grads_in))
        except Exception:  # noqa: BLE001 - the vjp property reports a crashing backward
            raise Skip("backward raised") from None
        if run.target.function is not None:
            pairs = [(i, raw[i] if i < len(raw) else None, run.called[i]) for i in run.wrt]
        else:
            pairs = _wrapped_pairs(node, raw, run.called, run.wrt)
            if not pairs:
                raise Skip("no argument reaches the Function as it was passed")
        summed = False
        for i, g, x in pairs:
            if not isinstance(g, torch.Tensor):
                continue
            for what, got, want in (
                ("shape", tuple(g.shape), tuple(x.shape)),
                ("dtype", g.dtype, x.dtype),
                ("device", g.device, x.device),
            ):
                if what == "shape" and got != want and sums_to(got, want):
                    summed = True
                elif got != want:
                    why = (
                        "autograd cannot sum it to the input's shape (a backward call raises)"
                        if what == "shape"
                        else "autograd silently casts it, but other callers (double backward, "
                        "torch.func) may not"
                    )
                    run.fail(
                        self.name,
                        f"backward returned grad[input={i}] with {what} "
                        f"{got} for an input with {what} {want}; {why}",
                    )
        if summed:
            run.checker.stats.skipped[SUMMED_SHAPE] += 1


def _wrapped_pairs(node, raw, called, wrt) -> list:
    """(argument index, gradient, argument) for each argument of a wrapping callable that the
    Function received as is: the Function's inputs that need grad are its graph node's
    ``needs_input_grad`` positions and, in the same order, its non-empty ``next_functions``,
    whose accumulators hold the leaves they came from."""
    positions = [p for p, need in enumerate(getattr(node, "needs_input_grad", ())) if need]
    edges = [fn for fn, _ in node.next_functions if fn is not None]
    if len(positions) != len(edges):
        return []
    pairs = []
    for p, edge in zip(positions, edges):
        leaf = getattr(edge, "variable", None)  # an AccumulateGrad: the leaf itself
        i = next((i for i in wrt if called[i] is leaf), None) if leaf is not None else None
        if i is not None and p < len(raw):
            pairs.append((i, raw[p], leaf))
    return pairs
