"""Tests that need a CUDA GPU, marked ``cuda`` (``pytest -m cuda``; bench/gpu_check.sh runs
them): compiled Triton kernels, device discovery, and the ``cuda`` property. Skipped elsewhere,
except the check that discovering targets never initialises CUDA, which holds everywhere.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from corpus._amp import matmul_cast

pytestmark = pytest.mark.cuda
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_discovering_targets_never_initialises_cuda():
    """The CLI's parent process discovers targets (the Triton ones ask whether CUDA exists)
    and hands them to spawned workers: CUDA must not be initialised there."""
    code = """
        import torch
        from fuzzgrad.registry.discovery import load_targets
        from fuzzgrad.strategies._tensors import device_names
        load_targets()
        device_names()
        assert not torch.cuda.is_initialized()
    """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr


@needs_gpu
def test_devices_are_cpu_and_every_cuda_device_that_exists():
    from fuzzgrad.strategies._tensors import device_names

    count = torch.cuda.device_count()
    assert device_names() == ("cpu", *(f"cuda:{i}" for i in range(count)))


_PROPS = ["forward", "vjp", "cuda"]


class _DoubleOnCuda(torch.autograd.Function):
    """x * 2, except that its backward on CUDA forgets the factor: only ``cuda`` (and the
    references, on CUDA cases) can tell."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g if g.is_cuda else g * 2


@needs_gpu
def test_the_cuda_property_compares_cuda_with_cpu(tmp_path):
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.target import make_target

    def twice(x):
        return x * 2

    good = make_target(twice, reference=twice, options={"properties": _PROPS})
    result = fuzz_target(good, max_examples=30, derandomize=True, report_dir=tmp_path)
    assert result.error is None and not result.failures, result.failures
    bad = make_target(_DoubleOnCuda, reference=twice, options={"properties": _PROPS})
    result = fuzz_target(bad, max_examples=60, derandomize=True, report_dir=tmp_path)
    failing = {f.property: f for f in result.failures}
    assert "cuda" in failing, sorted(failing)
    assert "device" in failing["cuda"].factors or failing["cuda"].case.device.startswith("cuda")


@needs_gpu
def test_compiled_triton_kernels_match_their_reference_on_cuda():
    """Compiled (not interpreted) kernels, bfloat16 included, at block boundaries."""
    pytest.importorskip("triton", reason="Triton is not installed")
    from fuzzgrad.targets import _triton, triton_kernels

    assert not _triton.INTERPRETED and _triton.DEVICES == ("cuda",)
    targets = triton_kernels.__fuzzgrad_targets__
    gen = torch.Generator().manual_seed(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5), (torch.bfloat16, 3e-2)):
        for shape in [(1,), (9,), (9, 17), (3, 33), (0, 4)]:
            x = torch.randn(shape, generator=gen, dtype=torch.float64)
            other = {
                "TritonSwiGLU": torch.randn(shape, generator=gen, dtype=torch.float64),
                "TritonRMSNorm": torch.randn(shape[-1], generator=gen, dtype=torch.float64),
                "TritonCrossEntropy": torch.rand(shape, generator=gen, dtype=torch.float64),
            }
            for name, target in targets.items():
                args = [x] + ([other[name]] if name in other else [])
                cuda = [a.to("cuda", dtype).requires_grad_() for a in args]
                out = target.fn(*cuda)
                ref_args = [a.detach().cpu().double().requires_grad_() for a in cuda]
                ref = target.reference(*ref_args)
                torch.testing.assert_close(out.cpu().double(), ref, rtol=tol, atol=tol)
                if out.numel():
                    ct = torch.randn(out.shape, generator=gen, dtype=torch.float64)
                    grads = torch.autograd.grad(out, cuda, ct.to("cuda", dtype))
                    for got, want in zip(grads, torch.autograd.grad(ref, ref_args, ct)):
                        torch.testing.assert_close(
                            got.cpu().double(), want, rtol=tol, atol=tol * 10
                        )


#: x @ w promising float32 under CUDA's float16 autocast, its backward with and without
#: custom_bwd (without, the backward's matmuls run in float16).
_CudaMatmulCastBoth = matmul_cast("cuda", custom_bwd=True)
_CudaMatmulCast = matmul_cast("cuda", custom_bwd=False)


@needs_gpu
def test_autocast_on_cuda_holds_a_float32_promise_in_float16(tmp_path):
    import fuzzgrad as fg
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.target import make_target

    def matmul(x, w):
        return x @ w

    def target(fn):
        return make_target(
            fn,
            reference=matmul,
            inputs=[fg.tensor("m k"), fg.tensor("k n")],
            dtypes=[torch.float32],
            options={"properties": ["autocast"]},
        )

    good = fuzz_target(target(_CudaMatmulCastBoth), max_examples=60, derandomize=True,
                       report_dir=tmp_path)  # fmt: skip
    assert good.error is None and not good.failures, good.failures
    bad = fuzz_target(target(_CudaMatmulCast), max_examples=150, derandomize=True,
                      report_dir=tmp_path)  # fmt: skip
    (failure,) = [f for f in bad.failures if f.property == "autocast"]
    assert failure.case.device.startswith("cuda") and "custom_bwd" in failure.message
