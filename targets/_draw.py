"""Hypothesis strategies for the argument tuples of targets that take integer index tensors.

Index values are drawn element by element (sizes stay small), so a failure shrinks to index 0
everywhere; float tensors come from a drawn seed, scale, dtype and memory layout.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
LAYOUTS = ("contiguous", "transposed", "sliced")

#: Sizes of the dims of index-taking targets: 1 first (what shrinking reaches), 0 now and then.
sizes = st.sampled_from((1, 2, 3, 4, 5, 0))
float_dtypes = st.sampled_from(FLOAT_DTYPES)


@st.composite
def float_tensors(draw, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A float tensor of ``shape``: seeded normal values, maybe transposed or strided in memory."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from((1.0, 0.1, 10.0)))
    layout = draw(st.sampled_from(LAYOUTS))
    g = torch.Generator().manual_seed(seed)
    t = (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype)
    if layout == "transposed" and t.dim() >= 2:
        return t.mT.contiguous().mT
    if layout == "sliced" and t.dim() >= 1:
        base = torch.full((2 * shape[0], *shape[1:]), float("nan"), dtype=dtype)
        base[::2] = t
        return base[::2]
    return t


@st.composite
def index_tensors(draw, shape: tuple[int, ...], high: int) -> torch.Tensor:
    """An int64 tensor of ``shape`` with values in ``[0, high)`` (``high`` may be 0 if empty)."""
    n = 1
    for s in shape:
        n *= s
    if n and high < 1:
        raise ValueError(f"cannot draw {n} indices below {high}")
    values = draw(st.lists(st.integers(0, max(high - 1, 0)), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.int64).reshape(shape)
