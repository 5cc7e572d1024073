"""The walking skeleton end to end on the seed document's three Functions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fuzzgrad.engine.runner import fuzz_target
from fuzzgrad.integrations.cli import main
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.reproducer import read_reproducer

SEED = Path(__file__).resolve().parents[1] / "targets" / "seed.py"


@pytest.fixture(scope="module")
def seed_results(tmp_path_factory):
    report = tmp_path_factory.mktemp("report")
    targets = {t.name: t for t in load_targets(["fuzzgrad.targets.seed"])}
    return report, {
        name: fuzz_target(t, max_examples=100, derandomize=True, report_dir=report)
        for name, t in targets.items()
    }


def test_seed_verdicts(seed_results):
    _, results = seed_results
    assert {n: r.status for n, r in results.items()} == {
        "MyActivation": "xfailed",
        "MyElementWise": "passed",
        "MyComplexOp": "xfailed",
    }


def test_my_activation_is_shrunk_to_one_plain_float64_element(seed_results):
    _, results = seed_results
    # the wrong formula (a second finding is its NaN where exp overflows: not this one)
    (failure,) = [f for f in results["MyActivation"].failures if f.kind == "vjp grad[input=0]"]
    (x,) = failure.case.args
    assert x.numel() == 1 and x.dtype == torch.float64 and x.device.type == "cpu"
    assert x.is_contiguous() and x.storage_offset() == 0
    assert failure.inputs[0]["shape"] in ([], [1], [1, 1])
    assert "grad[input=0]" in failure.message


def test_reproducer_fails_while_the_bug_is_there_and_shows_both_gradients(seed_results):
    _, results = seed_results
    path = results["MyActivation"].failures[0].reproducer
    out = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "custom grad[input=0]" in out.stdout
    assert "torch reference (float64) grad[input=0]" in out.stdout
    assert "JAX reference (float64) grad[input=0]" in out.stdout
    assert read_reproducer(path)["target"] == "MyActivation"


FIXED = """
        s = input.sigmoid()
        root = torch.exp(0.5 * torch.nn.functional.logsigmoid(-input))  # sqrt(1 - s), smooth
        return grad_output * s * root * (1 - 1.5 * s)
"""


def _copy_seed(tmp_path: Path, *, fix: bool, keep_xfail: bool) -> Path:
    text = SEED.read_text()
    if not keep_xfail:
        text = text.replace(
            '    xfail="backward formula is wrong', '    # was xfail="backward formula is wrong'
        )
    if fix:
        start = text.index("        return (\n            grad_output\n")
        end = text.index("        )\n", start) + len("        )\n")
        text = text[:start] + FIXED.lstrip("\n") + text[end:]
    path = tmp_path / "seedcopy.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "fix, keep_xfail, expected",
    [(False, False, 1), (True, False, 0), (True, True, 1)],
    ids=["bug-without-xfail-fails", "fixed-passes", "fixed-but-xfail-is-xpass"],
)
def test_cli_exit_codes_follow_the_verdicts(tmp_path, fix, keep_xfail, expected):
    path = _copy_seed(tmp_path, fix=fix, keep_xfail=keep_xfail)
    code = main(
        [
            "fuzz",
            str(path),
            "-k",
            "MyActivation",
            "--max-examples",
            "60",
            "--seed",
            "1",
            "--report",
            str(tmp_path / "rep"),
            "--database",
            "none",
        ]
    )
    assert code == expected


def test_fixed_copy_makes_the_old_reproducer_pass(tmp_path, seed_results):
    _, results = seed_results
    old = Path(results["MyActivation"].failures[0].reproducer).read_text()
    fixed = _copy_seed(tmp_path, fix=True, keep_xfail=False)
    data = read_reproducer_text(old)
    new = old.replace(f'"module": "{data["module"]}"', '"module": "seedcopy_fixed"').replace(
        f'"module_file": "{data["module_file"]}"', f'"module_file": "{fixed}"'
    )
    repro = tmp_path / "repro.py"
    repro.write_text(new)
    out = subprocess.run([sys.executable, str(repro)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "PASS" in out.stdout


def read_reproducer_text(text: str) -> dict:
    import json
    import re

    return json.loads(re.search(r'DATA = json\.loads\(r"""(.*?)"""\)', text, re.S).group(1))


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    assert main(["fuzz", "no_such_module_xyz"]) == 2
    assert "neither a module" in capsys.readouterr().err
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import fuzzgrad as fg\nfg.register(lambda x: x, name='b', reference=lambda x, y: x)\n"
    )
    assert main(["fuzz", str(bad)]) == 2
    assert "cannot register 'b'" in capsys.readouterr().err
    assert main(["fuzz", "fuzzgrad.targets.seed", "--properties", "bogus"]) == 2
    assert main(["repro", str(tmp_path / "missing.py")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["fuzz", "--max-examples", "lots"])
    assert info.value.code == 2


def test_list_shows_targets(capsys):
    assert main(["list", "fuzzgrad.targets.seed"]) == 0
    out = capsys.readouterr().out
    assert "MyActivation" in out and "xfail" in out and "refs=torch+jax" in out
