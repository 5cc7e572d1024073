"""Nightly runs lose nothing and leave nothing behind: a report rebuilt from the event log of a
run killed by SIGKILL, Redis outages, an unwritable database folder, scratch files, orphans,
repeatable seeded runs.

Real runs are `python -m fuzzgrad` subprocesses on tiny torch-only targets (see test_nightly).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_nightly import HEADER, by_name, events, fuzzgrad, scale_target, wait_for, write_targets
from test_nightly import WRONG_FOR_LARGE_VALUES as LARGE

from fuzzgrad.integrations.cli import main
from fuzzgrad.report.events import INCOMPLETE, rebuild, recover
from fuzzgrad.report.results import load_results


def _event(kind: str, **fields) -> dict:
    return {"event": kind, "time": "2030-01-01T00:00:00Z", **fields}


def _record(name: str, **extra) -> dict:
    record = {"name": name, "module": "m", "status": "passed", "xfail_reason": None}
    return {**record, "examples": 10, "seconds": 1.0, "error": None, "failures": [], **extra}


FAILURE = {"property": "vjp", "message": "grad wrong", "diagnosis": "always", "reproducer": "r.py"}


def test_a_log_without_its_end_rebuilds_every_target_and_finding():
    info = {n: {"module": "m", "xfail_reason": None} for n in "abcd"}
    log = [
        _event("run_started", run={"started": "2030-01-01T00:00:00Z"}, targets=list("abcd"),
               target_info=info),
        _event("target_started", target="a"),
        _event("target_finished", target="a", record=_record("a")),
        _event("target_started", target="b"),
        _event("failure", target="b", failure=FAILURE),
        _event("target_segment", target="b", record=_record("b", failures=[FAILURE])),
        _event("target_started", target="c"),
        _event("finding", target="c", property="vjp", message="grad wrong", inputs=[],
               reproducer="repro_c_vjp.py"),
        _event("finding", target="c", property="forward", message="out wrong", inputs=[]),
        _event("failure", target="c", failure={**FAILURE, "property": "forward"}),
        _event("target_started", target="b", round=2),
        _event("finding", target="b", property="purity", message="in place", inputs=[]),
    ]  # fmt: skip
    document = rebuild(log)
    assert document["run"]["incomplete"] == INCOMPLETE
    records = {r["name"]: r for r in document["targets"]}
    assert list(records) == list("abcd")
    assert records["a"] == _record("a")  # finished: its final record as it was
    b, c, d = records["b"], records["c"], records["d"]
    assert b["status"] == "error" and b["examples"] == 10  # a finished slice, then running
    assert [f["property"] for f in b["failures"]] == ["vjp", "purity"]
    assert b["failures"][1]["shrunk"] is False
    assert [(f["property"], f["shrunk"] if "shrunk" in f else True) for f in c["failures"]] == [
        ("forward", True),
        ("vjp", False),
    ]
    assert c["failures"][1]["reproducer"] == "repro_c_vjp.py"  # written when it was found
    assert c["error"]["kind"] == "interrupted" and "was running" in c["error"]["message"]
    assert d["status"] == "error" and "had not started" in d["error"]["message"]


def test_a_finished_log_is_not_incomplete():
    log = [
        _event("run_started", run={}, targets=["a"]),
        _event("target_finished", target="a", record=_record("a")),
        _event("run_finished", seconds=1.0),
    ]
    assert "incomplete" not in rebuild(log)["run"]


def test_a_torn_last_line_is_skipped(tmp_path):
    lines = [json.dumps(_event("run_started", run={}, targets=["a"])), '{"event": "find']
    (tmp_path / "events.jsonl").write_text("\n".join(lines))
    document = recover(tmp_path)
    assert document is not None and document["targets"][0]["name"] == "a"
    assert load_results(tmp_path)["run"]["incomplete"] == INCOMPLETE


#: (forward, backward) factors of the failing targets bug0, bug1, ...
SCALES = [(3, 2), (5, 4), (7, 6), (2, 5)]
FAILING = {
    f"bug{i}": scale_target(f"bug{i}", forward, backward)
    for i, (forward, backward) in enumerate(SCALES)
}


def test_sigkill_at_a_random_moment_loses_no_finding(tmp_path, capsys):
    """The chaos test: kill a real run at a random moment after its first finding; nothing it
    started survives it, and `report` rebuilds a results.json holding every finding and failure
    of the event log."""
    delay = random.uniform(0.0, 4.0)
    folder = write_targets(tmp_path / "targets", {**FAILING, "ok": scale_target("ok", 2, 2)})
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--budget", "60s", "--jobs", "2",
         "--properties", "forward,vjp", "--report", str(report), "--database", "none"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(lambda: any(e["event"] == "finding" for e in events(report)), 120)
        time.sleep(delay)
        family = descendants(proc.pid)  # the fork server, its workers, the resource tracker
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert family and wait_for(lambda: not any(running(p) for p in family), 10), family
    log = events(report)
    found = {(e["target"], e["property"]) for e in log if e["event"] == "finding"}
    shrunk = {(e["target"], e["failure"]["signature"]) for e in log if e["event"] == "failure"}
    assert main(["report", str(report)]) == 1, f"killed {delay:.2f}s after the first finding"
    err = capsys.readouterr().err
    assert "incomplete" in err
    results = load_results(report)
    assert results["run"]["incomplete"] == INCOMPLETE
    kept = {(r["name"], f["property"]) for r in results["targets"] for f in r["failures"]}
    signatures = {(r["name"], f["signature"]) for r in results["targets"] for f in r["failures"]}
    assert found <= kept, (delay, found - kept)
    assert shrunk <= signatures, (delay, shrunk - signatures)
    assert {r["name"] for r in results["targets"]} == {*FAILING, "ok"}
    for name in ("junit.xml", "summary.md", "index.html"):
        assert (report / name).stat().st_mtime >= (report / "events.jsonl").stat().st_mtime
    for name in ("summary.md", "index.html"):  # a reader of either sees the run was cut short
        assert "Incomplete run:" in (report / name).read_text(encoding="utf-8")
    # `repro` finds a reproducer of the killed run by its failure id
    failure = next(f for r in results["targets"] for f in r["failures"] if f["reproducer"])
    assert main(["repro", failure["signature"], "--report", str(report)]) == 1  # still a bug
    assert main(["report", str(report)]) == 1  # still incomplete the second time


def test_the_early_reproducer_stays_until_its_failure_is_logged(tmp_path):
    """The deterministic half of the chaos test: a finding's early (``_unshrunk``) reproducer
    is named by the log until the shrunk failure is logged, so it is removed only then, by the
    one writing the log; a worker that removed it after sending the failure left a run killed
    in between with a report pointing at a deleted file."""
    import torch

    from fuzzgrad.nightly.plan import Plan
    from fuzzgrad.nightly.recorder import Recorder
    from fuzzgrad.nightly.worker import fuzz_for
    from fuzzgrad.registry.target import make_target

    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 3

    target = make_target(WrongBackward, reference=lambda x: x * 2, name="wrong_backward")
    plan = Plan(specs=[], targets=[target], report_dir=tmp_path, budget=None)
    recorder = Recorder(plan, {}, live=False)
    sent: list[dict] = []
    try:
        fuzz_for(
            target, until=None, shrink_until=None, chunk=30, seed=0, properties=["vjp"],
            report_dir=tmp_path, database=None, example_timeout=None,
            on_finding=lambda prop, info: recorder.finding(target.name, prop, info),
            on_failure=sent.append,
        )  # fmt: skip
        (early,) = tmp_path.glob("*_unshrunk.py")  # the sender left it: not logged yet
        (failure,) = sent
        assert Path(failure["reproducer"]).is_file() and Path(failure["reproducer"]) != early
        recorder.failure(target.name, failure)
    finally:
        recorder.events.close()
    assert not early.exists()  # logged, then removed
    assert [e["event"] for e in events(tmp_path)][-1] == "failure"


def test_report_rebuilds_a_results_json_older_than_the_log(tmp_path):
    """A run killed after a target finished: results.json exists but lacks what came after
    (a target that finished, one that was running with a finding)."""
    folder = write_targets(tmp_path / "targets", {"bug0": FAILING["bug0"]})
    report = tmp_path / "report"
    assert main(
        ["fuzz", str(folder), "--no-isolate", "--properties", "vjp", "--max-examples", "10",
         "--report", str(report), "--database", "none"]
    ) == 1  # fmt: skip
    complete = load_results(report)
    assert main(["report", str(report)]) == 0  # a finished run: nothing rebuilt
    # As if killed after the target finished, while another one was running: no run_finished.
    lines = (report / "events.jsonl").read_text().splitlines(keepends=True)
    (report / "events.jsonl").write_text("".join(x for x in lines if "run_finished" not in x))
    with open(report / "events.jsonl", "a") as log:
        for e in (
            _event("target_started", target="late"),
            _event("finding", target="late", property="vjp", message="m", inputs=[]),
        ):
            log.write(json.dumps(e) + "\n")  # fmt: skip
    assert main(["report", str(report)]) == 1
    rebuilt = by_name(report)
    assert rebuilt["bug0"] == complete["targets"][0]
    assert rebuilt["late"]["failures"][0]["property"] == "vjp"


# -- databases ----------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_unreachable_at_start_warns_once_and_keeps_every_failure(tmp_path):
    pytest.importorskip(
        "redis", reason='the Redis client is not installed: pip install -e ".[redis]"'
    )
    folder = write_targets(tmp_path / "targets", {n: FAILING[n] for n in ("bug0", "bug1")})
    report = tmp_path / "report"
    # each target ends at its first failure: the budget only bounds a slow start on busy cores
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", "60s", "--jobs", "2", "--properties", "vjp",
        "--report", str(report), "--database", f"redis://127.0.0.1:{_free_port()}/0", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("warning:") == 1, out.stderr
    assert "Redis example database is unreachable" in out.stderr
    records = by_name(report)
    assert {n: r["status"] for n, r in records.items()} == {"bug0": "failed", "bug1": "failed"}
    assert all(r["examples"] > 0 for r in records.values())
    stored = [p for p in (report / "examples").rglob("*") if p.is_file()]
    assert stored, "the failures are not in the fallback database"


def test_redis_going_away_mid_run_loses_nothing(tmp_path, redis_server):
    gate = tmp_path / "server_gone"
    # The targets after the first wait, in their forward, until the server is gone: otherwise a
    # fast machine finishes them all before the test stops the server, and no outage is met.
    wait = f"        import os, time\n        while not os.path.exists({str(gate)!r}):\n"
    wait += "            time.sleep(0.05)\n"
    files = {
        f"bug{i}": scale_target(f"bug{i}", forward, backward, prelude=wait if i else "")
        for i, (forward, backward) in enumerate(SCALES)
    }
    folder = write_targets(tmp_path / "targets", files)
    report = tmp_path / "report"
    with redis_server() as url:
        proc = subprocess.Popen(
            # one job: the targets run one after another, bug0 first
            # no budget, and an example may wait for the gate as long as the machine is slow:
            # the test waits on events, never on the machine's speed
            [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--max-examples", "30",
             "--example-timeout", "600s", "--jobs", "1", "--properties", "vjp",
             "--report", str(report), "--database", url],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        finished = lambda: any(e["event"] == "target_finished" for e in events(report))  # noqa: E731
        assert wait_for(finished, 120)
    gate.touch()  # the server is gone: the targets still running or not started meet an outage
    stdout, stderr = proc.communicate(timeout=120)
    assert [e["target"] for e in events(report) if e["event"] == "target_started"][0] == "bug0"
    assert proc.returncode == 1, stderr
    assert stderr.count("warning:") == 1 and "unreachable" in stderr, stderr
    records = by_name(report)
    assert {r["status"] for r in records.values()} == {"failed"}, stdout
    for name, record in records.items():
        assert record["examples"] > 0 and record["failures"][0]["reproducer"], name
    assert [p for p in (report / "examples").rglob("*") if p.is_file()]


def test_a_missing_redis_client_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "redis", None)  # `import redis` raises ImportError
    assert main(["fuzz", "fuzzgrad.targets.seed", "--database", "redis://127.0.0.1:1/0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and 'pip install -e ".[redis]"' in err


def test_an_unwritable_database_folder_is_one_warning(tmp_path, capsys):
    folder = write_targets(tmp_path / "targets", {"bug0": FAILING["bug0"]})
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    report = tmp_path / "report"
    code = main(
        ["fuzz", str(folder), "--no-isolate", "--properties", "vjp", "--max-examples", "10",
         "--report", str(report), "--database", str(blocker / "examples")]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "cannot be written" in err, err
    assert [p for p in (report / "examples").rglob("*") if p.is_file()]


# -- processes --------------------------------------------------------------------------------
SPAWNS = HEADER + (
    "import os, subprocess\n"
    "PIDS = {pids!r}\n"
    "CHILD = []\n\n\n"
    "class F(torch.autograd.Function):\n"
    "    @staticmethod\n"
    "    def forward(ctx, x):\n"
    "        if not CHILD:\n"
    "            CHILD.append(subprocess.Popen(['sleep', '1000']))\n"
    "            with open(PIDS, 'a') as f:\n"
    "                f.write(f'{{CHILD[0].pid}}\\n')\n"
    "{then}"
    "        return x * 2\n\n"
    "    @staticmethod\n"
    "    def backward(ctx, g):\n"
    "        return g * 2\n\n\n"
    "fg.register(F, reference=lambda x: x * 2, name={name!r})\n"
)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_nothing_a_target_starts_outlives_the_run(tmp_path):
    pids = tmp_path / "pids.txt"
    folder = write_targets(
        tmp_path / "targets",
        {
            "a_crash": SPAWNS.format(pids=str(pids), then="        os.abort()\n", name="a_crash"),
            "b_hang": SPAWNS.format(
                pids=str(pids), then="        os.kill(os.getpid(), 19)\n", name="b_hang"
            ),  # SIGSTOP: hung where no Python handler runs
            "c_fine": SPAWNS.format(pids=str(pids), then="", name="c_fine"),
        },
    )
    report = tmp_path / "report"
    # Captured output: a pipe that a surviving child would hold open, and the run would wait on.
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", "30s", "--example-timeout", "2s", "--max-crashes", "1",
        "--properties", "vjp", "--report", str(report), "--database", "none",
        cwd=tmp_path, timeout=150,
    )  # fmt: skip
    status = {n: (r["status"], (r["error"] or {}).get("kind")) for n, r in by_name(report).items()}
    assert status == {
        "a_crash": ("error", "crash"),
        "b_hang": ("error", "timeout"),
        "c_fine": ("passed", None),
    }, out.stdout + out.stderr
    started = [int(line) for line in pids.read_text().split()]
    assert len(started) >= 3
    assert wait_for(lambda: not any(running(p) for p in started), 60), started
    assert not (report / ".work").exists()


def test_sigterm_removes_the_scratch_files(tmp_path):
    folder = write_targets(tmp_path / "targets", {"ok": scale_target("ok", 2, 2)})
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--budget", "120s",
         "--report", str(report), "--database", "none"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_for(lambda: any(e["event"] == "target_started" for e in events(report)), 120)
        assert (report / ".work").is_dir()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    assert not (report / ".work").exists()
    assert load_results(report)["run"]["interrupted"] == "SIGTERM"


# -- seeds ------------------------------------------------------------------------------------
def test_seeded_runs_write_byte_identical_reproducers(tmp_path):
    """Same cases in the same order per target; the budget leaves time to finish shrinking
    (each target ends early: every property fails)."""
    # `wrong` fails only for |x| > 1: found after a few examples, which the seed decides
    folder = write_targets(tmp_path / "targets", {"bug0": FAILING["bug0"], "wrong": LARGE})
    texts = []
    for run in ("one", "two"):
        report = tmp_path / run
        out = fuzzgrad(
            "fuzz", str(folder), "--seed", "7", "--budget", "60s", "--report", str(report),
            "--properties", "vjp", cwd=tmp_path,
        )  # fmt: skip
        assert out.returncode == 1, out.stderr
        texts.append({p.name: p.read_bytes() for p in sorted(report.glob("repro_*.py"))})
    assert texts[0] and texts[0].keys() == texts[1].keys()
    differ = [name for name in texts[0] if texts[0][name] != texts[1][name]]
    assert not differ, [(texts[0][n].decode(), texts[1][n].decode()) for n in differ[:1]]


def test_workers_that_die_while_importing_the_targets_end_the_run(tmp_path):
    dies = "import multiprocessing, os\nif multiprocessing.parent_process():\n    os.abort()\n"
    folder = write_targets(tmp_path / "targets", {"ok": dies + scale_target("ok", 2, 2)})
    report = tmp_path / "report"
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", "60s", "--report", str(report), "--database", "none",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1
    (record,) = load_results(report)["targets"]
    assert record["error"] == {
        "kind": "crash",
        "message": "not run: workers die while importing the targets",
    }
    lost = [e for e in events(report) if e["event"] == "worker_lost"]
    assert len(lost) == 3 and all(e["exitcode"] == -signal.SIGABRT for e in lost)


def test_a_hang_costs_its_share_of_the_budget_not_the_example_timeout(tmp_path):
    sleeps = scale_target("a_sleeps", 2, 2, "        __import__('time').sleep(1000)\n")
    folder = write_targets(tmp_path / "targets", {"a_sleeps": sleeps, "b_ok": FAILING["bug0"]})
    report = tmp_path / "report"
    # The default --example-timeout, 30s, is longer than a_sleeps's share.
    out = fuzzgrad(
        "fuzz", str(folder), "--budget", "40s", "--properties", "vjp", "--report", str(report),
        "--database", "none", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 1
    records = by_name(report)
    error = records["a_sleeps"]["error"]
    assert error["kind"] == "timeout" and Path(error["reproducer"]).is_file()
    (first,) = [e for e in events(report) if e["event"] == "target_started" and e["round"] == 1
                and e["target"] == "a_sleeps"]  # fmt: skip
    capped = float(error["message"].split("ran longer than ")[1].split("s")[0])
    assert capped < 30 and capped <= first["seconds"] * 1.25 + 2.0  # its slice, not 30 s
    assert records["bug0"]["status"] == "failed", records["bug0"]  # still fuzzed, found its bug


def test_the_running_example_slot_reads_the_last_whole_write_or_nothing(tmp_path):
    """A worker writes each example in place before running it (`CaseSlot`); the parent
    reads it after a death. A shorter write after a longer one reads as itself, and a write
    cut short reads as no case, never as a mix of two examples."""
    import torch

    from fuzzgrad.nightly.worker import CaseSlot, read_case
    from fuzzgrad.registry.target import make_target
    from fuzzgrad.report.reproducer import decode_tensor
    from fuzzgrad.strategies import Case

    target = make_target(lambda x: x * 2, reference=lambda x: x * 2, name="double")
    path = tmp_path / "case-1.json"
    slot = CaseSlot(path)
    big, small = torch.arange(500.0), torch.tensor([3.0])
    slot.write(target, Case(args=(big,), requires_grad=(True,), cotangents=()), 1)
    full = path.read_bytes()
    slot.write(target, Case(args=(small,), requires_grad=(True,), cotangents=()), 2)
    case = read_case(path)
    assert case is not None and case["example"] == 2
    assert torch.equal(decode_tensor(case["args"][0]["tensor"]), small)
    path.write_bytes(full[: len(full) // 2])  # killed halfway through a write
    assert read_case(path) is None
    assert read_case(tmp_path / "missing.json") is None
