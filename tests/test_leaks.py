"""Nothing leaked: no database password in any file of a report or in the terminal, no target
text that can drive a terminal, and `fuzzgrad repro ID` runs nothing outside the report folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from fuzzgrad.integrations.cli import main
from fuzzgrad.integrations.messages import describe_error, describe_failure
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.common import failure_signature, redact, terminal_safe
from fuzzgrad.report.reproducer import write_reproducer
from fuzzgrad.report.results import load_results
from fuzzgrad.strategies import Case, CotangentRecipe, Values

SECRET = "s3cr3t-pw-7Hq"


@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_a_database_password_is_in_no_file_of_the_report_and_not_on_the_terminal(
    tmp_path, capsys, form, redis_server, wrong_module
):
    module = wrong_module("wrong")
    report = tmp_path / "report"
    with redis_server(password=SECRET) as url:
        host = url.removeprefix("redis://")
        database = {
            "userinfo": f"redis://default:{SECRET}@{host}",
            "query": f"{url}?password={SECRET}",
        }[form]
        code = main(
            ["fuzz", str(module), "--max-examples", "20", "--no-isolate", "--properties", "vjp",
             "--report", str(report), f"--database={database}"]
        )  # fmt: skip
        assert code == 1  # the run used the database (with the password) and found the bug
        assert main(["report", str(report)]) == 0
        out = capsys.readouterr()
    run = load_results(report)["run"]
    assert run["database"] == redact(database) and "***" in run["database"]
    assert f"--database={redact(database)}" in run["argv"]
    files = [p for p in report.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"results.json", "events.jsonl", "index.html", "summary.md", "junit.xml"} <= names
    leaks = [p.name for p in files if SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert SECRET not in out.out + out.err


def test_redaction_covers_the_url_forms_redis_takes():
    for url, shown in [
        ("redis://user:pw@host:6379/0", "redis://***@host:6379/0"),
        ("rediss://:pw@host/1", "rediss://***@host/1"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
        ("unix://user:pw@/tmp/redis.sock?db=0", "unix://***@/tmp/redis.sock?db=0"),
        ("--database=redis://u:p@ss@h/0", "--database=redis://***@h/0"),
        ("/plain/folder", "/plain/folder"),
    ]:
        assert redact(url) == shown
    # safe on JSON text: a match never runs past a string's end
    text = json.dumps({"a": "redis://u:pw@h/0?password=pw", "b": "x@y"})
    assert json.loads(redact(text)) == {"a": "redis://***@h/0?password=***", "b": "x@y"}


NASTY = "nasty\x1b[2J\x1b[31mred\rPASSED\x07\u202eend"


def _assert_plain(text: str) -> None:
    for ch in ("\x1b", "\r", "\x07", "\u202e"):
        assert ch not in text, repr(text)


def test_target_text_cannot_drive_the_terminal(tmp_path, capsys, wrong_module):
    module = wrong_module(NASTY, backward=f"raise ValueError({NASTY!r})")
    report = tmp_path / "report"
    code = main(
        ["fuzz", str(module), "--max-examples", "5", "--no-isolate", "--report", str(report),
         "--database", "none"]
    )  # fmt: skip
    assert code == 1
    assert main(["list", str(module)]) == 0
    assert main(["report", "--compare", str(report), str(report)]) == 0
    out = capsys.readouterr()
    _assert_plain(out.out + out.err)
    assert "nasty\\x1b[2J" in out.out  # shown as text
    record = load_results(report)["targets"][0]
    for text in (
        describe_failure(NASTY, record["failures"][0]),
        describe_error(NASTY, {"kind": "exception", "message": NASTY, "traceback": NASTY}),
    ):
        _assert_plain(text)  # what fg.check and the pytest plugin show
    assert terminal_safe("a\nb\tc") == "a\nb\tc"
    assert terminal_safe("a\nb", newlines=False) == "a\\nb"


# --- fuzzgrad repro ID runs only what lies inside the report folder ------------------------------


def _reproducer(folder: Path) -> Path:
    (target,) = load_targets(["fuzzgrad.targets.seed"], names=["MyElementWise"])
    x = torch.ones(2, dtype=torch.float64)
    case = Case((x, x), (True, True), (CotangentRecipe(Values(seed=0)),), (None, None))
    return write_reproducer(folder, target, "vjp", case, message="m", diagnosis="d")


def _report(folder: Path, reproducer: str) -> str:
    """A report of one failure whose reproducer is recorded as ``reproducer``; its id."""
    failure = {"property": "vjp", "diagnosis": "d", "reproducer": reproducer}
    record = {"name": "T", "status": "failed", "examples": 1, "seconds": 0.1,
              "failures": [failure]}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(
        json.dumps({"format": "fuzzgrad-results", "format_version": 1, "targets": [record]})
    )
    return failure_signature("T", failure)


@pytest.fixture
def ran(monkeypatch):
    """The files `fuzzgrad repro` would run (instead of running them)."""
    calls: list[str] = []

    def call(argv, *args, **kwargs):
        calls.append(argv[1])  # [python, FILE, --runs, N]
        return 1

    monkeypatch.setattr(subprocess, "call", call)
    return calls


def test_relative_reproducer_paths_resolve_against_the_report_not_the_current_folder(
    tmp_path, monkeypatch, ran
):
    report = tmp_path / "reports" / "night"
    real = _reproducer(report)
    trap_dir = tmp_path / "cwd"
    (trap_dir / "reports" / "night").mkdir(parents=True)
    trap = trap_dir / "reports" / "night" / real.name  # same relative path, under the cwd
    trap.write_text(real.read_text())
    sig = _report(report, f"reports/night/{real.name}")
    monkeypatch.chdir(trap_dir)
    assert main(["repro", sig, "--report", str(report)]) == 1
    assert ran == [str(real.resolve())]
    (trap_dir / sig).write_text(real.read_text())  # a file named like the id is not run either
    assert main(["repro", sig, "--report", str(report)]) == 1
    assert ran[-1] == str(real.resolve())


@pytest.mark.parametrize("how", ["absolute", "symlink", "dotdot"])
def test_reproducers_outside_the_report_folder_are_refused(tmp_path, capsys, ran, how):
    outside = _reproducer(tmp_path / "elsewhere")
    report = tmp_path / "report"
    report.mkdir()
    if how == "symlink":
        (report / outside.name).symlink_to(outside)
        recorded = str(report / outside.name)
    elif how == "dotdot":
        recorded = f"../elsewhere/{outside.name}"
    else:
        recorded = str(outside)
    sig = _report(report, recorded)
    assert main(["repro", sig, "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert "outside the report folder" in err and err.count("\n") == 1
    assert ran == []
    assert main(["repro", str(outside)]) == 1  # given as a file, by its path: it runs
