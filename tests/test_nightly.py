"""Nightly runs: budget, workers, containment, nothing lost, shared database, reports, diffs.

Targets are tiny Functions written to tmp_path (torch reference only, so JAX never compiles).
Runs that must survive a crash or be killed run `python -m fuzzgrad` in a subprocess; the rest
call `main` in this process.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzzgrad.integrations.cli import main
from fuzzgrad.nightly.plan import parse_duration, shard
from fuzzgrad.report.reproducer import read_reproducer
from fuzzgrad.report.results import load_results

HEADER = "import torch\nimport fuzzgrad as fg\n\n"


def scale_target(name: str, forward: float, backward: float, prelude: str = "") -> str:
    """A Function computing ``x * forward`` whose backward multiplies by ``backward``."""
    return HEADER + (
        f"class F(torch.autograd.Function):\n"
        f"    @staticmethod\n"
        f"    def forward(ctx, x):\n"
        f"{prelude}"
        f"        return x * {forward}\n\n"
        f"    @staticmethod\n"
        f"    def backward(ctx, g):\n"
        f"        return g * {backward}\n\n\n"
        f"fg.register(F, reference=lambda x: x * {forward}, name={name!r})\n"
    )


SEGFAULT = "        import ctypes\n        ctypes.string_at(0)\n"
# Blocking SIGALRM makes this hang like one in C code: only the parent's kill can end it.
HANG = (
    "        import signal, time\n"
    "        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
    "        time.sleep(1000)\n"
)
RAISES = HEADER + (
    "from hypothesis import strategies as st\n\n\n"
    "def broken(_):\n"
    "    raise RuntimeError('the inputs strategy is broken')\n\n\n"
    "fg.register(lambda x: x, reference=lambda x: x, inputs=st.integers().map(broken),\n"
    "            name='c_raises')\n"
)


def write_targets(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def fuzzgrad(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fuzzgrad", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def events(report: Path) -> list[dict]:
    path = report / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def by_name(report: Path) -> dict[str, dict]:
    return {t["name"]: t for t in load_results(report)["targets"]}


def test_crash_hang_and_raise_are_contained_and_the_rest_still_run(tmp_path):
    folder = write_targets(
        tmp_path / "targets",
        {
            "a_segfault": scale_target("a_segfault", 1, 1, SEGFAULT),
            "b_hang": scale_target("b_hang", 1, 1, HANG),
            "c_raises": RAISES,
            "d_wrong": scale_target("d_wrong", 3, 2),
            "e_right": scale_target("e_right", 2, 2),
        },
    )
    report = tmp_path / "report"
    budget = 40
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", f"{budget}s", "--jobs", "2", "--example-timeout", "3s",
        "--properties", "vjp", "--report", str(report), "--database", "none", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    # the run kept to its budget by its own account (never by this test's clock: a loaded
    # machine is slower, not wrong)
    assert load_results(report)["run"]["budget_seconds"] == budget
    records = by_name(report)
    status = {n: (r["status"], (r.get("error") or {}).get("kind")) for n, r in records.items()}
    assert status == {
        "a_segfault": ("error", "crash"),
        "b_hang": ("error", "timeout"),
        "c_raises": ("error", "exception"),
        "d_wrong": ("failed", None),
        "e_right": ("passed", None),
    }, out.stdout
    crash = records["a_segfault"]["error"]
    assert "SIGSEGV" in crash["message"] and "example 1" in crash["message"]
    assert "string_at" in crash["traceback"]  # faulthandler's trace of the worker
    assert crash["inputs"] and Path(crash["reproducer"]).is_file()
    assert crash["example"] == 1 and crash["inputs"][0]["name"] == "x"  # what was running
    replay = subprocess.run(
        [sys.executable, crash["reproducer"]], capture_output=True, text=True, timeout=240
    )
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert replay.stdout.strip().endswith("crashes the process (signal SIGSEGV)")
    hang = records["b_hang"]["error"]
    assert "worker was killed" in hang["message"] and Path(hang["reproducer"]).is_file()
    assert read_reproducer(hang["reproducer"])["example_timeout"] == 3  # the run's
    assert "running example 1" in (report / "summary.md").read_text()
    assert "the inputs strategy is broken" in records["c_raises"]["error"]["message"]
    assert records["e_right"]["examples"] > 0
    (failure,) = records["d_wrong"]["failures"]
    assert failure["property"] == "vjp" and len(failure["signature"]) == 12
    for name in ("junit.xml", "summary.md", "index.html", "events.jsonl"):
        assert (report / name).is_file(), name


def test_python_level_hang_is_a_timeout_with_a_reproducer(tmp_path):
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.discovery import load_targets

    path = write_targets(
        tmp_path, {"sleepy": scale_target("sleepy", 1, 1, "        __import__('time').sleep(60)\n")}
    )
    (target,) = load_targets([str(path / "sleepy.py")])
    started = time.monotonic()
    result = fuzz_target(target, max_examples=5, example_timeout=0.5, report_dir=tmp_path)
    assert time.monotonic() - started < 55  # cut short: not the one 60 s sleep
    assert result.status == "error" and result.error["kind"] == "timeout"
    assert result.error["message"] == "example 1 ran longer than 0.5s"
    assert Path(result.error["reproducer"]).is_file()


def wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_run_keeps_what_it_found(tmp_path, sig):
    folder = write_targets(
        tmp_path / "targets",
        {"a_wrong": scale_target("wrong", 3, 2), "b_right": scale_target("right", 2, 2)},
    )
    report = tmp_path / "report"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--budget", "120s",
             "--properties", "vjp", "--report", str(report), "--database", "none"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            found = wait_for(lambda: any(e["event"] == "finding" for e in events(report)), 120)
            assert found, log.read_text()
            proc.send_signal(sig)
            proc.wait(30)
        finally:
            proc.kill()
            proc.wait()
    (worker,) = [e["pid"] for e in events(report) if e["event"] == "worker_ready"]
    # a loaded machine may take a while to reap it: wait on the event, not on a speed
    assert wait_for(lambda: not Path(f"/proc/{worker}").exists(), 90), "the worker outlived it"
    finding = next(e for e in events(report) if e["event"] == "finding")
    assert finding["target"] == "wrong" and finding["property"] == "vjp"
    assert finding["inputs"] and "grad[input=0]" in finding["message"]
    if sig == signal.SIGTERM:  # the final results.json marks what did not finish
        assert proc.returncode == 1
        results = load_results(report)
        assert results["run"]["interrupted"] == "SIGTERM"
        assert {t["name"] for t in results["targets"]} == {"wrong", "right"}
        kinds = {t["name"]: (t.get("error") or {}).get("kind") for t in results["targets"]}
        assert "interrupted" in kinds.values()
        assert (report / "index.html").is_file()


WRONG_FOR_LARGE_VALUES = HEADER + (
    "class F(torch.autograd.Function):\n"
    "    @staticmethod\n"
    "    def forward(ctx, x):\n"
    "        ctx.save_for_backward(x)\n"
    "        return x * 3\n\n"
    "    @staticmethod\n"
    "    def backward(ctx, g):\n"
    "        (x,) = ctx.saved_tensors\n"
    "        return g * torch.where(x.abs() > 1, 2.0, 3.0).to(g.dtype)\n\n\n"
    "fg.register(F, reference=lambda x: x * 3, name='wrong')\n"
)


def test_a_failure_found_by_one_run_replays_first_in_another_through_redis(tmp_path, redis_url):
    import redis

    folder = write_targets(tmp_path / "targets", {"wrong": WRONG_FOR_LARGE_VALUES})
    runs = []
    for i in range(2):  # no --seed: Hypothesis ignores the database under an explicit seed
        report = tmp_path / f"run{i}"
        code = main(
            ["fuzz", str(folder), "--budget", "30s", "--max-examples", "20", "--no-isolate",
             "--properties", "vjp", "--report", str(report), "--database", redis_url]
        )  # fmt: skip
        assert code == 1
        runs.append(by_name(report)["wrong"])
    first, second = (r["failures"][0] for r in runs)
    assert first["signature"] == second["signature"]
    assert second["examples_to_find"] == 1  # replayed by the reuse phase before generating
    client = redis.Redis.from_url(redis_url)
    # keyed by the file's stem and the target's name (`Target.key`), not by the folder
    key = b"fuzzgrad:wrong.wrong:fuzzgrad.case.v1"
    assert client.scard(key) >= 1  # the shrunk failure, stored under a per-target prefix
    client.delete(*client.keys(key + b"*"))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run A: bug1 and bug2 fail. Run B: bug1 still fails, bug2 fixed, bug3 new."""
    base = tmp_path_factory.mktemp("diff")
    versions = {
        "a": {"bug1": (3, 2), "bug2": (5, 4), "bug3": (7, 7)},
        "b": {"bug1": (3, 2), "bug2": (5, 5), "bug3": (7, 6)},
    }
    reports = {}
    for run, targets in versions.items():
        folder = write_targets(
            base / run, {n: scale_target(n, f, b) for n, (f, b) in targets.items()}
        )
        reports[run] = base / f"report_{run}"
        baseline = ["--baseline", str(reports["a"])] if run == "b" else []
        code = main(
            ["fuzz", str(folder), "--budget", "20s", "--no-isolate", "--properties", "vjp",
             "--max-examples", "20", "--report", str(reports[run]), "--database", "none",
             *baseline]
        )  # fmt: skip
        assert code == 1
    return reports


def test_the_diff_shows_new_fixed_and_still_failing(two_runs, capsys):
    code = main(["report", "--compare", str(two_runs["a"]), str(two_runs["b"])])
    out = capsys.readouterr().out
    assert code == 1  # something new
    assert out.startswith("1 new, 1 fixed, 1 still failing")
    sections = out.split("\n\n")
    assert "bug3" in next(s for s in sections if s.startswith("New:"))
    assert "bug2" in next(s for s in sections if s.startswith("Fixed:"))
    assert "bug1" in next(s for s in sections if s.startswith("Still failing:"))
    summary = (two_runs["b"] / "summary.md").read_text()
    assert "Compared with the previous run" in summary and "#### Fixed (1)" in summary


def test_junit_xml_parses(two_runs):
    from junitparser import Failure, JUnitXml

    xml = JUnitXml.fromfile(str(two_runs["b"] / "junit.xml"))
    cases = {case.name: case for suite in xml for case in suite}
    assert set(cases) >= {"bug1", "bug2", "bug3"}
    assert any(isinstance(r, Failure) for r in cases["bug1"].result)
    assert not cases["bug2"].result


def test_index_html_renders_in_headless_chromium(two_runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "index.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1280,2000", (two_runs["b"] / "index.html").resolve().as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_report_rerenders_a_directory(two_runs, capsys):
    (two_runs["a"] / "index.html").unlink()
    assert main(["report", str(two_runs["a"])]) == 0
    assert (two_runs["a"] / "index.html").is_file()
    assert "junit.xml" in capsys.readouterr().out


def test_repro_by_failure_id_and_as_a_pytest_regression_test(two_runs, tmp_path):
    record = by_name(two_runs["b"])["bug1"]
    sig = record["failures"][0]["signature"]
    assert main(["repro", sig[:6], "--report", str(two_runs["b"])]) == 1
    test_file = tmp_path / "test_regress_bug1.py"
    assert (
        main(["repro", "--pytest", sig, "--report", str(two_runs["b"]), "-o", str(test_file)]) == 0
    )
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1 and "1 failed" in out.stdout, out.stdout  # the bug is still there


def test_budget_is_respected(tmp_path):
    """Budget accounting, not wall-clock seconds (CI machines are shared): each target's first
    slice is its share of the time left, in order, before any second round; no slice is longer
    than the time left; a target the budget did not reach says so."""
    names = ("one", "two", "three")
    folder = write_targets(tmp_path / "targets", {n: scale_target(n, 2, 2) for n in names})
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", "10s", "--properties", "vjp", "--report",
        str(tmp_path / "report"), "--database", "none", cwd=tmp_path,
    )  # fmt: skip
    results = load_results(tmp_path / "report")
    assert results["run"]["budget_seconds"] == 10
    slices = [e for e in events(tmp_path / "report") if e["event"] == "target_started"]
    firsts = [e for e in slices if e["round"] == 1]
    order = next(e for e in events(tmp_path / "report") if e["event"] == "run_started")["targets"]
    assert sorted(order) == sorted(names)
    assert [e["target"] for e in firsts] == order[: len(firsts)]  # in the run's order
    assert [e["round"] for e in slices] == sorted(e["round"] for e in slices)
    for waiting, e in zip(range(len(names), 0, -1), firsts):
        assert 0 < e["left"] <= 10
        assert e["seconds"] == pytest.approx(e["left"] / waiting, abs=2e-3)  # one job
    assert all(0 < e["seconds"] <= e["left"] for e in slices)
    outcomes = {(t["status"], (t.get("error") or {}).get("kind")) for t in results["targets"]}
    assert outcomes <= {("passed", None), ("error", "budget")}, out.stdout + out.stderr
    started = {e["target"] for e in slices}
    for t in results["targets"]:
        # a slice may start and, on a loaded machine, end before its first example: that
        # target is not passed (0 examples judge nothing) but an error of kind budget
        assert (t["status"] == "passed") == (t["examples"] > 0), t
        assert t["status"] != "passed" or t["name"] in started


def test_shards_are_deterministic_disjoint_and_cover_everything():
    class T:
        def __init__(self, name):
            self.name = name

    targets = [T(f"target_{i}") for i in range(40)]
    shards = [[t.name for t in shard(targets, i, 4)] for i in range(1, 5)]
    assert sorted(sum(shards, [])) == sorted(t.name for t in targets)
    assert all(shards)  # 40 names over 4 shards: none empty
    assert shards == [[t.name for t in shard(list(reversed(targets)), i, 4)][::-1] for i in
                      range(1, 5)]  # fmt: skip
    assert [t.name for t in shard(targets[:20], 2, 4)] == [n for n in shards[1] if
                                                          int(n.split("_")[1]) < 20]  # fmt: skip


@pytest.mark.parametrize(
    "option",
    [
        ["--shard", "0/2"],
        ["--shard", "3/2"],
        ["--jobs", "many"],
        ["--budget", "soon"],
        ["--max-crashes", "0"],
    ],
)
def test_bad_nightly_options_are_usage_errors(option, capsys):
    assert main(["fuzz", "fuzzgrad.targets.seed", *option]) == 2
    assert "error:" in capsys.readouterr().err


def test_durations():
    assert [parse_duration(t) for t in ("90s", "30m", "1h", "1h30m", "45")] == [
        90,
        1800,
        3600,
        5400,
        45,
    ]
