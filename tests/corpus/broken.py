"""Broken registrations: each Function is right, but its registration is wrong in a way that
must be flagged, never passed quietly (``broken["flag"]`` says how: ``registration`` exits 2,
``discards`` ends the target as an error, ``reference_disagreement`` is a finding).

See tests/test_integrity.py, which runs each and checks the flag and the words of its message.
"""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


class _Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.cos()


class _SinAndCos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        return gs * x.cos() - gc * x.sin()


class _Mul(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return (g * y).sum_to_size(x.shape), (g * x).sum_to_size(y.shape)


fg.register(
    _SinAndCos,
    name="ReferenceReturnsOneOutput",
    reference=lambda x: x.sin(),  # forgot the second output
    jax_reference=lambda x: jnp.sin(x),
    broken={"flag": "registration", "words": ["returns 1 output(s), the Function 2"]},
)

fg.register(
    _Sin,
    name="ReferenceOfAnotherKind",
    reference=lambda x: x > 0,  # a mask, not the math
    broken={"flag": "registration", "words": ["another kind", "bool"]},
)

fg.register(
    _Sin,
    name="JaxReferenceShapeDiffers",
    reference=lambda x: x.sin(),
    jax_reference=lambda x: jnp.sin(x).reshape(-1),  # flattens 0-d and n-d inputs alike
    inputs=[fg.tensor("a b")],
    broken={"flag": "registration", "words": ["disagree", "shapes"]},
)

fg.register(
    _Mul,
    name="ReferenceRaisesOnValidInputs",
    # the Function broadcasts (m, n) with (n,), the reference wants equal shapes
    reference=lambda x, y: x * y if x.shape == y.shape else torch.linalg.solve(x, y),
    inputs=[fg.tensor("m n"), fg.tensor("n")],
    broken={"flag": "discards", "words": ["discarded", "reference raised"]},
)

fg.register(
    _Sin,
    name="WrongTorchReference",
    reference=lambda x: x.sin() + 0.1 * x**3,  # a wrong torch reference ...
    jax_reference=lambda x: jnp.sin(x),  # ... hidden behind a right JAX one
    broken={"flag": "reference_disagreement", "words": ["torch gives", "JAX gives"]},
)

fg.register(
    _Sin,
    name="WrongJaxReference",
    reference=lambda x: x.sin(),
    jax_reference=lambda x: jnp.sin(x) * 1.01,  # a wrong JAX reference behind a right one
    broken={"flag": "reference_disagreement", "words": ["torch gives", "JAX gives"]},
)

fg.register(
    _Sin,
    name="NoPropertyApplies",
    reference=lambda x: x.sin(),
    properties=["vmap", "forward_ad"],  # the Function defines neither vmap nor jvp
    broken={"flag": "registration", "words": ["none of the properties", "applies"]},
)
