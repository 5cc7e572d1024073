"""``autocast``: under ``torch.autocast`` (CPU bfloat16; CUDA float16 on a GPU), a Function that
declares ``torch.amp.custom_fwd``/``custom_bwd`` (or is registered with ``autocast=True``) gives
outputs and gradients consistent with what it declares: with ``cast_inputs=D`` (for the case's
device type) it computes in ``D``, forward and backward, so it is judged like a ``D`` Function
(a backward without ``custom_bwd`` that runs its matmuls in bfloat16 fails); without, it matches
the reference run under the same autocast. Checked on float32 cases, forward and backward inside
the autocast region (as a training step that calls ``backward()`` there does)."""

from __future__ import annotations

from typing import Any

import torch

from fuzzgrad.oracles.torch_ref import torch_vjp
from fuzzgrad.properties.base import Property, Skip
from fuzzgrad.verdict.compare import compare

#: The autocast dtype per device type.
AUTOCAST = {"cpu": torch.bfloat16, "cuda": torch.float16}


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
        declared = amp_declaration(cls) if cls is not None else None
        cast = (declared or {}).get("cast_inputs")
        if (declared or {}).get("device_type") not in (None, device):
            cast = None  # declared for another device: under this one's autocast it does nothing
        low = AUTOCAST[device]
        cts = run.cotangents
        args = case.args
        if run.nonleaf:
            args = [a.clone() if isinstance(a, torch.Tensor) else a for a in run.snapshot]
        with torch.autocast(device, dtype=low):
            try:
                got = torch_vjp(run.target.fn, args, run.wrt, cts)
            except Exception as exc:  # noqa: BLE001
                run.fail(
                    self.name, f"under autocast the Function raised {type(exc).__name__}: {exc}"
                )
        what = f"under torch.autocast({device!r}, dtype={low})"
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
                        self.name,
                        f"{what}, declared cast_inputs={cast}: {found}"
                        + ("" if (declared or {}).get("bwd") else " (backward has no custom_bwd)"),
                        found,
                    )
            return
        # No cast declared: autocast applies inside it as it does to the reference.
        with torch.autocast(device, dtype=low):
            want = torch_vjp(run.checker.reference, args, run.wrt, cts)
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


__all__ = ["AUTOCAST", "Autocast", "amp_declaration"]
