"""The Triton targets (run through Triton's interpreter where there is no GPU), and the two
registration options they brought: ``slow`` (left out of default runs) and ``devices``.

The Triton tests skip, with the install hint, where Triton is not installed; the planted-bug
twins are in the meta-tests (`tests/corpus/buggy_triton.py`, ``pytest tests/test_meta.py -k
Triton``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from fuzzgrad.targets import _triton

#: Examples per Triton target in CI (the interpreter runs a few small examples a second).
CI_EXAMPLES = 40


@pytest.fixture(scope="module")
def kernels():
    """The built-in Triton targets by name (skips where Triton is not installed)."""
    pytest.importorskip("triton", reason=f"Triton is not installed: {_triton.INSTALL_HINT}")
    from fuzzgrad.targets import triton_kernels

    return triton_kernels.__fuzzgrad_targets__


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
    )


# --- where the kernels run --------------------------------------------------------------------


def test_without_triton_nothing_registers_and_the_rest_still_loads():
    out = _python(
        """
        import sys
        sys.modules["triton"] = None  # as if it were not installed
        from fuzzgrad.registry.discovery import load_targets
        from fuzzgrad.targets import _triton
        names = [t.name for t in load_targets()]
        assert names and not [n for n in names if n.startswith("Triton")], names
        print(_triton.WHY_NOT)
        """
    )
    assert out.returncode == 0, out.stderr
    assert 'pip install -e ".[triton]"' in out.stdout


def test_the_interpreter_is_switched_on_where_there_is_no_cuda(kernels):
    import os

    if torch.cuda.is_available():
        assert _triton.DEVICES == ("cuda",) and torch.bfloat16 in _triton.DTYPES
    else:
        assert os.environ["TRITON_INTERPRET"] == "1" and _triton.INTERPRETED
        assert _triton.DEVICES == ("cpu",) and torch.bfloat16 not in _triton.DTYPES
    assert sorted(kernels) == [
        "TritonCrossEntropy",
        "TritonRMSNorm",
        "TritonSoftmax",
        "TritonSwiGLU",
    ]
    assert all(t.slow and t.options["devices"] == _triton.DEVICES for t in kernels.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason="compiled Triton runs here")
def test_triton_imported_first_without_the_interpreter_is_said_and_registers_nothing(kernels):
    out = _python(
        """
        import triton
        from fuzzgrad.targets import _triton, triton_kernels
        assert not _triton.USABLE and not getattr(triton_kernels, "__fuzzgrad_targets__", {})
        print(_triton.WHY_NOT)
        """
    )
    assert out.returncode == 0, out.stderr
    assert "TRITON_INTERPRET=1" in out.stdout


# --- the kernels, at every kind of block boundary ----------------------------------------------


def _layouts(t: torch.Tensor):
    """``t`` as it is, transposed in memory, and every other column of a wider buffer."""
    yield t
    if t.dim() == 2:
        yield t.t().contiguous().t()
    wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    wide[..., ::2] = t
    yield wide[..., ::2]


SHAPES = [(1,), (8,), (9,), (2, 17), (9, 3), (3, 33), (0, 5), (2, 0)]


@pytest.mark.parametrize("name", ["TritonSwiGLU", "TritonRMSNorm", "TritonSoftmax",
                                  "TritonCrossEntropy"])  # fmt: skip
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_kernels_match_their_reference_across_block_boundaries(kernels, name, dtype):
    """Rows of one block, of one block and a tail, of several blocks; more rows than one
    program takes; empty ones; contiguous, transposed and strided; forward and backward."""
    target = kernels[name]
    gen = torch.Generator().manual_seed(0)
    tol = {torch.float64: 1e-12, torch.float16: 2e-3}[dtype]
    for shape in SHAPES:
        base = [torch.randn(shape, generator=gen, dtype=torch.float64) for _ in range(2)]
        if name == "TritonRMSNorm":
            base[1] = torch.randn(shape[-1], generator=gen, dtype=torch.float64)  # the weight
        if name == "TritonCrossEntropy":
            base[1] = base[1].abs().clamp(max=1)  # targets in [0, 1]
        n_args = 1 if name == "TritonSoftmax" else 2
        for x in _layouts(base[0].to(dtype)):
            args = [x.requires_grad_()] + [b.to(dtype).requires_grad_() for b in base[1:n_args]]
            out = target.fn(*args)
            ct = torch.randn(out.shape, generator=gen, dtype=torch.float64)
            grads = torch.autograd.grad(out, args, ct.to(dtype)) if out.numel() else ()
            ref_args = [a.detach().double().requires_grad_() for a in args]
            ref = target.reference(*ref_args)
            torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
            for got, want in zip(grads, torch.autograd.grad(ref, ref_args, ct)):
                torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("name", ["TritonSwiGLU", "TritonRMSNorm", "TritonSoftmax",
                                  "TritonCrossEntropy"])  # fmt: skip
def test_each_triton_target_passes_a_short_fuzz(kernels, name, tmp_path):
    """What CI fuzzes under the interpreter: a few derandomized examples of every property."""
    from fuzzgrad.engine.runner import fuzz_target

    result = fuzz_target(
        kernels[name], max_examples=CI_EXAMPLES, derandomize=True, report_dir=tmp_path
    )
    assert result.error is None, result.error
    assert not result.failures, [f"{f.property}: {f.message}" for f in result.failures]


# --- slow=True: left out of default runs -------------------------------------------------------

SLOW_AND_FAST = """
import torch
import fuzzgrad as fg

KW = dict(properties=["forward", "vjp"], dtypes=[torch.float64])


@fg.register(reference=lambda x: x * 2, slow=True, **KW)
class SlowDouble(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


@fg.register(reference=lambda x: x * 3, **KW)
class FastTriple(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3
"""


@pytest.mark.parametrize(
    "flags, expected",
    [((), ["FastTriple"]), (("--slow",), ["FastTriple", "SlowDouble"]),
     (("-k", "SlowDouble"), ["SlowDouble"]), (("--budget", "4s"), ["FastTriple", "SlowDouble"])],
)  # fmt: skip
def test_the_cli_leaves_slow_targets_out_unless_asked(write_module, tmp_path, capsys, flags,
                                                      expected):  # fmt: skip
    from fuzzgrad.integrations.cli import main

    path = write_module("slow_ops", SLOW_AND_FAST)
    report = tmp_path / "report"
    args = ["fuzz", str(path), "--max-examples", "3", "--seed", "0", "--no-isolate"]
    code = main([*args, "--database", "none", "--report", str(report), *flags])
    assert code == 0
    results = json.loads((report / "results.json").read_text())
    assert sorted(r["name"] for r in results["targets"]) == expected
    said = "Left out 1 slow target(s) (SlowDouble); --slow fuzzes them."
    assert (said in capsys.readouterr().out) == (not flags)
    main(["list", str(path)])
    assert "[slow]" in next(ln for ln in capsys.readouterr().out.splitlines() if "SlowDouble" in ln)


pytest_plugins = ["pytester"]


def test_the_plugin_skips_slow_targets_unless_asked(pytester):
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=SLOW_AND_FAST)
    fast = ("--fuzzgrad-profile", "ci", "--fuzzgrad-max-examples", "3", "-p", "no:cacheprovider")
    result = pytester.runpytest("-rA", *fast)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*SlowDouble is registered slow=True: run it with --fuzzgrad-*"])
    pytester.runpytest("-rA", *fast, "--fuzzgrad-slow").assert_outcomes(passed=4)
    pytester.runpytest("-rA", *fast, "-m", "not slow").assert_outcomes(passed=2)


# --- devices=: where a target's cases are drawn -------------------------------------------------


def test_devices_keeps_cases_to_those_device_types_and_says_when_none_is_here(tmp_path):
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.errors import InvalidRegistration
    from fuzzgrad.properties.cuda import Cuda
    from fuzzgrad.registry.target import make_target

    def double(x):
        return x * 2

    with pytest.raises(InvalidRegistration, match="devices must be a non-empty list"):
        make_target(double, reference=double, options={"devices": "cuda"})
    with pytest.raises(InvalidRegistration, match="slow must be True or False"):
        make_target(double, reference=double, options={"slow": "yes"})
    cpu = make_target(double, reference=double, name="cpu_only", options={"devices": ["cpu"]})
    assert not Cuda().applies(cpu)
    result = fuzz_target(cpu, max_examples=5, derandomize=True, report_dir=tmp_path)
    assert result.error is None and not result.failures
    if not torch.cuda.is_available():
        gpu = make_target(double, reference=double, name="gpu_only", options={"devices": ["cuda"]})
        result = fuzz_target(gpu, max_examples=5, derandomize=True, report_dir=tmp_path)
        assert result.error is not None
        assert "gpu_only runs only on cuda, and this machine has cpu" in json.dumps(result.error)
