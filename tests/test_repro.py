"""Reproducers rebuild tensors bit for bit, including strides, offsets and garbage around views,
and replay a failure under the same conditions as the run that found it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fuzzgrad.properties.checker import Checker, PropertyFailure
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.common import failure_signature
from fuzzgrad.report.reproducer import (
    decode_tensor,
    encode_tensor,
    read_reproducer,
    storage_bytes,
    write_reproducer,
)
from fuzzgrad.strategies import Case, CotangentRecipe, Values


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


# --- one file per signature, the run's verdict -------------------------------------------------


def _vjp_failure(tmp_path):
    """A real vjp failure of a planted bug: (target, case, failure)."""
    corpus = Path(__file__).parent / "corpus" / "buggy_layout.py"
    (target,) = load_targets([str(corpus)], names=["LogCoshNaiveTanh"])
    x = torch.tensor([10.0, 100.0], dtype=torch.float16)
    case = Case((x,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), x.dtype, "cpu")
    with pytest.raises(PropertyFailure) as failure:
        Checker(target, properties=["vjp"]).check(case)
    return target, case, failure.value


def test_two_failures_of_one_property_get_two_files(tmp_path):
    target, case, failure = _vjp_failure(tmp_path)
    paths = [
        write_reproducer(tmp_path, target, "vjp", case, message=failure.message, diagnosis=d)
        for d in ("fails only with dtype float16", "fails only with layout sliced")
    ]
    again = write_reproducer(
        tmp_path, target, "vjp", case, message="other", diagnosis="fails only with dtype float16"
    )
    assert paths[0] != paths[1] and again == paths[0]  # one file per failure signature
    sig = failure_signature(
        target.name, {"property": "vjp", "diagnosis": "fails only with dtype float16"}
    )
    assert paths[0].name == f"repro_LogCoshNaiveTanh_vjp_{sig}.py"
    assert read_reproducer(paths[0])["signature"] == sig


def test_the_reproducer_verdict_is_the_runs_own(tmp_path):
    """The file holds no comparison of its own: it replays through fuzzgrad, so its message is
    the one the run's check gave on the same case, word for word."""
    target, case, failure = _vjp_failure(tmp_path)
    path = write_reproducer(tmp_path, target, "vjp", case, message=failure.message, diagnosis="")
    text = path.read_text()
    assert "fuzzgrad.engine.replay" in text and "def check(" not in text
    assert '"tolerance"' not in text and "isfinite" not in text  # no rules of its own
    out = _run(path, threads=1)
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last == f"FAIL (vjp): {failure.message}"
    assert "custom grad[input=0]" in out.stdout and "torch reference (float64)" in out.stdout


# --- nothing a name or a message holds becomes code ----------------------------------------------

HOSTILE_NAME = (
    'evil """); import os; os.system("touch PWNED")  # \\ \'\'\' @@DATA@@ @@HEADER@@ '
    '\r\n"""\x1b[31m\u202e \\N{BEL} \\'
)


def test_hostile_names_and_messages_cannot_inject_into_a_reproducer(tmp_path, wrong_module):
    (target,) = load_targets([str(wrong_module(HOSTILE_NAME))])
    assert target.name == HOSTILE_NAME
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    case = Case((x,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), x.dtype, "cpu")
    with pytest.raises(PropertyFailure) as failure:
        Checker(target, properties=["vjp"]).check(case)
    path = write_reproducer(
        tmp_path / "report", target, "vjp", case,
        message=failure.value.message + HOSTILE_NAME, diagnosis=HOSTILE_NAME,
    )  # fmt: skip
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)  # still Python, and still the same few statements
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "Import", "Import", "Assign", "FunctionDef", "If"], kinds
    doc = ast.get_docstring(tree, clean=False)
    assert HOSTILE_NAME.splitlines()[0][:20] in doc and "\x1b" not in doc and "\r" not in doc
    data = read_reproducer(path)
    assert data["target"] == HOSTILE_NAME and data["diagnosis"] == HOSTILE_NAME
    assert data["args"][0]["tensor"]["dtype"] == "float64"  # the data block was not replaced
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("FAIL (vjp)")
    assert not (tmp_path / "PWNED").exists()
    assert "\x1b" not in out.stdout and "\r" not in out.stdout  # shown, not obeyed


# --- crashes and hangs ---------------------------------------------------------------------------

_CRASHING = """
import torch
import fuzzgrad as fg

BEHAVIOUR = {behaviour!r}


class Op(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        if BEHAVIOUR == "segfault":
            import ctypes

            ctypes.string_at(0)
        if BEHAVIOUR == "hang":
            import time

            time.sleep(1000)
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


fg.register(Op, reference=lambda x: x * 2, name="op")
"""


def _error_reproducer(tmp_path, kind: str, behaviour: str, timeout: float | None = None):
    module = tmp_path / "crashing.py"
    module.write_text(_CRASHING.format(behaviour=behaviour))
    (target,) = load_targets([str(module)])
    x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    case = Case((x,), (True,), (CotangentRecipe(Values(seed=0)),), (None,), x.dtype, "cpu")
    path = write_reproducer(
        tmp_path / "report", target, kind, case, message="died", diagnosis=kind,
        example_timeout=timeout, properties=["vjp"],
    )  # fmt: skip
    return module, path


def _fix(module: Path) -> None:
    module.write_text(re.sub(r"BEHAVIOUR = .*", 'BEHAVIOUR = "fixed"', module.read_text()))


def test_a_crash_reproducer_reports_the_signal_and_survives_it(tmp_path):
    module, path = _error_reproducer(tmp_path, "crash", "segfault")
    out = _run(path, threads=1)
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last == "FAIL: the example crashes the process (signal SIGSEGV)"
    assert "string_at" in out.stdout  # where it happened, from the child's faulthandler
    _fix(module)
    out = _run(path, threads=1)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("PASS: the example ran to the end")


def test_a_hang_reproducer_has_the_runs_timeout(tmp_path):
    module, path = _error_reproducer(tmp_path, "timeout", "hang", timeout=5.0)
    assert read_reproducer(path)["example_timeout"] == 5.0
    out = _run(path, threads=1)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == (
        "FAIL: the example hangs: still running after 5s (the run's --example-timeout); killed"
    )
    _fix(module)
    out = _run(path, threads=1)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_reproducer_whose_target_is_gone_says_so_and_exits_2(tmp_path):
    module, path = _error_reproducer(tmp_path, "crash", "fixed")
    module.write_text("import fuzzgrad\n")  # the target is no longer registered
    out = _run(path, threads=1)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout.strip().splitlines() == [
        "CANNOT RUN: module 'fuzzgrad_user_crashing_"
        + out.stdout.split("fuzzgrad_user_crashing_")[1].split("'")[0]
        + "' no longer registers a target 'op'"
    ]


def test_an_exception_of_fuzzgrad_names_its_example_and_has_a_reproducer(tmp_path, monkeypatch):
    from fuzzgrad.engine.runner import fuzz_target

    (target,) = load_targets(["fuzzgrad.targets.seed"], names=["MyElementWise"])
    original, calls = Checker.run, []

    def run(self, case):  # the harness breaks from the third example on
        calls.append(case)
        if len(calls) < 3:
            return original(self, case)
        self.stats.record_case(case)
        raise RuntimeError("a bug of fuzzgrad's")

    monkeypatch.setattr(Checker, "run", run)
    result = fuzz_target(target, max_examples=10, derandomize=True, report_dir=tmp_path)
    error = result.error
    assert result.status == "error" and error["kind"] == "exception", error
    assert error["message"].startswith(f"example {error['example']} raised RuntimeError")
    assert [a["name"] for a in error["inputs"]] == ["x", "y"]
    data = read_reproducer(error["reproducer"])
    assert data["property"] == "exception" and data["target"] == "MyElementWise"
    out = _run(error["reproducer"], threads=1)  # in a fresh process fuzzgrad is not broken
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("PASS: fuzzgrad no longer raises")
