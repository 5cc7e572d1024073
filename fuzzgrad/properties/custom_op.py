"""``custom_op``: for operators made with ``torch.library.custom_op`` (``register_autograd``,
``register_fake``), what ``torch.library.opcheck`` checks, on every drawn case rather than on a
few fixed samples: the schema (declared mutations and aliasing match what the kernel does), the
autograd registration (gradients flow through the registered formula, not a fallthrough), and
the fake kernel (its output shapes, dtypes and strides match the real kernel's)."""

from __future__ import annotations

import torch

from fuzzgrad.oracles.evaluation import floating, layout_copy
from fuzzgrad.properties.base import Property
from fuzzgrad.registry.target import is_custom_op

#: The checks of ``torch.library.opcheck`` run on each case (``test_aot_dispatch_dynamic``
#: compiles: it belongs with the opt-in ``compile`` property).
OPCHECKS = ("test_schema", "test_autograd_registration", "test_faketensor")


class CustomOp(Property):
    name = "custom_op"
    order = 12
    summary = (
        "operators from `torch.library.custom_op`: schema, autograd registration and fake "
        "kernel agree with the real kernel, as `torch.library.opcheck` checks, on every case"
    )

    def applies(self, target) -> bool:
        return is_custom_op(target.fn)

    def check(self, run) -> None:
        # copies with the case's own layouts (a fake kernel's strides may differ only for a
        # strided input), so an operator that writes into its inputs spoils no other check
        args = [
            layout_copy(a).requires_grad_(i in run.wrt) if floating(a) else layout_copy(a)
            for i, a in enumerate(run.snapshot if run.nonleaf else run.case.args)
        ]
        args = [copyable(a) for a in args]
        for util in OPCHECKS:
            try:
                torch.library.opcheck(run.target.fn, tuple(args), test_utils=(util,))
            except Exception as exc:  # noqa: BLE001 - OpCheckError and what the kernels raise
                message = " ".join(str(exc).split())[:600]
                run.fail(self.name, f"torch.library.opcheck {util} fails: {message}")


def copyable(t):
    """``t``, or where opcheck cannot copy it, an equal tensor that it can.

    opcheck copies each input into a storage of ``sum((size - 1) * stride) + 32`` elements
    (``torch._dynamo.utils.clone_input``), a negative count for a zero-size tensor with two or
    more empty dims: a contiguous ``(0, 0, 5, 7)`` failed every check with "Trying to create
    tensor with negative dimension -4", whatever the operator. Such a tensor addresses no
    element, so its empty dims get stride 0 (the other strides are kept).
    """
    if not isinstance(t, torch.Tensor) or t.numel() or t.dim() < 2:
        return t
    strides = tuple(0 if size == 0 else stride for size, stride in zip(t.shape, t.stride()))
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device)
    return out.requires_grad_(t.requires_grad)
