"""The pytest plugin, tested with ``pytester`` on tiny targets, and `fuzzgrad.check`."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import fuzzgrad as fg

# In-process pytester runs drop the modules they import when they end: import the worker pool
# (and the multiprocessing modules it uses) once, for every run of the session.
import fuzzgrad.nightly.isolated  # noqa: E402,F401,I001

pytest_plugins = ["pytester"]

#: Tiny torch-only targets (no JAX compile), two properties each, so every run is quick.
OPS = """
import torch
import fuzzgrad as fg

KW = dict(properties=["forward", "vjp"], dtypes=[torch.float64])


@fg.register(reference=lambda x: x * 2, **KW)
class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


@fg.register(reference=lambda x: x * 3, **KW)
class Triple(torch.autograd.Function):  # a wrong backward
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 2


@fg.register(reference=lambda x: x * 4, xfail="backward says 2", **KW)
class Quadruple(torch.autograd.Function):  # a known bug
    @staticmethod
    def forward(ctx, x):
        return x * 4

    @staticmethod
    def backward(ctx, g):
        return g * 2


@fg.register(reference=lambda x: x * 5, xfail="was wrong once", **KW)
class Quintuple(torch.autograd.Function):  # a known bug since fixed
    @staticmethod
    def forward(ctx, x):
        return x * 5

    @staticmethod
    def backward(ctx, g):
        return g * 5
"""

CORRECT_ONLY = OPS.split("@fg.register(reference=lambda x: x * 3")[0]
FAST = ("--fuzzgrad-profile", "ci", "--fuzzgrad-max-examples", "5", "-p", "no:cacheprovider")
OUTCOMES = {
    "test_fuzzgrad[Double-forward]": "PASSED",
    "test_fuzzgrad[Double-vjp]": "PASSED",
    "test_fuzzgrad[Triple-forward]": "PASSED",
    "test_fuzzgrad[Triple-vjp]": "FAILED",
    "test_fuzzgrad[Quadruple-forward]": "XFAIL",
    "test_fuzzgrad[Quadruple-vjp]": "XFAIL",
    "test_fuzzgrad[Quintuple-forward]": "FAILED",
    "test_fuzzgrad[Quintuple-vjp]": "FAILED",
}


@pytest.fixture
def project(pytester):
    """A project naming its targets in pyproject.toml, with one ordinary test beside them."""
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=OPS, test_plain="def test_plain():\n    pass\n")
    return pytester


def outcomes(result) -> dict[str, str]:
    """Each fuzzgrad test's outcome, from ``-rA``'s short summary."""
    pattern = re.compile(r"^(PASSED|FAILED|XFAIL|XPASS|ERROR) \S*::(test_fuzzgrad\[[^\]]+\])")
    return {
        m.group(2): m.group(1) for line in result.outlines if (m := pattern.match(line.strip()))
    }


def test_items_from_pyproject_have_readable_ids_and_the_marker(project):
    result = project.runpytest("--collect-only", "-q", *FAST)
    ids = [line for line in result.outlines if "test_fuzzgrad[" in line]
    assert ids[:2] == [
        "fuzzgrad::Double::test_fuzzgrad[Double-forward]",
        "fuzzgrad::Double::test_fuzzgrad[Double-vjp]",
    ]
    assert len(ids) == 8
    result.stdout.fnmatch_lines(["*test_plain.py::test_plain*"])
    marked = project.runpytest("--collect-only", "-q", "-m", "fuzzgrad", *FAST)
    assert not [line for line in marked.outlines if "test_plain" in line]
    assert len([line for line in marked.outlines if "test_fuzzgrad[" in line]) == 8


def test_k_selects_one_target_and_property(project):
    result = project.runpytest("-k", "Double and vjp", "-rA", *FAST)
    assert outcomes(result) == {"test_fuzzgrad[Double-vjp]": "PASSED"}
    result.assert_outcomes(passed=1, deselected=8)


def test_outcomes_failures_known_bugs_and_strict_xpass(project):
    result = project.runpytest("-rA", "-m", "fuzzgrad", *FAST)
    assert outcomes(result) == OUTCOMES
    result.assert_outcomes(passed=3, failed=3, xfailed=2, deselected=1)
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]] was wrong once*"])


#: A known bug in one property (its backward), and a second (its forward) the mark must not hide.
NAMED_XFAIL = """
import torch
import fuzzgrad as fg


@fg.register(
    reference=lambda x: x * 6,
    xfail={"vjp": "backward says 2"},
    properties=["forward", "vjp"],
    dtypes=[torch.float64],
)
class Sextuple(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 7

    @staticmethod
    def backward(ctx, g):
        return g * 2
"""


def test_an_xfail_naming_a_property_leaves_the_others_to_fail(pytester):
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=NAMED_XFAIL)
    result = pytester.runpytest("-rA", *FAST)
    assert outcomes(result) == {
        "test_fuzzgrad[Sextuple-forward]": "FAILED",  # not covered by the mark
        "test_fuzzgrad[Sextuple-vjp]": "XFAIL",
    }
    # with the forward fixed, the named bug alone is an xfail and nothing else fails
    pytester.makepyfile(ops=NAMED_XFAIL.replace("x * 7", "x * 6"))
    result = pytester.runpytest("-rA", *FAST)
    assert outcomes(result) == {
        "test_fuzzgrad[Sextuple-forward]": "PASSED",
        "test_fuzzgrad[Sextuple-vjp]": "XFAIL",
    }


def test_a_failure_shows_the_shrunk_case_diagnosis_and_reproducer(project, tmp_path):
    report = tmp_path / "repros"
    result = project.runpytest("-k", "Triple and vjp", "--fuzzgrad-report", str(report), *FAST)
    result.stdout.fnmatch_lines(
        [
            "Triple: property 'vjp' fails*shrunk to*",
            "    arg 0: float64[[]*[]] stride (*) offset * on cpu",
            "  mismatch:   grad[[]input=0[]]: *worst at index*got*expected*",
            "  diagnosis:  *",
            f"  reproducer: {report}*repro_Triple_vjp_*.py",
            "  replay:     fuzzgrad repro *repro_Triple_vjp_*.py",
        ]
    )
    assert len(list(report.glob("repro_Triple_vjp_*.py"))) == 1  # named by its signature


def test_reproducers_default_to_the_basetemp(project):
    result = project.runpytest("-k", "Triple and vjp", *FAST)
    # pytest repeats the whole message in the short summary when the CI variable is set.
    lines = [line for line in result.outlines if line.strip().startswith("reproducer:")]
    (path,) = {line.split("reproducer:")[1].strip() for line in lines}
    assert path.startswith(str(project.path.parent))
    assert Path(path).name.startswith("repro_Triple_vjp_")


def test_k_matches_a_module_or_file_as_fuzzgrad_fuzz_does(pytester):
    """pyproject.toml names a file and a module found from the project's root (the plugin puts
    it on sys.path, as `fuzzgrad fuzz` does); ``-k`` matches either's name as people read it."""
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py", "pkg.more"]\n')
    pytester.makepyfile(ops=CORRECT_ONLY)
    more = CORRECT_ONLY.replace("Double", "Twice")
    pytester.mkpydir("pkg").joinpath("more.py").write_text(more)
    by_module = pytester.runpytest("-rA", "-k", "pkg.more and vjp", *FAST)
    assert outcomes(by_module) == {"test_fuzzgrad[Twice-vjp]": "PASSED"}
    by_file = pytester.runpytest("-rA", "-k", "ops.py", *FAST)
    assert set(outcomes(by_file)) == {"test_fuzzgrad[Double-forward]", "test_fuzzgrad[Double-vjp]"}


def test_a_failure_names_the_file_as_people_read_it(project):
    result = project.runpytest("-k", "Triple and vjp", *FAST)
    result.stdout.fnmatch_lines(["*target Triple from ops.py)*"])
    result.stdout.no_fnmatch_line("*fuzzgrad_user_*")


def test_a_missing_pyproject_entry_is_a_usage_error(pytester):
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["gone.py"]\n')
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*targets in *pyproject.toml names 'gone.py', which is neither*"])


def test_targets_from_the_option(pytester):
    pytester.mkpydir("mine").joinpath("ops.py").write_text(CORRECT_ONLY)
    result = pytester.runpytest("--fuzzgrad-targets", "mine/ops.py", "-rA", *FAST)
    assert outcomes(result) == {
        "test_fuzzgrad[Double-forward]": "PASSED",
        "test_fuzzgrad[Double-vjp]": "PASSED",
    }
    result.stdout.fnmatch_lines(["fuzzgrad: *ops.py (from --fuzzgrad-targets)*"])


def test_a_targets_folder_is_collected_by_default(pytester):
    pytester.mkdir("targets").joinpath("ops.py").write_text(CORRECT_ONLY)
    result = pytester.runpytest("-rA", *FAST)
    assert len(outcomes(result)) == 2
    result.stdout.fnmatch_lines(["fuzzgrad: *targets (from the targets/ folder)*"])


def test_nothing_is_collected_or_imported_in_an_unrelated_project(pytester):
    pytester.mkdir("targets").joinpath("build.py").write_text("raise SystemExit('imported!')\n")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    pytester.makeconftest(
        "import sys\n"
        "def pytest_collection_finish(session):\n"
        "    heavy = sorted(m for m in ('torch', 'jax', 'hypothesis') if m in sys.modules)\n"
        "    print('HEAVY', heavy)\n"
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["HEAVY []"])
    result.stdout.no_fnmatch_line("fuzzgrad:*")


def test_explicit_test_paths_leave_the_targets_out(project):
    result = project.runpytest("test_plain.py", *FAST)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "env", "ini", "loaded", "expected"),
    [
        # tests/conftest.py registers a Hypothesis profile "dev" of 100 examples (fuzzgrad's has
        # 200): a project's own profile of that name is the one used, never shadowed
        ((), None, None, "default", "profile dev (100 examples per target, random, database *)"),
        # Hypothesis loads its `ci` profile on a CI system: a session that names none follows it
        ((), None, None, "ci", "profile ci (50 examples per target, derandomized)"),
        ((), None, "ci", "default", "profile ci (50 examples per target, derandomized)"),
        ((), None, "table:ci", "default", "profile ci (50 examples per target, derandomized)"),
        # a CI system's `ci` profile loaded: a named profile still has its own randomness
        ((), "nightly", "ci", "ci", "profile nightly (2000 examples*random, database *)"),
        (("--fuzzgrad-profile", "ci"), "nightly", None, "default", "profile ci (50 examples*"),
        (("--fuzzgrad-max-examples", "7"), "ci", None, "default", "profile ci (7 examples*"),
    ],
    ids=[
        "default-dev", "on-ci", "ini", "pyproject", "env-over-ini", "option-over-env",
        "max-examples",
    ],
)  # fmt: skip
def test_profiles(pytester, monkeypatch, args, env, ini, loaded, expected):
    table, ini_text = "", ""
    if ini and ini.startswith("table:"):
        table = f'profile = "{ini[6:]}"\n'
    elif ini:
        ini_text = f'[tool.pytest.ini_options]\nfuzzgrad_profile = "{ini}"\n'
    pytester.makepyprojecttoml(f'[tool.fuzzgrad]\ntargets = ["ops.py"]\n{table}{ini_text}')
    pytester.makepyfile(ops=CORRECT_ONLY)
    if env:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", env)
    else:
        monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    before = settings.get_current_profile_name()
    settings.load_profile(loaded)
    try:
        result = pytester.runpytest("--collect-only", *args)
    finally:
        settings.load_profile(before)
    result.stdout.fnmatch_lines([f"fuzzgrad: *; {expected}"])


def test_hypothesis_options_choose_the_budget_and_seed(pytester, monkeypatch):
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=CORRECT_ONLY)
    result = pytester.runpytest("--collect-only", "--hypothesis-profile", "ci")
    result.stdout.fnmatch_lines(["fuzzgrad: *; profile ci (50 examples per target, derandomized)"])
    result = pytester.runpytest(
        "--collect-only", "--hypothesis-profile", "ci", "--hypothesis-seed=7"
    )
    result.stdout.fnmatch_lines(["fuzzgrad: *; profile ci (50 examples per target, seed 7)"])


def test_a_profile_registered_with_hypothesis_is_a_fuzzgrad_profile(pytester, monkeypatch):
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=CORRECT_ONLY)
    pytester.makeconftest(
        "from hypothesis import settings\n"
        "settings.register_profile('team_weekly', max_examples=777, derandomize=True)\n"
    )
    result = pytester.runpytest("--collect-only", "--hypothesis-profile", "team_weekly")
    result.stdout.fnmatch_lines(["fuzzgrad: *; profile team_weekly (777 examples per target, *)"])


def test_nightly_adds_its_opt_in_properties_to_each_target(pytester, monkeypatch):
    monkeypatch.delenv("HYPOTHESIS_PROFILE", raising=False)
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=CORRECT_ONLY)
    ci = pytester.runpytest("--collect-only", "-q", "--fuzzgrad-profile", "ci")
    nightly = pytester.runpytest("--collect-only", "-q", "--fuzzgrad-profile", "nightly")
    assert not any("Double-compile" in line for line in ci.outlines)
    nightly.stdout.fnmatch_lines(["*test_fuzzgrad[[]Double-compile[]]*"])


def test_an_unknown_profile_is_a_usage_error(project):
    result = project.runpytest("--fuzzgrad-profile", "weekly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown profile 'weekly'; use ci, dev, nightly*"])


def test_dev_keeps_failures_in_the_example_database_and_ci_does_not(project):
    project.runpytest("-k", "Triple", "--fuzzgrad-profile", "ci", "-p", "no:cacheprovider")
    assert not (project.path / ".fuzzgrad").exists()
    project.runpytest("-k", "Triple", "--fuzzgrad-profile", "dev", "--fuzzgrad-max-examples", "5")
    (folder,) = (project.path / ".fuzzgrad" / "examples").iterdir()
    assert folder.name.endswith(".Triple") and any(folder.rglob("*"))


def test_xdist_gives_the_same_outcomes_as_one_process(project):
    serial = project.runpytest("-rA", "-n", "0", *FAST)
    parallel = project.runpytest("-rA", "-n", "2", *FAST)
    assert outcomes(serial) == outcomes(parallel) == OUTCOMES
    assert serial.parseoutcomes() == parallel.parseoutcomes()


# -- fg.check ---------------------------------------------------------------------------------
class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class BadSquare(Square):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return x * g


CHECK = dict(
    reference=lambda x: x * x,
    inputs=[fg.tensor("n")],
    dtypes=[torch.float64],
    max_examples=10,
    properties=["forward", "vjp"],
)


def test_check_returns_the_result_when_the_function_is_right():
    result = fg.check(Square, **CHECK)
    assert result.status == "passed" and result.examples >= 10
    assert "Square" not in fg.registered()


def test_check_raises_the_readable_failure(tmp_path):
    with pytest.raises(AssertionError) as info:
        fg.check(BadSquare, report_dir=tmp_path, **CHECK)
    text = str(info.value)
    assert text.startswith("BadSquare: property 'vjp' fails")
    assert "arg 0: float64[" in text and "diagnosis:" in text
    assert f"reproducer: {tmp_path}" in text and "fuzzgrad repro " in text


def test_check_works_inside_a_users_test(pytester):
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import torch
            import fuzzgrad as fg

            class Cube(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    ctx.save_for_backward(x)
                    return x ** 3

                @staticmethod
                def backward(ctx, g):
                    (x,) = ctx.saved_tensors
                    return 3 * x * g  # should be 3 * x ** 2 * g

            def test_cube():
                fg.check(Cube, reference=lambda x: x ** 3, max_examples=10,
                         dtypes=[torch.float64], properties=["vjp"])
            """
        )
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*Cube: property 'vjp' fails*", "E*diagnosis:*"])


def test_xdist_workers_share_the_cores():
    import os

    import torch

    from fuzzgrad.integrations.pytest_plugin import _share_cores

    before = torch.get_num_threads()
    try:
        _share_cores(2)
        assert torch.get_num_threads() == max(1, (os.cpu_count() or 1) // 2)
        _share_cores(10**6)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# -- isolation ----------------------------------------------------------------------------------
CRASHES = (
    CORRECT_ONLY
    + """

@fg.register(reference=lambda x: x * 2, **KW)
class Crashing(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        {crash}
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2
"""
)


@pytest.mark.parametrize(
    ("crash", "signal_name"),
    [("__import__('ctypes').string_at(0)", "SIGSEGV"), ("__import__('os').abort()", "SIGABRT")],
    ids=["segfault", "abort"],
)
def test_a_crashing_target_fails_its_items_and_the_session_goes_on(pytester, crash, signal_name):
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=CRASHES.format(crash=crash), test_after="def test_after():\n    pass\n")
    report = pytester.path / "repros"
    result = pytester.runpytest("-rA", "--fuzzgrad-report", str(report), *FAST)
    assert outcomes(result) == {
        "test_fuzzgrad[Double-forward]": "PASSED",
        "test_fuzzgrad[Double-vjp]": "PASSED",
        "test_fuzzgrad[Crashing-forward]": "FAILED",
        "test_fuzzgrad[Crashing-vjp]": "FAILED",
    }
    result.assert_outcomes(passed=3, failed=2)  # test_after ran too
    result.stdout.fnmatch_lines(
        [
            f"Crashing: fuzzing crashed (crash): the worker process died ({signal_name}) while "
            "running example 1",
            "  replay: fuzzgrad repro *repro_Crashing_crash_*.py",
        ]
    )
    assert len(list(report.glob("repro_Crashing_crash_*.py"))) == 1


PID = """
import os
import torch
import fuzzgrad as fg


@fg.register(reference=lambda x: x * 2, properties=["forward"], dtypes=[torch.float64])
class WherePid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        with open({path!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2
"""


@pytest.mark.parametrize("isolate", [True, False])
def test_no_fuzzgrad_isolate_fuzzes_in_the_test_process(pytester, isolate):
    import os

    pids = pytester.path / "pids.txt"
    pytester.makepyprojecttoml('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    pytester.makepyfile(ops=PID.format(path=str(pids)))
    option = "--fuzzgrad-isolate" if isolate else "--no-fuzzgrad-isolate"
    pytester.runpytest(option, *FAST).assert_outcomes(passed=1)
    seen = set(pids.read_text().split())
    assert seen and (str(os.getpid()) in seen) is not isolate
