"""Hostile conditions (issue 26): one clear line, nothing lost, nothing silently ignored. One test
(or a planted-bug and correct-twin pair) per row of the issue's table, then its first-contact
items. ``bench/hostile.sh`` runs the same table on an installed fuzzgrad."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import FAST, WRONG
from test_nightly import events, wait_for

from fuzzgrad.integrations.cli import main
from fuzzgrad.report.results import load_results


@pytest.fixture
def ops(tmp_path, monkeypatch):
    """``ops.py`` with one wrong target, in a project folder that is the current one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "ops.py").write_text(WRONG.format(name="Hostile"))
    before = set(sys.modules)
    yield tmp_path / "ops.py"
    for name in set(sys.modules) - before:
        if name.startswith("fuzzgrad_user_"):
            del sys.modules[name]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- row 1: [tool.fuzzgrad] typos and wrong types ------------------------------------------------
@pytest.mark.parametrize(
    "table, message",
    [
        ('target = ["ops.py"]', "unknown key 'target' in [tool.fuzzgrad]"),
        ('tragets = ["ops.py"]', "did you mean 'targets'?"),
        ("profile = 3", "[tool.fuzzgrad] profile in"),
        ('profile = "ci"', "has no targets"),
    ],
    ids=["target", "tragets", "profile-type", "no-targets"],
)
def test_a_misspelt_or_mistyped_setting_is_an_error_not_the_built_ins(ops, capsys, table, message):
    (ops.parent / "pyproject.toml").write_text(f"[tool.fuzzgrad]\n{table}\n")
    assert main(["fuzz", *FAST, "--report", str(ops.parent / "r")]) == 2
    assert message in one_line(capsys)
    assert not (ops.parent / "r").exists()  # nothing ran: not the 35 built-in targets


def test_a_correct_setting_still_runs(ops, capsys):
    (ops.parent / "pyproject.toml").write_text('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    assert main(["list"]) == 0
    assert "Hostile" in capsys.readouterr().out


# -- row 2: Ctrl-C at any moment ------------------------------------------------------------------
def test_ctrl_c_during_start_up_is_one_line(ops, capsys, monkeypatch):
    import fuzzgrad.integrations.cli as cli

    def interrupted_while_loading(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, through the run's own handler
        raise AssertionError("the signal should have stopped the load")

    monkeypatch.setattr(cli, "_load", interrupted_while_loading)
    assert main(["fuzz", str(ops), *FAST, "--report", str(ops.parent / "r")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "fuzzgrad: stopped (SIGINT)", err


def test_ctrl_c_swallowed_by_a_gc_callback_still_stops():
    """JAX's ``_xla_gc_callback`` drops a KeyboardInterrupt raised inside it; the run's handler
    then records the signal, and the next `check_stop` raises it."""
    import gc

    from fuzzgrad.nightly.pool import Stop, _requested, check_stop, stoppable

    def callback(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGINT)

    with stoppable():
        gc.callbacks.append(callback)
        try:
            gc.collect()  # the signal arrives inside the callback: not raised there
        finally:
            gc.callbacks.remove(callback)
        with pytest.raises(Stop, match="SIGINT"):
            check_stop()
    _requested.clear()


def test_ctrl_c_of_a_real_run_stops_it_with_one_line_and_a_report(tmp_path):
    (tmp_path / "ops.py").write_text(WRONG.format(name="Hostile"))
    report = tmp_path / "r"
    proc = subprocess.Popen(
        # forward never fails: the target runs its whole budget unless stopped
        [sys.executable, "-m", "fuzzgrad", "fuzz", "ops.py", "--budget", "300s",
         "--database", "none", "--report", str(report)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        found = wait_for(lambda: any(e["event"] == "finding" for e in events(report)), 240)
        assert found
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "fuzzgrad: stopped (SIGINT); the report holds what was done" in out
    results = load_results(report)
    assert results["run"]["interrupted"] == "SIGINT"
    (record,) = results["targets"]  # row 10 too: what it found and ran is kept
    assert record["status"] == "failed" and record["interrupted"] == "SIGINT"
    assert record["examples"] > 0 and record["failures"]
    assert not (report / ".fuzzgrad.lock").exists()


# -- row 3: two runs on one report folder ---------------------------------------------------------
def test_the_command_ends_at_once_yet_runs_exit_functions_and_flushes_its_output(tmp_path):
    """`fuzzgrad` ends its process once `main` returns (Python's own finalisation of torch and
    XLA took a second or more after a Ctrl-C), running the exit functions registered with
    atexit first (a target's own here) and flushing what it printed into a pipe."""
    ops = WRONG.format(name="Quick") + (
        "\nimport atexit\natexit.register(lambda: open('atexit-ran', 'w').write('yes'))\n"
    )
    (tmp_path / "ops.py").write_text(ops)
    out = subprocess.run(
        [sys.executable, "-m", "fuzzgrad", "fuzz", "ops.py", *FAST, "--report", "r"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert out.stdout.rstrip().endswith("Report: r/index.html"), out.stdout
    assert (tmp_path / "atexit-ran").read_text() == "yes"


def test_a_second_run_on_a_report_in_use_refuses(ops, capsys):
    report = ops.parent / "r"
    report.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (report / ".fuzzgrad.lock").write_text(f"{owner.pid}\n")
        assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 2
        assert f"another fuzzgrad run (pid {owner.pid})" in one_line(capsys)
        assert not (report / "events.jsonl").exists()  # nothing of this run mixed in
    finally:
        owner.kill()
        owner.wait()
    # its owner gone, the lock is stale: the next run takes it, and leaves none behind
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 1
    assert load_results(report)["targets"][0]["status"] == "failed"
    assert not (report / ".fuzzgrad.lock").exists()


def test_report_and_merge_refuse_a_folder_a_live_run_still_writes(ops, capsys):
    report = ops.parent / "r"
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 1
    capsys.readouterr()
    before = (report / "results.json").read_text()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (report / ".fuzzgrad.lock").write_text(f"{owner.pid}\n")
        assert main(["report", str(report)]) == 2
        assert f"run pid {owner.pid} is still writing it" in one_line(capsys)
        assert main(["report", "--merge", str(ops.parent / "m"), str(report)]) == 2
        assert "cannot merge" in one_line(capsys)
        assert (report / "results.json").read_text() == before  # nothing re-rendered
    finally:
        owner.kill()
        owner.wait()
    assert main(["report", str(report)]) == 0  # a stale lock: re-rendered as before
    capsys.readouterr()


# -- rows 4 and 5: a read-only folder, a full disk ------------------------------------------------
def test_a_read_only_report_folder_is_one_line(ops, capsys, monkeypatch):
    from fuzzgrad.integrations import runs

    def read_only(self):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.path))

    monkeypatch.setattr(runs.report_lock, "_create", read_only)
    assert main(["fuzz", str(ops), *FAST, "--report", str(ops.parent / "r")]) == 2
    assert "cannot write the report in" in one_line(capsys)


def _disk_full_for(monkeypatch, when) -> None:
    """Writes of the report's files fail with ENOSPC where ``when(path, text)`` says so; a
    failing write leaves what a full disk does: the file created, empty."""
    from fuzzgrad.report import common

    write = Path.write_text

    def full(self, text, *args, **kwargs):
        if when(self, text):
            Path(self).touch()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return write(self, text, *args, **kwargs)

    monkeypatch.setattr(common.Path, "write_text", full)


def test_a_full_disk_is_one_line_no_empty_file_and_an_incomplete_run(ops, capsys, monkeypatch):
    report = ops.parent / "r"
    # everything but the run's first results.json fails: reproducers, the final reports
    _disk_full_for(monkeypatch, lambda path, text: '"finished"' in text or "repro" in str(path))
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 2
    assert "No space left on device" in one_line(capsys)
    assert not [p for p in report.iterdir() if p.is_file() and p.stat().st_size == 0]
    assert not list(report.glob("*.tmp"))
    monkeypatch.undo()
    assert main(["report", str(report)]) == 1  # says the run is incomplete
    assert "is incomplete" in capsys.readouterr().err


def test_a_disk_full_only_at_the_end_still_marks_the_run_incomplete(ops, capsys, monkeypatch):
    report = ops.parent / "r"
    _disk_full_for(monkeypatch, lambda path, text: "index.html" in path.name)
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 2
    one_line(capsys)
    assert "writing the report failed" in load_results(report)["run"]["incomplete"]
    assert list(report.glob("repro_*.py"))  # what was written before is kept


def test_a_reproducer_that_cannot_be_written_keeps_the_finding_and_marks_the_run_incomplete(
    ops, capsys, monkeypatch
):
    report = ops.parent / "r"
    _disk_full_for(monkeypatch, lambda path, text: "repro_" in path.name)
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "the report is incomplete: the reproducer of a finding of Hostile" in err, err
    assert "Traceback" not in err
    results = load_results(report)
    (failure,) = results["targets"][0]["failures"]
    assert failure["reproducer"] is None and "No space left" in failure["no_reproducer"]
    assert "could not be written" in results["run"]["incomplete"]
    assert "no reproducer: it could not be written" in (report / "summary.md").read_text()
    assert "not written: OSError" in (report / "index.html").read_text()
    monkeypatch.undo()
    assert main(["report", str(report)]) == 1  # says the run is incomplete
    assert "is incomplete" in capsys.readouterr().err


# -- row 6: a malformed Redis URL and its password ------------------------------------------------
@pytest.mark.parametrize(
    "url", ["redis://u:s3cret#pw@host:6399/0", "redis://u:s3cr/et@host:6399/0"], ids=["#", "/"]
)
def test_a_malformed_redis_url_never_shows_its_password(ops, capsys, url):
    assert main(["fuzz", str(ops), "--database", url, "--report", str(ops.parent / "r")]) == 2
    err = one_line(capsys)
    assert "s3c" not in err and "pw@" not in err and "et@" not in err and "***@host" in err
    assert not (ops.parent / "r").exists()


def test_a_well_formed_redis_url_passes_the_check():
    from fuzzgrad.nightly.database import redis_problem

    assert redis_problem("redis://u:s3cret%23pw@host:6399/0") is None


# -- row 7: --max-examples -1 ---------------------------------------------------------------------
@pytest.mark.parametrize("n", ["-1", "0"])
def test_max_examples_below_one_is_a_usage_error_before_anything_runs(ops, capsys, n):
    argv = ["fuzz", str(ops), "--max-examples", n, "--report", str(ops.parent / "r")]
    assert main(argv) == 2
    assert "--max-examples takes a number >= 1" in one_line(capsys)
    assert not (ops.parent / "r").exists()


# -- row 8: what a target starts does not outlive the run -----------------------------------------
ESCAPES = """
import os, sys, time
if os.fork() == 0:  # the child: its own session, then a grandchild it leaves behind
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    os._exit(0)
os.wait()
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")
def test_a_grandchild_that_left_the_session_is_killed_when_the_run_ends(tmp_path):
    from fuzzgrad.nightly.orphans import adopting

    pid_file = tmp_path / "pid"
    with adopting():
        subprocess.run([sys.executable, "-c", ESCAPES, str(pid_file)], check=True)
        assert wait_for(lambda: pid_file.is_file() and pid_file.read_text(), 60)
        grandchild = int(pid_file.read_text())
        assert _running(grandchild)  # adopted by this process, not by init
    assert wait_for(lambda: not _running(grandchild), 60), "the grandchild outlived the run"


# -- row 9: control characters in every report format ---------------------------------------------
def test_control_characters_are_neutralised_in_every_report_format(tmp_path):
    from fuzzgrad.report import render_all
    from fuzzgrad.report.results import results_document, write_results

    hostile = "a\x1b[2Jb\x07c\u202ed"
    record = {
        "name": f"T{hostile}",
        "module": f"m{hostile}",
        "status": "error",
        "examples": 1,
        "seconds": 0.1,
        "error": {"kind": "exception", "message": f"boom {hostile}"},
        "failures": [],
    }
    write_results(tmp_path / "results.json", results_document({"seed": 0}, [record]))
    render_all(tmp_path)
    for name in ("summary.md", "index.html", "junit.xml"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert not {"\x1b", "\x07", "\u202e"} & set(text), name
        assert "\\x1b" in text, name  # shown as its escape, as on the terminal


# -- row 10: interrupted targets keep what they did -----------------------------------------------
def test_an_interrupted_target_keeps_its_examples_time_and_findings(ops, monkeypatch):
    from fuzzgrad.nightly.plan import Plan
    from fuzzgrad.nightly.recorder import Recorder
    from fuzzgrad.registry.discovery import load_targets

    targets = load_targets([str(ops)])
    plan = Plan(specs=[], sys_path=[], targets=targets, report_dir=ops.parent / "r",
                max_examples=5, seed=0, properties=None, database=None)  # fmt: skip
    plan.report_dir.mkdir()
    recorder = Recorder(plan, {"seed": 0}, live=False)
    name = targets[0].name
    recorder.started(name, {})
    for _ in range(3):
        recorder.example(name)
    recorder.finding(name, "vjp", {"message": "grad[input=0] differs", "inputs": []})
    recorder.interrupted("SIGTERM")
    recorder.events.close()
    record = recorder.records[name]
    assert record["status"] == "failed" and record["interrupted"] == "SIGTERM"
    assert record["examples"] == 3 and record["seconds"] >= 0 and len(record["failures"]) == 1
    assert record["error"] is None


# -- row 11: --database none writes nothing in the current folder ---------------------------------
def test_database_none_writes_nothing_in_the_current_folder(tmp_path):
    (tmp_path / "ops.py").write_text(WRONG.format(name="Hostile"))
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    out = subprocess.run(
        [sys.executable, "-m", "fuzzgrad", "fuzz", "ops.py", *FAST, "--report", "r"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert not (tmp_path / ".hypothesis").exists()


# -- row 12: replaying a nondeterministic failure -------------------------------------------------
@pytest.mark.parametrize("flaky", [True, False], ids=["flaky", "always"])
def test_replaying_a_nondeterministic_failure_says_flaky(ops, capsys, monkeypatch, flaky):
    from fuzzgrad.engine import replay
    from fuzzgrad.report.reproducer import read_reproducer

    report = ops.parent / "r"
    assert main(["fuzz", str(ops), *FAST, "--report", str(report)]) == 1
    out = capsys.readouterr().out
    assert "    input: x: float64" in out  # first contact: the failure's input on its lines
    (path,) = report.glob("repro_*.py")
    data = read_reproducer(path)
    function = replay.load_target(data, path).function
    replays = [0]

    class Counted(replay.Checker):
        def check(self, case):
            replays[0] += 1
            return super().check(case)

    def sometimes(ctx, g):  # planted: right on every other replay
        return g * (4 if flaky and replays[0] % 2 else 3)

    monkeypatch.setattr(replay, "Checker", Counted)
    monkeypatch.setattr(function, "backward", staticmethod(sometimes))
    assert replay.run_reproducer(data, str(path), ["--runs", "4"]) == 1
    verdict = capsys.readouterr().out.strip().splitlines()[-1]
    if flaky:
        assert verdict.startswith("FLAKY: failed 2 of 4 replays; FAIL (vjp)"), verdict
    else:
        assert verdict.startswith("FAIL (vjp)"), verdict


# -- first contact --------------------------------------------------------------------------------
def test_an_exception_says_the_last_line_of_its_chain():
    from fuzzgrad.properties.checker import raised

    try:
        try:
            raise ValueError("the real cause\nin two lines: x must be positive")
        except ValueError as inner:
            raise RuntimeError("The following operation failed in the interpreter.") from inner
    except RuntimeError as exc:
        text = raised(exc)
    assert text == (
        "RuntimeError: The following operation failed in the interpreter. "
        "(from in two lines: x must be positive)"
    )
    assert raised(KeyError("k")) == "KeyError: 'k'"


def test_events_name_a_file_target_by_its_path_in_the_project(ops, capsys):
    (ops.parent / "pyproject.toml").write_text('[tool.fuzzgrad]\ntargets = ["ops.py"]\n')
    assert main(["fuzz", *FAST, "--report", str(ops.parent / "r")]) == 1
    (start,) = [e for e in events(ops.parent / "r") if e["event"] == "run_started"]
    assert start["target_info"]["Hostile"]["module"] == "ops.py"
