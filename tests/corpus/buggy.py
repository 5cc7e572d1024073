"""Planted bugs, part 1: wrong formulas and outputs, gradient metadata, requires_grad subsets,
impurity and nondeterminism.

Each Function is wrong in exactly one way, the way people get it wrong in practice, while its
``reference`` and ``jax_reference`` are right. ``planted`` names the property that must catch the
bug, a short label for the mistake, and the one input factor the bug needs to show (``"none"``:
the simplest input shows it). Meta-tests fuzz these and assert that each is caught by that
property, shrunk, and diagnosed with that factor. Bugs that need a particular layout, shape, value
or dtype live in `buggy_layout`; second-order, forward-mode and vmap bugs in `buggy_higher`.
"""

import itertools

import jax
import jax.numpy as jnp
import jax.scipy.special
import torch
import torch.nn.functional as F
from torch.autograd import Function

import fuzzgrad as fg

# --- wrong formulas: any input shows them -------------------------------------------------------


@fg.register(
    reference=lambda x: torch.cos(x),
    jax_reference=lambda x: jnp.cos(x),
    planted={"property": "vjp", "bug_class": "sign flip", "needs": "none"},
)
class CosSignFlip(Function):
    """cos, whose backward forgot that d cos = -sin."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.cos()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.sin()


@fg.register(
    reference=lambda x: 1.7159 * torch.tanh(x * (2 / 3)),
    jax_reference=lambda x: 1.7159 * jnp.tanh(x * (2 / 3)),
    planted={"property": "vjp", "bug_class": "missing factor", "needs": "none"},
)
class ScaledTanhMissingFactor(Function):
    """LeCun's scaled tanh; backward drops the inner 2/3 of the chain rule."""

    @staticmethod
    def forward(ctx, x):
        t = torch.tanh(x * (2 / 3))
        ctx.save_for_backward(x)
        return 1.7159 * t

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        t = torch.tanh(x * (2 / 3))
        return grad * 1.7159 * (1 - t * t)


@fg.register(
    reference=lambda x: F.silu(x),
    jax_reference=lambda x: jax.nn.silu(x),
    planted={"property": "vjp", "bug_class": "missing product-rule term", "needs": "none"},
)
class SiluMissingTerm(Function):
    """SiLU x * sigmoid(x); backward keeps only sigmoid(x), forgetting x * sigmoid'(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


@fg.register(
    reference=lambda x, y: x / y,
    jax_reference=lambda x, y: x / y,
    inputs=[fg.tensor(), fg.tensor(low=0.5, high=4.0)],
    planted={"property": "vjp", "bug_class": "swapped input gradients", "needs": "none"},
)
class DivSwappedGrads(Function):
    """x / y, returning the two gradients in the wrong order."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x / y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        grad_x = grad / y
        grad_y = -grad * x / (y * y)
        return grad_y, grad_x


@fg.register(
    reference=lambda x, b: x + b,
    jax_reference=lambda x, b: x + b,
    inputs=[fg.tensor("*batch n"), fg.tensor("n")],
    planted={"property": "vjp", "bug_class": "mean instead of sum", "needs": "none"},
)
class BiasAddMeanGrad(Function):
    """x + bias; the bias gradient averages over the batch instead of summing."""

    @staticmethod
    def forward(ctx, x, bias):
        return x + bias

    @staticmethod
    def backward(ctx, grad):
        batch_dims = tuple(range(grad.dim() - 1))
        grad_bias = grad.mean(batch_dims) if batch_dims else grad
        return grad, grad_bias


# --- wrong outputs ------------------------------------------------------------------------------


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    planted={"property": "forward", "bug_class": "reduces over the wrong dim", "needs": "none"},
)
class SoftmaxWrongDim(Function):
    """Softmax over the classes, written with dim=0 (right only for 1-D input)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.softmax(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(0, keepdim=True))


@fg.register(
    reference=lambda x: torch.erf(x),
    jax_reference=lambda x: jax.scipy.special.erf(x),
    planted={"property": "forward", "bug_class": "output dtype not cast back", "needs": "none"},
)
class ErfFloat32Output(Function):
    """erf through a float32-only kernel; the output is never cast back to the input's dtype."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.erf(x.float())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.to(x.dtype) * (2 / torch.pi**0.5) * torch.exp(-x * x)


# --- gradient metadata: autograd silently repairs these ------------------------------------------


@fg.register(
    reference=lambda x: torch.sigmoid(x),
    jax_reference=lambda x: jax.nn.sigmoid(x),
    planted={
        "property": "grad_meta",
        "bug_class": "grad dtype not cast back",
        "needs": "dtype:float32",
    },
)
class SigmoidFloat64Grad(Function):
    """sigmoid whose backward works in float64 "for accuracy" and returns a float64 gradient."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x.double())
        return grad.double() * s * (1 - s)


# --- requires_grad subsets ----------------------------------------------------------------------


@fg.register(
    reference=lambda x, y: x * torch.sigmoid(y),
    jax_reference=lambda x, y: x * jax.nn.sigmoid(y),
    planted={
        "property": "requires_grad_subsets",
        "bug_class": "needed grads packed positionally",
        "needs": "requires_grad",
    },
)
class GateGradList(Function):
    """x * sigmoid(y); backward collects only the needed grads, so they land in the wrong slots."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * torch.sigmoid(y)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        s = torch.sigmoid(y)
        grads = []
        if ctx.needs_input_grad[0]:
            grads.append(grad * s)
        if ctx.needs_input_grad[1]:
            grads.append(grad * x * s * (1 - s))
        return (*grads, *[None] * (2 - len(grads)))


@fg.register(
    reference=lambda x, y: x * torch.tanh(y),
    jax_reference=lambda x, y: x * jnp.tanh(y),
    planted={
        "property": "requires_grad_subsets",
        "bug_class": "needs_input_grad indices swapped",
        "needs": "requires_grad",
    },
)
class TanhGateIndexSwap(Function):
    """x * tanh(y); backward tests needs_input_grad[1] for x's gradient and [0] for y's."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * torch.tanh(y)

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        t = torch.tanh(y)
        grad_x = grad_y = None
        if ctx.needs_input_grad[1]:
            grad_x = grad * t
        if ctx.needs_input_grad[0]:
            grad_y = grad * x * (1 - t * t)
        return grad_x, grad_y


# --- purity: right values, but something that is not the Function's own is modified -------------


@fg.register(
    reference=lambda x: F.softsign(x),
    jax_reference=lambda x: jax.nn.soft_sign(x),
    planted={"property": "purity", "bug_class": "mutates grad_output", "needs": "none"},
)
class SoftsignInplaceGrad(Function):
    """softsign; backward divides grad_output in place "to save memory"."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x / (1 + x.abs())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.div_((1 + x.abs()) ** 2)


@fg.register(
    reference=lambda x: torch.softmax(x, -1),
    jax_reference=lambda x: jax.nn.softmax(x, axis=-1),
    inputs=[fg.tensor("*batch n")],
    planted={"property": "purity", "bug_class": "forward mutates its input", "needs": "none"},
)
class SoftmaxInplaceShift(Function):
    """Softmax that shifts its input by logsumexp with ``-=``, which mutates the caller's tensor."""

    @staticmethod
    def forward(ctx, x):
        x -= torch.logsumexp(x, -1, keepdim=True)
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(-1, keepdim=True))


@fg.register(
    reference=lambda x: torch.exp(x),
    jax_reference=lambda x: jnp.exp(x),
    planted={"property": "purity", "bug_class": "mutates a saved output", "needs": "none"},
)
class ExpReuseSavedOutput(Function):
    """exp; backward reuses the saved output's buffer for the gradient, clobbering the output."""

    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y.mul_(grad)


# --- determinism --------------------------------------------------------------------------------

_STEPS = itertools.count(1)


@fg.register(
    reference=lambda x: torch.tanh(x),
    jax_reference=lambda x: jnp.tanh(x),
    planted={"property": "determinism", "bug_class": "gradient noise", "needs": "none"},
)
class TanhGradientNoise(Function):
    """tanh with annealed gradient noise (Neelakantan et al.) far below any tolerance."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        grad_x = grad * (1 - y * y)
        sigma = 1e-10 / (1 + next(_STEPS)) ** 0.55
        return grad_x + sigma * grad_x.abs() * torch.randn_like(grad_x)
