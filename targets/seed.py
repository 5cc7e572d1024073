"""The three example Functions of the document fuzzgrad grew from, copied as written.

Two of them have wrong backward passes, kept registered as known failures (``xfail``) so every
run shows the harness catching them:
- `MyActivation`'s backward is not the derivative of its forward (the document says so);
- `MyComplexOp`'s backward multiplies by ``cos(sin(x))`` (``intermediate.cos()``) where the chain
  rule needs ``cos(x)``: the document presents it as correct; fuzzgrad found it on its first run.
"""

import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x: x.sigmoid() * (1 + x.exp()).rsqrt(),
    jax_reference=lambda x: (1 / (1 + jnp.exp(-x))) * (1 + jnp.exp(x)) ** -0.5,
    xfail="backward formula is wrong: it is not the derivative of sigmoid(x) * rsqrt(1 + exp(x))",
)
class MyActivation(Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.sigmoid() * (1 + input.exp()).rsqrt()

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return (
            grad_output
            * (1 - input.sigmoid() ** 2)
            * 0.5
            * (input.exp() + 1) ** (-1.5)
            * (1 + 3 * input.exp())
        )


@fg.register(
    reference=lambda x, y: x * torch.exp(-y),
    jax_reference=lambda x, y: x * jnp.exp(-y),
)
class MyElementWise(Function):
    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * torch.exp(-y)

    @staticmethod
    def backward(ctx, grad_output):
        x, y = ctx.saved_tensors
        grad_x = grad_output * torch.exp(-y)
        grad_y = -grad_output * x * torch.exp(-y)
        return grad_x, grad_y


@fg.register(
    reference=lambda x: x.sin().pow(2),
    jax_reference=lambda x: jnp.sin(x) ** 2,
    xfail="backward uses cos(sin(x)) (intermediate.cos()) where the chain rule needs cos(x)",
)
class MyComplexOp(Function):
    @staticmethod
    def forward(ctx, input):
        intermediate = input.sin()
        output = intermediate.pow(2)
        ctx.save_for_backward(intermediate)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (intermediate,) = ctx.saved_tensors
        grad_intermediate = 2 * intermediate * grad_output
        grad_input = grad_intermediate * intermediate.cos()
        return grad_input
