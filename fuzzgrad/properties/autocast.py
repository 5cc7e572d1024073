"""``autocast``: under ``torch.autocast`` (CPU bfloat16; CUDA float16 on a GPU), a Function that
declares ``torch.amp.custom_fwd``/``custom_bwd`` (or is registered with ``autocast=True``) gives
outputs and gradients consistent with what it declares: with ``cast_inputs=D`` (for the case's
device type) it computes in ``D``, forward and backward, so it is judged like a ``D`` Function
(a backward without ``custom_bwd`` that runs its matmuls in bfloat16 fails); without, it matches
the reference run under the same autocast. Checked on float32 cases, with the forward inside the
autocast region and the backward in both places people put it: inside the region (a training
step that calls ``backward()`` there) and after it, as AMP's recipes do (``with autocast(): loss
= ...`` then ``loss.backward()``), where a backward without ``custom_bwd`` runs without autocast
and one that mixes the forward's bfloat16 with float32 raises. A Function that declares
``custom_fwd`` for another device type only is held to the reference inside the region alone:
this device's autocast is outside what it declares."""

from __future__ import annotations

from typing import Any

import torch

from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.properties.base import Property, Skip
from fuzzgrad.verdict.compare import compare

#: The autocast dtype per device type.
AUTOCAST = {"cpu": torch.bfloat16, "cuda": torch.float16}
#: Where the backward runs, relative to the autocast region its forward ran in.
PLACEMENTS: tuple[str, ...] = ("inside", "after")


def amp_declaration(cls) -> dict[str, Any] | None:
    """What a Function's ``torch.amp.custom_fwd`` says (``device_type``, ``cast_inputs``), and
    whether its backward has ``custom_bwd`` (``"bwd"``); None where it uses neither. Read from
    the decorators' closures (torch's own wrappers in ``torch/amp/autocast_mode.py``)."""
    out: dict[str, Any] = {}
    for name, wrapper in (("forward", "decorate_fwd"), ("backward", "decorate_bwd")):
        fn: Any = getattr(cls, name, None)
        code = getattr(fn, "__code__", None)
        if code is None or code.co_name != wrapper or "autocast_mode" not in code.co_filename:
            continue
        cells = dict(zip(code.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
        if name == "forward":
            out.update(device_type=cells.get("device_type"), cast_inputs=cells.get("cast_inputs"))
        else:
            out["bwd"] = True
    return out or None


class Autocast(Property):
    name = "autocast"
    order = 85
    needs = frozenset({"grads"})  # its gradients are judged against the reference's
    summary = (
        "under `torch.autocast`, outputs and gradients match what the Function declares with "
        "`custom_fwd`/`custom_bwd` (when it uses them, or with `autocast=True`)"
    )

    def applies(self, target) -> bool:
        cls = target.autograd_function
        return bool(target.options.get("autocast")) or (
            cls is not None and amp_declaration(cls) is not None
        )

    def check(self, run) -> None:
        case = run.case
        device = str(case.device).split(":")[0]
        if case.dtype != torch.float32 or device not in AUTOCAST or not run.wrt:
            raise Skip("autocast applies to float32 CPU or CUDA cases")
        cls = run.target.autograd_function
        declared = (amp_declaration(cls) if cls is not None else None) or {}
        cast = declared.get("cast_inputs")
        placements = PLACEMENTS
        if declared.get("device_type") not in (None, device):
            # declared for another device: under this one's autocast it does nothing
            cast, placements = None, PLACEMENTS[:1]
        for placement in placements:
            self._check_placement(run, device, placement, cast, declared)

    def _check_placement(self, run, device: str, placement: str, cast, declared) -> None:
        case, cts, low = run.case, run.cotangents, AUTOCAST[device]
        what = f"under torch.autocast({device!r}, dtype={low}), backward {placement} the region"
        hint = "" if declared.get("bwd") or not declared else " (backward has no custom_bwd)"
        try:
            got = _amp_vjp(run.target.fn, _args(run), run.wrt, cts, device, placement)
        except Exception as exc:  # noqa: BLE001
            run.fail(self.name, f"{what}, the Function raised {type(exc).__name__}: {exc}{hint}")
        if cast is not None:
            # It promises to compute in `cast`: judged like a Function of that dtype.
            for kind, values in (("outputs", got.outputs), ("grads", got.grads)):
                found = run.judge.pair(
                    kind,
                    case,
                    run.wrt,
                    cts,
                    values if kind == "outputs" else None,
                    values if kind == "grads" else None,
                    run.reference,
                    run.calibration,
                )
                if found is not None:
                    run.fail(
                        self.name, f"{what}, declared cast_inputs={cast}: {found}{hint}", found
                    )
            return
        # No cast declared: autocast applies inside it as it does to the reference.
        want = _amp_vjp(run.checker.reference, _args(run), run.wrt, cts, device, placement)
        pairs = [(f"output[{k}]", o, w) for k, (o, w) in enumerate(zip(got.outputs, want.outputs))]
        pairs += [(f"grad[input={i}]", got.grads[i], want.grads[i]) for i in run.wrt]
        for path, o, w in pairs:
            if not isinstance(w, torch.Tensor):
                continue
            m, _ = compare(
                path, o, w.detach(), dtype=low, check_dtype=w.dtype if path[0] == "o" else None,
                overrides=run.target.tolerances,
            )  # fmt: skip
            if m is not None:
                run.fail(
                    self.name, f"{what}: {m} (against the reference under the same autocast)", m
                )


def _args(run) -> list:
    """The case's arguments, fresh copies for an in-place Function (each call writes them)."""
    if run.nonleaf:
        return [a.clone() if isinstance(a, torch.Tensor) else a for a in run.snapshot]
    return list(run.case.args)


def _amp_vjp(fn, args, wrt, cts, device: str, placement: str):
    """`torch_vjp` of ``fn`` with its forward inside an autocast region of ``device`` and its
    backward inside the region or after it (``placement``)."""

    def region():
        return torch.autocast(device, dtype=AUTOCAST[device])

    if placement == "inside":
        with region():
            return torch_vjp(fn, args, wrt, cts)
    return torch_vjp(fn, args, wrt, cts, forward_context=region)


__all__ = ["AUTOCAST", "PLACEMENTS", "Autocast", "amp_declaration"]
