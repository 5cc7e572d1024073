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
        for util in OPCHECKS:
            try:
                torch.library.opcheck(run.target.fn, tuple(args), test_utils=(util,))
            except Exception as exc:  # noqa: BLE001 - OpCheckError and what the kernels raise
                message = " ".join(str(exc).split())[:600]
                run.fail(self.name, f"torch.library.opcheck {util} fails: {message}")
