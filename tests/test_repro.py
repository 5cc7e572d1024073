"""Reproducers rebuild tensors bit for bit, including strides, offsets and garbage around views,
and replay a failure under the same conditions as the run that found it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fuzzgrad.strategies import Case, CotangentRecipe, Values

from fuzzgrad.properties.checker import Checker, PropertyFailure
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.reproducer import decode_tensor, encode_tensor, storage_bytes, write_reproducer


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


# Planted targets whose misbehaviour depends on how the run was set up, not on the inputs alone:
# the kind of failure that a reproducer must recreate, or it reports a false alarm as "fixed".
_SETUP_SENSITIVE = '''
import torch
from torch.autograd import Function

import fuzzgrad as fg


def _garbled(x):
    """What a kernel that mishandles strided inputs computes (oneDNN's bf16 matmul, say)."""
    return x * 2 if x.is_contiguous() else torch.full_like(x, float("nan"))


@fg.register(reference=lambda x: x * 2)
class ThreadSensitive(Function):
    """Doubles x, except when torch runs 3 threads (a kernel whose blocking goes wrong there)."""

    @staticmethod
    def forward(ctx, x):
        return x * (3 if torch.get_num_threads() == 3 else 2)

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


@fg.register(reference=_garbled)
class StrideSensitive(Function):
    """Doubles x through the same strided-input bug as its own reference."""

    @staticmethod
    def forward(ctx, x):
        return _garbled(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 2
'''


def _failing_reproducer(tmp_path, name, arg):
    """Check ``name`` on ``arg``, assert the forward property fails, and write its reproducer."""
    module = tmp_path / "setup_sensitive.py"
    module.write_text(_SETUP_SENSITIVE)
    (target,) = load_targets([str(module)], names=[name])
    case = Case((arg,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), arg.dtype, "cpu")
    with pytest.raises(PropertyFailure) as failure:
        Checker(target, properties=["forward"]).check(case)
    return write_reproducer(
        tmp_path / "report", target, "forward", case, message=failure.value.message, diagnosis=""
    )


def _run(path, threads: int):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}  # torch's default thread count
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env
    )


def test_reproducer_runs_with_the_thread_count_of_the_run(tmp_path):
    old = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        path = _failing_reproducer(tmp_path, "ThreadSensitive", torch.ones(2, dtype=torch.float64))
    finally:
        torch.set_num_threads(old)
    out = _run(path, threads=1)  # a replay elsewhere: another default count
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout


def test_reproducer_calibrates_on_contiguous_copies_like_the_run(tmp_path):
    # The run compares against the reference on fresh contiguous copies; a reproducer that ran the
    # reference on the strided view itself would see the same NaN and excuse the Function's.
    base = torch.full((9,), float("nan"), dtype=torch.bfloat16)
    x = base[1::2]
    x.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
    path = _failing_reproducer(tmp_path, "StrideSensitive", x)
    out = _run(path, threads=1)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout


def test_a_reproducer_judges_large_inputs_as_the_run_does(tmp_path):
    """Inputs past the overflow size excuse inf/NaN only where they reach (see
    `fuzzgrad.verdict.overflow`); the standalone comparison used to excuse the whole case, so a
    reproducer of a NaN beside a large input said the bug was fixed. It now replays such a case
    through fuzzgrad."""
    corpus = Path(__file__).parent / "corpus" / "buggy_layout.py"
    (target,) = load_targets([str(corpus)], names=["LogCoshNaiveTanh"])
    x = torch.tensor([10.0, 100.0], dtype=torch.float16)  # NaN gradient at 10
    case = Case((x,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), x.dtype, "cpu")
    with pytest.raises(PropertyFailure) as failure:
        Checker(target, properties=["vjp"]).check(case)
    path = write_reproducer(
        tmp_path / "report", target, "vjp", case, message=failure.value.message, diagnosis=""
    )
    out = _run(path, threads=1)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout
