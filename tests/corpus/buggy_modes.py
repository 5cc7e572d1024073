"""Planted bugs in modes of use a plain check never exercises: an output wrongly marked
non-differentiable, a forward that takes a wrong branch when nothing needs grad, a backward that
mishandles the None it gets for an unused output. See `correct_modes` for correct twins."""

import importlib

import jax
import jax.numpy as jnp
import torch
from torch.autograd import Function

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._amp import matmul_cast
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    matmul_cast = importlib.import_module("_amp").matmul_cast


@fg.register(
    reference=lambda x: (x.sin(), x.cos()),
    jax_reference=lambda x: (jnp.sin(x), jnp.cos(x)),
    planted={
        "property": "forward",
        "bug_class": "a differentiable output marked non-differentiable",
        "needs": "none",
    },
)
class SinCosMarksCosNonDifferentiable(Function):
    """sin and cos, with cos marked non-differentiable by mistake: every gradient through it is
    silently dropped (its cotangent never reaches backward, so the vjp still matches)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        s, c = x.sin(), x.cos()
        ctx.mark_non_differentiable(c)
        return s, c

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        return gs * x.cos()


@fg.register(
    reference=lambda x: torch.nn.functional.softplus(x),
    jax_reference=lambda x: jnp.logaddexp(x, 0.0),
    planted={
        "property": "no_grad",
        "bug_class": "an inference branch with another formula",
        "needs": "none",
    },
)
class SoftplusInferenceBranch(Function):
    """softplus whose forward takes a 'fast' branch when no input needs grad: log1p(x) + 1
    instead of log1p(exp(x)). Every check with grad enabled passes."""

    @staticmethod
    def forward(ctx, x):
        if not ctx.needs_input_grad[0]:
            return torch.log1p(x.abs()) + 1
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


@fg.register(
    reference=torch.tanh,
    jax_reference=jnp.tanh,
    planted={"property": "vmap", "bug_class": "vmap rule assumes batch dim 0", "needs": "none"},
)
class TanhVmapAssumesDim0(Function):
    """tanh with a hand-written vmap rule that says the output's batch dim is 0 whatever the
    input's was: right for in_dims=0, wrong for any other batch dim."""

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)

    @staticmethod
    def vmap(info, in_dims, x):
        return TanhVmapAssumesDim0.apply(x), 0


@fg.register(
    reference=lambda x: x**3,
    jax_reference=lambda x: x**3,
    planted={
        "property": "func_transforms",
        "bug_class": "data-dependent control flow in backward (not vmappable)",
        "needs": "none",
    },
)
class CubeBackwardNotVmappable(Function):
    """x ** 3 with generate_vmap_rule, whose backward short-cuts an all-zero grad_output with
    Python control flow on tensor data: fine in a plain backward, an error under vmap (so
    per-sample gradients and jacrev crash)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if bool((g == 0).all()):
            return torch.zeros_like(x)
        return g * 3 * x.pow(2)


@fg.register(
    reference=lambda x, w: x @ w,
    jax_reference=lambda x, w: x @ w,
    inputs=[fg.tensor("m k"), fg.tensor("k n")],
    dtypes=[torch.float32],
    planted={
        "property": "autocast",
        "bug_class": "custom_fwd(cast_inputs=float32) without custom_bwd",
        "needs": "none",
    },
)
class MatmulCastForwardOnly(matmul_cast("cpu", custom_bwd=False)):
    """x @ w that promises float32 under autocast (custom_fwd with cast_inputs), but whose
    backward lacks custom_bwd: called inside the autocast region, its matmuls run in bfloat16."""


def _gelu_erf(x):
    return 0.5 * x * (1 + torch.erf(x / 2**0.5))


@fg.register(
    reference=_gelu_erf,
    jax_reference=lambda x: 0.5 * x * (1 + jax.scipy.special.erf(x / 2**0.5)),
    properties=["forward", "vjp", "compile"],
    compile_backend="eager",  # dynamo tracing is what matters here, not code generation
    planted={
        "property": "compile",
        "bug_class": "a compile-only fallback with another formula",
        "needs": "none",
    },
)
class GeluCompileFallback(Function):
    """GELU whose forward, when torch.compile traces it, takes a 'portable' fallback: the tanh
    approximation instead of erf. Every eager check passes."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        if torch.compiler.is_compiling():
            return torch.nn.functional.gelu(x, approximate="tanh")
        return _gelu_erf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        cdf = 0.5 * (1 + torch.erf(x / 2**0.5))
        return g * (cdf + x * torch.exp(-0.5 * x * x) / (2 * torch.pi) ** 0.5)


@fg.register(
    reference=lambda x: (x.sin(), x.cos()),
    jax_reference=lambda x: (jnp.sin(x), jnp.cos(x)),
    planted={
        "property": "vjp",
        "bug_class": "an unused output's None gradient replaced by ones",
        "needs": "unused_outputs",
    },
)
class SinCosUnusedOutputAsOnes(Function):
    """sin and cos with set_materialize_grads(False), whose backward stands in ones for the
    gradient of an unused output (it should add nothing): right whenever both outputs are
    used."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x.sin(), x.cos()

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        gs = torch.ones_like(x) if gs is None else gs
        gc = torch.ones_like(x) if gc is None else gc
        return gs * x.cos() - gc * x.sin()
