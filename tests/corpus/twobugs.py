"""Planted pairs: Functions with two independent bugs in the same property, which must come out
as two findings (each shrunk on its own, with its own signature and reproducer), and one bug
that breaks several properties, which must come out as one finding listing them.

``planted_pair`` lists each bug by what its finding's ``kind`` (`fuzzgrad.verdict.identity`)
must contain; `tests/test_findings.py` checks that each is matched by exactly one finding and
`bench/catch_rates.py --pairs` measures it over seeds. The correct twins are in
`correct_twobugs`. Only torch references: the identity, not the oracle, is under test.
"""

import torch
from hypothesis import strategies as st
from torch.autograd import Function

import fuzzgrad as fg


@fg.register(
    reference=lambda x, dim: (x * x).sum(dim),
    inputs=[fg.tensor(), fg.dim(0)],
    planted_pair=["vjp grad[input=0] | dim<0", "raises RuntimeError in twobugs.py:backward"],
)
class SumSquaresNegativeDimAndRank3(Function):
    """sum(x**2, dim): the backward scales by 3 instead of 2 for a negative dim, and raises on
    a rank-3 input (wrong values and a crash, two findings of ``vjp``)."""

    @staticmethod
    def forward(ctx, x, dim):
        ctx.save_for_backward(x)
        ctx.dim = dim
        return (x * x).sum(dim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        if x.dim() == 3:
            raise RuntimeError("rank-3 inputs are not supported by this backward")
        factor = 3.0 if ctx.dim < 0 else 2.0
        return g.unsqueeze(ctx.dim) * factor * x if x.dim() else g * factor * x, None


_MODES = {"zeros": 2.0, "reflect": 3.0, "replicate": 4.0}


@fg.register(
    reference=lambda x, mode: x * _MODES[mode],
    inputs=[fg.tensor(), st.sampled_from(sorted(_MODES, key=_MODES.get))],
    planted_pair=["vjp grad[input=0] | mode='reflect'", "vjp grad[input=0] | mode='replicate'"],
)
class ModeScaleTwoModesWrong(Function):
    """x times a per-mode constant: the backward is wrong in two of the three modes, each in
    its own way."""

    @staticmethod
    def forward(ctx, x, mode):
        ctx.mode = mode
        return x * _MODES[mode]

    @staticmethod
    def backward(ctx, g):
        if ctx.mode == "reflect":
            return g * 2.0, None  # the zeros mode's constant
        if ctx.mode == "replicate":
            return -g * 4.0, None  # the sign flipped
        return g * 2.0, None


@fg.register(
    reference=lambda x: (torch.sin(x), torch.cos(x)),
    planted_pair=["forward output[0]", "forward output[1]"],
)
class SinCosTwoOutputsWrong(Function):
    """(sin, cos), each output wrong on its own region: sin above 1, cos below -1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        s = torch.where(x > 1, torch.sin(x) + 0.25, torch.sin(x))
        c = torch.where(x < -1, torch.cos(x) - 0.25, torch.cos(x))
        return s, c

    @staticmethod
    def backward(ctx, gs, gc):
        (x,) = ctx.saved_tensors
        return gs * torch.cos(x) - gc * torch.sin(x)


@fg.register(
    reference=lambda x: x * x,
    planted_pair=["vjp grad[input=0] non-finite | needs dtype", "vjp grad[input=0]"],
)
class SquareNanInFloat32AndWrongForNegatives(Function):
    """x**2: in float32 the backward is NaN at zero (it divides x by itself), and in every dtype
    it drops the sign of negative inputs' gradients."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad = 2 * x.abs()
        if x.dtype == torch.float32:
            grad = grad * (x / x)
        return g * grad


@fg.register(
    reference=lambda x: torch.exp(x),
    planted_pair=[
        "raises ValueError in twobugs.py:backward",
        "raises IndexError in twobugs.py:_first_row",
    ],
)
class ExpTwoRaisingSites(Function):
    """exp, whose backward raises ValueError on an empty input and IndexError on a 0-d one."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        if y.numel() == 0:
            raise ValueError("empty input")
        if y.dim() == 0:
            return _first_row(y) * g
        return g * y


def _first_row(y):
    return y[0]  # IndexError on a 0-d tensor: "invalid index of a 0-dim tensor"


def _top_mean(x, k):
    return x.topk(k, dim=-1).values.mean(-1)


@fg.register(
    reference=_top_mean,
    inputs=[fg.tensor("n", low=-4, high=4), fg.size("1<=k<=n")],
    planted_pair=["vjp grad[input=0] | k==n,k>1", "vjp grad[input=0] | k<n,k==1"],
    planted={"minimal": 2},
)
class TopMeanWrongAtBothBounds(Function):
    """The mean of the k largest entries: the backward doubles the gradient when k == n, and
    negates it when k == 1 < n (two classes of the size argument)."""

    @staticmethod
    def forward(ctx, x, k):
        values, index = x.topk(k, dim=-1)
        ctx.save_for_backward(index)
        ctx.k, ctx.n = k, x.shape[-1]
        return values.mean(-1)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        k, n = ctx.k, ctx.n
        scale = 1.0 / k
        if k == n and k > 1:
            scale *= 2
        if k == 1 and k < n:
            scale = -scale
        grad = torch.zeros(n, dtype=g.dtype).scatter(-1, index, (g * scale).expand(k))
        return grad, None


@fg.register(
    reference=lambda x, flag: x * 3.0 if flag else x * 2.0,
    inputs=[fg.tensor("m n"), st.booleans()],
    planted_pair=["vjp grad[input=0] | flag=True", "vjp grad[input=0] | needs layout"],
)
class ScaleFlagAndLayoutBugs(Function):
    """x times 2 (3 with ``flag``): the backward ignores ``flag``, and without it reads a
    non-contiguous input's gradient as if laid out row-major (through ``view`` on storage)."""

    @staticmethod
    def forward(ctx, x, flag):
        ctx.flag = flag
        ctx.contiguous = x.is_contiguous()
        ctx.shape = x.shape
        return x * 3.0 if flag else x * 2.0

    @staticmethod
    def backward(ctx, g):
        grad = g * 2.0
        if not ctx.contiguous and not ctx.flag and grad.dim() == 2:
            grad = grad.t().contiguous().view(ctx.shape)
        return grad, None


@fg.register(
    reference=lambda x, y: x * torch.exp(y),
    planted_pair=["vjp grad[input=0]", "vjp grad[input=1]"],
    planted={"minimal": 2},
)
class MulExpTwoGradientsWrong(Function):
    """x * exp(y): grad x is wrong where x is negative, grad y is wrong where y is above 1."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * torch.exp(y)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * torch.exp(y) * torch.where(x < 0, x.new_tensor(0.5), x.new_tensor(1.0))
        gy = g * x * torch.exp(y) * torch.where(y > 1, y.new_tensor(0.5), y.new_tensor(1.0))
        return gx, gy


@fg.register(
    reference=lambda x: torch.tanh(x),
    planted_pair=["raises ZeroDivisionError in twobugs.py:_divide"],
    planted_properties=["vjp", "second_order"],
)
class TanhBackwardRaisesEverywhere(Function):
    """tanh whose backward always raises: one bug, which every property that runs a backward
    meets; it is one finding listing those properties."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        return _divide(g)


def _divide(g):
    return g * (1 / 0)
