"""The everyday commands: targets from pyproject.toml, ``-k`` expressions, names people read,
portable regression tests, the ``latest`` link and run-to-run comparisons."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzgrad.integrations.cli import main
from fuzzgrad.integrations.keywords import Expression, KeywordError
from fuzzgrad.registry.target import BY_PATH_PREFIX

#: A tiny torch-only target (no JAX compile) with a wrong backward (3 where it should be 4),
#: formatted with its class name.
WRONG = """
import torch
import fuzzgrad as fg


@fg.register(reference=lambda x: x * 4, properties=["forward", "vjp"], dtypes=[torch.float64])
class {name}(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 4

    @staticmethod
    def backward(ctx, g):
        return g * 3
"""
FAST = ["--max-examples", "5", "--seed", "0", "--database", "none", "--no-isolate"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project: ``mypkg.ops`` (a package module) and ``loose/myops.py`` (a file with no
    package), named in pyproject.toml; the current folder is its root. Imports it causes are
    undone afterwards (sys.path, and the modules from its folder)."""
    root = tmp_path / "proj"
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("")
    (root / "mypkg" / "ops.py").write_text(WRONG.format(name="PkgQuad"))
    (root / "loose").mkdir()
    (root / "loose" / "myops.py").write_text(WRONG.format(name="LooseQuad"))
    (root / "pyproject.toml").write_text(
        '[tool.fuzzgrad]\ntargets = ["mypkg.ops", "loose/myops.py"]\n'
    )
    monkeypatch.chdir(root)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield root
    for name in set(sys.modules) - before:
        if name == "mypkg" or name.startswith(("mypkg.", BY_PATH_PREFIX)):
            del sys.modules[name]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _argv(command: str, tmp_path: Path, *args: str) -> list[str]:
    """``fuzzgrad list ARGS``, or a quick ``fuzzgrad fuzz ARGS`` reporting to tmp_path/r."""
    fuzz = [*FAST, "--report", str(tmp_path / "r")] if command == "fuzz" else []
    return [command, *args, *fuzz]


def _listed(capsys) -> dict[str, str]:
    """``fuzzgrad list``'s output: target name -> module as shown."""
    return {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}


# -- -k expressions -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, strings, expected",
    [
        ("norm", ["LayerNorm", "m"], True),  # a substring, case-insensitive
        ("NORM", ["layernorm", "m"], True),
        ("norm and not rms", ["LayerNorm", "mypkg.ops"], True),
        ("norm and not rms", ["RMSNorm", "mypkg.ops"], False),
        ("norm and not rms", ["LayerNorm", "fuzzgrad.targets.norms"], False),  # module matches
        ("softmax or gelu", ["GELUTanh", "m"], True),
        ("(softmax or gelu) and not tanh", ["GELUTanh", "m"], False),
        ("not (a or b) and c", ["c", "x"], True),
        ("not not x", ["x"], True),
        ("ops.py", ["Quad", "loose/ops.py"], True),
        ("loose/ops", ["Quad", "loose/ops.py"], True),
        ("Double-vjp", ["test_fuzzgrad[Double-vjp]"], True),
        ("android", ["android"], True),  # a word starting with "and" is a name
    ],
)
def test_k_expressions_read_as_pytest_reads_them(text, strings, expected):
    assert Expression(text).matches(strings) is expected


@pytest.mark.parametrize(
    "text, where",
    [
        ("norm and", "column 9"),
        ("(norm", "expected ')'"),
        ("norm rms", "got 'rms'"),
        ("norm)", "got ')'"),
        ("and norm", "got 'and'"),
        ("norm | rms", "unexpected character '|'"),
        ("()", "got ')'"),
    ],
)
def test_a_malformed_k_is_one_line_naming_the_place(text, where):
    with pytest.raises(KeywordError) as info:
        Expression(text)
    message = str(info.value)
    assert where in message and repr(text) in message and "\n" not in message
    assert 'e.g. -k "norm and not rms"' in message


def test_k_selects_built_ins_by_name_and_module(capsys):
    assert main(["list", "fuzzgrad.targets", "-k", "norm and not layer and not triton"]) == 0
    assert _listed(capsys) == {
        "RMSNorm": "fuzzgrad.targets.norms",
        "L2Normalize": "fuzzgrad.targets.norms",
    }
    assert main(["list", "fuzzgrad.targets", "-k", "seed"]) == 0  # by module
    assert set(_listed(capsys)) == {"MyActivation", "MyElementWise", "MyComplexOp"}
    assert main(["list", "fuzzgrad.targets", "-k", "LayerNorm"]) == 0  # an exact name still works
    assert set(_listed(capsys)) == {"LayerNorm"}
    assert main(["list", "fuzzgrad.targets", "-k", "LayerNorm", "-k", "(cumsum)"]) == 0  # any
    assert set(_listed(capsys)) == {"LayerNorm", "CumSum"}


@pytest.mark.parametrize("command", ["list", "fuzz"])
def test_k_matching_nothing_lists_close_names_and_exits_2(command, capsys, tmp_path):
    assert main(_argv(command, tmp_path, "fuzzgrad.targets", "-k", "LayerNrom")) == 2
    err = _one_line_error(capsys)
    assert "matches none of the" in err and "close names: LayerNorm" in err
    assert "fuzzgrad list" in err


def test_k_excluding_every_target_through_its_module_says_so(capsys):
    """As in pytest, names match modules too: ``not rms`` leaves out fuzzgrad.targets.norms."""
    assert main(["list", "fuzzgrad.targets", "-k", "norm and not rms"]) == 2
    err = _one_line_error(capsys)
    assert "by target names alone it would select LayerNorm, L2Normalize" in err


@pytest.mark.parametrize("command", ["list", "fuzz"])
def test_a_malformed_k_exits_2_before_anything_runs(command, capsys, tmp_path):
    assert main(_argv(command, tmp_path, "fuzzgrad.targets.seed", "-k", "norm and")) == 2
    assert "-k 'norm and': at column 9" in _one_line_error(capsys)
    assert not (tmp_path / "r").exists()


# -- targets from pyproject.toml, names people read -----------------------------------------
def test_list_without_arguments_reads_pyproject_with_readable_names(project, capsys):
    assert main(["list"]) == 0
    assert _listed(capsys) == {"PkgQuad": "mypkg.ops", "LooseQuad": "loose/myops.py"}


def test_paths_in_pyproject_are_relative_to_its_folder(project, capsys, monkeypatch):
    sub = project / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert main(["list", "-k", "quad"]) == 0
    # still relative to the project, not to the current folder
    assert _listed(capsys) == {"PkgQuad": "mypkg.ops", "LooseQuad": "loose/myops.py"}
    assert main(["list", "mypkg.ops"]) == 0  # a module name, found from the project's root
    assert _listed(capsys) == {"PkgQuad": "mypkg.ops"}


def test_a_module_in_the_current_folder_is_found_as_in_pytest(tmp_path, monkeypatch, capsys):
    (tmp_path / "curpkg").mkdir()
    (tmp_path / "curpkg" / "__init__.py").write_text("")
    (tmp_path / "curpkg" / "grads.py").write_text(WRONG.format(name="CurQuad"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    try:
        assert main(["list", "curpkg.grads"]) == 0
        assert _listed(capsys) == {"CurQuad": "curpkg.grads"}
    finally:
        for name in [n for n in sys.modules if n.startswith("curpkg")]:
            del sys.modules[name]


def test_without_pyproject_targets_the_built_ins_are_fuzzed(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')  # no [tool.fuzzgrad]
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    assert _listed(capsys)["MyActivation"] == "fuzzgrad.targets.seed"


def test_this_repository_declares_the_built_ins(monkeypatch, capsys):
    """The README's `fuzzgrad fuzz --jobs auto` fuzzes the built-ins through pyproject.toml."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert main(["list"]) == 0
    listed = _listed(capsys)
    assert listed["MyActivation"] == "fuzzgrad.targets.seed" and len(listed) > 20


@pytest.mark.parametrize(
    "table, message",
    [
        ('targets = ["mypkg.nope"]', "names 'mypkg.nope', which is neither"),
        ('targets = ["loose/gone.py"]', "names 'loose/gone.py', which is neither"),
        ("targets = 3", "must be a list of module names"),
        ("targets = []", "is empty"),
        ('targets = ["mypkg.ops"', "cannot read"),
    ],
    ids=["module", "file", "not-a-list", "empty", "malformed-toml"],
)
@pytest.mark.parametrize("command", ["list", "fuzz"])
def test_a_bad_pyproject_entry_is_one_line_and_exit_2(project, capsys, table, message, command):
    (project / "pyproject.toml").write_text(f"[tool.fuzzgrad]\n{table}\n")
    assert main([command, *(FAST if command == "fuzz" else [])]) == 2
    err = _one_line_error(capsys)
    assert message in err and str(project / "pyproject.toml") in err
    assert not (project / "reports").exists()


@pytest.mark.parametrize("command", ["list", "fuzz"])
def test_targets_that_register_nothing_are_an_error(project, capsys, command):
    (project / "empty.py").write_text("import torch\n")
    (project / "pyproject.toml").write_text('[tool.fuzzgrad]\ntargets = ["empty.py"]\n')
    assert main([command, *(FAST if command == "fuzz" else [])]) == 2
    assert "empty.py register(s) no targets" in _one_line_error(capsys)


def test_results_reproducers_and_messages_show_readable_names(project, capsys):
    assert main(["fuzz", *FAST, "--report", "reports/run"]) == 1
    out = capsys.readouterr().out
    assert "2 targets from [tool.fuzzgrad]" in out
    results = json.loads((project / "reports" / "run" / "results.json").read_text())
    modules = {t["name"]: t["module"] for t in results["targets"]}
    assert modules == {"PkgQuad": "mypkg.ops", "LooseQuad": "loose/myops.py"}
    for target in results["targets"]:
        (failure,) = target["failures"]
        header = Path(failure["reproducer"]).read_text().split('"""')[1]
        assert f"target {target['name']!r} ({modules[target['name']]})" in header
        assert BY_PATH_PREFIX not in header
    assert BY_PATH_PREFIX not in (project / "reports" / "run" / "junit.xml").read_text()
    assert BY_PATH_PREFIX not in (project / "reports" / "run" / "summary.md").read_text()


def test_workers_load_what_the_parent_resolved(project, monkeypatch):
    """An isolated run from a subfolder: the worker process imports ``mypkg.ops``, a module
    name found only from the project's root, which the parent resolved."""
    sub = project / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    argv = ["fuzz", "-k", "PkgQuad", "--max-examples", "5", "--database", "none"]
    assert main([*argv, "--report", "rep", "--jobs", "1"]) == 1
    results = json.loads((sub / "rep" / "results.json").read_text())
    (record,) = results["targets"]
    assert (record["name"], record["module"]) == ("PkgQuad", "mypkg.ops")
    assert record["status"] == "failed"
    assert results["run"]["isolate"] is True


# -- portable regression tests --------------------------------------------------------------
def test_regression_tests_run_in_a_fresh_clone(project, tmp_path):
    """``repro --pytest`` writes tests that import the target by module name or by a relative
    path: copied to another folder (the original gone), they fail while the bug is there and
    pass once it is fixed."""
    assert main(["fuzz", *FAST, "--report", "reports/run"]) == 1
    for name in ("PkgQuad", "LooseQuad"):
        assert main(["repro", "--pytest", name, "--report", "reports/run"]) == 0
    written = sorted((project / "tests").glob("test_regress_*.py"))
    assert [p.name for p in written] == [
        "test_regress_loosequad_vjp.py",
        "test_regress_pkgquad_vjp.py",
    ]
    for path in written:
        text = path.read_text()
        assert str(tmp_path) not in text and "/tmp" not in text, path  # no absolute path
    shutil.rmtree(project / "reports")
    clone = tmp_path / "elsewhere" / "clone"
    shutil.copytree(project, clone)
    shutil.rmtree(project)

    def pytest_in_clone() -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
             "-p", "no:fuzzgrad", "tests"],
            capture_output=True, text=True, timeout=600, cwd=clone, env=env,
        )  # fmt: skip

    out = pytest_in_clone()
    assert out.returncode == 1 and "2 failed" in out.stdout, out.stdout + out.stderr
    # the test is also the reproducer, run from anywhere: its paths are relative to itself
    test = clone / "tests" / "test_regress_pkgquad_vjp.py"
    replay = subprocess.run(
        [sys.executable, str(test)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "target 'PkgQuad' (mypkg.ops), property 'vjp'" in replay.stdout
    for file in (clone / "mypkg" / "ops.py", clone / "loose" / "myops.py"):
        file.write_text(file.read_text().replace("return g * 3", "return g * 4"))
    out = pytest_in_clone()
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout + out.stderr


def test_regression_test_output_may_be_a_folder(project, capsys):
    assert main(["fuzz", *FAST, "-k", "PkgQuad", "--report", "reports/run"]) == 1
    (project / "regress").mkdir()
    assert main(["repro", "--pytest", "PkgQuad", "--report", "reports/run", "-o", "regress"]) == 0
    assert (project / "regress" / "test_regress_pkgquad_vjp.py").is_file()


# -- the latest link and comparisons ---------------------------------------------------------
def test_report_dir_updates_latest_in_its_parent(project, capsys):
    reports = project / "nightly"
    assert main(["fuzz", *FAST, "--report", str(reports / "one")]) == 1
    assert os.readlink(reports / "latest") == "one"
    assert main(["fuzz", *FAST, "--report", str(reports / "two")]) == 1
    assert os.readlink(reports / "latest") == "two"
    assert "Compared with" in capsys.readouterr().out  # the same targets: diffed with "one"
    # another -k: its targets are not all in "two", so the implicit diff is skipped, saying so
    assert main(["fuzz", *FAST, "-k", "PkgQuad", "--report", str(reports / "three")]) == 1
    out = capsys.readouterr().out
    assert "not comparing with" in out and "LooseQuad" in out and "Compared with" not in out


def test_a_real_latest_folder_is_left_alone(project, capsys):
    (project / "out" / "latest").mkdir(parents=True)
    assert main(["fuzz", *FAST, "-k", "PkgQuad", "--report", "out/run"]) == 1
    assert (project / "out" / "latest").is_dir() and not (project / "out" / "latest").is_symlink()
    assert "is not a link" in capsys.readouterr().out


def test_where_links_fail_the_run_says_where_latest_is(project, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    assert main(["fuzz", *FAST, "-k", "PkgQuad", "--report", "out/run"]) == 1
    out = capsys.readouterr().out
    assert "cannot link" in out and f"the newest report is {project / 'out' / 'run'}" in out
    assert not (project / "out" / "latest").exists()


def _a_run(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True)
    records = [
        {"name": n, "status": "passed", "examples": 1, "seconds": 0.1, "failures": []}
        for n in names
    ]
    document = {"format": "fuzzgrad-results", "format_version": 1, "targets": records}
    (folder / "results.json").write_text(json.dumps(document))
    return folder


def test_compare_refuses_runs_of_different_targets_unless_told(tmp_path, capsys):
    old = _a_run(tmp_path / "old", ["A", "B", "C"])
    new = _a_run(tmp_path / "new", ["A", "D"])
    assert main(["report", "--compare", str(old), str(new)]) == 2
    err = _one_line_error(capsys)
    assert "2 only in OLD (B, C)" in err and "1 only in NEW (D)" in err
    assert "--allow-different-targets" in err
    assert main(["report", "--compare", str(old), str(new), "--allow-different-targets"]) == 0
    assert "Targets added: D" in capsys.readouterr().out
    same = _a_run(tmp_path / "same", ["C", "B", "A"])
    assert main(["report", "--compare", str(old), str(same)]) == 0


def test_report_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    argv = ["fuzz", "fuzzgrad.targets.seed", *FAST, "--report", str(tmp_path / "file")]
    assert main(argv) == 2
    assert "is a file" in _one_line_error(capsys)
