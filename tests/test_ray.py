"""``fuzzgrad fuzz --executor ray`` against a real local Ray cluster (2 CPUs), started and
stopped here: the same verdicts as the process executor on good, wrong, crashing and hanging
targets; a target fuzzed by several workers at once; a killed driver that loses nothing; the
findings of many workers at once, none lost.

Ray binds to the machine's external address even when told 127.0.0.1, and test traffic stays
on loopback: the outer test re-runs this module's tests in a child process inside a network
namespace of its own (``unshare -n``, then ``ip link set lo up``), and skips, saying why, where
namespaces or Ray are unavailable. The inner tests refuse to run outside one, so Ray never starts
on the host network.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_nightly import (
    HANG,
    SEGFAULT,
    by_name,
    events,
    scale_target,
    wait_for,
    write_targets,
)

from fuzzgrad.integrations.cli import main
from fuzzgrad.report.results import load_results

ROOT = Path(__file__).resolve().parent.parent
#: What the kernel's OOM killer does to a worker.
OOM_KILLED = "        import os, signal\n        os.kill(os.getpid(), signal.SIGKILL)\n"
NETNS = "FUZZGRAD_NETNS"
INNER = os.environ.get(NETNS) == "1"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning")


def test_ray_runs_in_a_network_namespace_of_its_own(tmp_path):
    """Run the tests below in a child ``unshare -n`` process (loopback only)."""
    if INNER:
        pytest.skip("already inside the network namespace")
    pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("the Ray tests run in a network namespace: install util-linux and iproute2")
    probe = subprocess.run(
        [unshare, "-n", "sh", "-c", "ip link set lo up"], capture_output=True, text=True
    )
    if probe.returncode:
        pytest.skip(
            "network namespaces are unavailable here (`unshare -n` needs root or user "
            f"namespaces: {probe.stderr.strip()}); the Ray tests never start Ray on the host "
            "network"
        )
    script = (
        'ip link set lo up && exec "$0" -m pytest -q -p no:xdist -rs --durations 0 '
        '--basetemp "$1" -k "not of_its_own" "$2"'
    )
    out = subprocess.run(
        [unshare, "-n", "sh", "-c", script, sys.executable, str(tmp_path / "inner"), __file__],
        env={**os.environ, NETNS: "1"}, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    report = out.stdout[-8000:] + out.stderr[-4000:]
    assert out.returncode == 0, report
    assert " passed" in out.stdout and " skipped" not in out.stdout.splitlines()[-1], report
    print(out.stdout)  # the inner tests' durations


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for this module (in the namespace only); its address."""
    if not INNER:
        pytest.skip("runs in a network namespace of its own (see the first test)")
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    temp = tempfile.mkdtemp(prefix="fgray")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
        logging_level=logging.WARNING, _temp_dir=temp,
    )  # fmt: skip

    def warm() -> None:  # defined here, it travels by value (the workers cannot import tests)
        from fuzzgrad.nightly.worker import context

        context(start=True).Process(target=time.sleep, args=(1,)).start()  # once torch is in

    try:
        # Warm both Ray workers up (their fork servers import torch and JAX), so that no run's
        # budget is spent starting them: one task each, at once.
        ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(2)])
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_an_unreachable_ray_address_is_a_usage_error_that_says_what_to_do(tmp_path, capsys):
    if not INNER:
        pytest.skip("runs in a network namespace of its own (see the first test)")
    pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]"')
    folder = write_targets(tmp_path / "targets", {"right": scale_target("right", 2, 2)})
    report = tmp_path / "report"
    code = main(["fuzz", str(folder), "--executor", "ray", "--ray-address", "127.0.0.1:9",
                 "--budget", "5s", "--report", str(report)])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot connect to a Ray cluster at --ray-address 127.0.0.1:9" in err, err
    assert "ray start --head" in err and "leave --ray-address out" in err, err
    assert not (report / "events.jsonl").exists()  # nothing ran: no report


def outcomes(report: Path) -> dict[str, tuple]:
    return {
        n: (r["status"], (r.get("error") or {}).get("kind")) for n, r in by_name(report).items()
    }


def test_the_same_verdicts_as_the_process_executor(cluster, tmp_path):
    folder = write_targets(
        tmp_path / "targets",
        {
            "a_segfault": scale_target("a_segfault", 1, 1, SEGFAULT),
            "b_hang": scale_target("b_hang", 1, 1, HANG),
            "c_oom_killed": scale_target("c_oom_killed", 1, 1, OOM_KILLED),
            "d_wrong": scale_target("d_wrong", 3, 2),
            "e_right": scale_target("e_right", 2, 2),
        },
    )
    # No --budget: one round of examples each, so that every target runs however loaded the
    # machine is (a 10 s budget left e_right "not run" under load); the verdicts, not the
    # clock, are compared.
    options = ["--example-timeout", "2s", "--properties", "vjp", "--database", "none",
               "--max-examples", "50"]  # fmt: skip
    # The process executor runs alongside, not after.
    local = subprocess.Popen(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--jobs", "2", *options,
         "--report", str(tmp_path / "process")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    report = tmp_path / "ray"
    before = _scratch_folders()
    try:
        code = main(["fuzz", str(folder), "--executor", "ray", "--ray-address", cluster,
                     *options, "--report", str(report)])  # fmt: skip
        crash = by_name(report)["a_segfault"]["error"]
        replay = subprocess.run([sys.executable, crash["reproducer"]], capture_output=True,
                                text=True, timeout=240)  # fmt: skip
        output = local.communicate(timeout=240)[0]
    finally:
        local.kill()
    assert local.returncode == 1, output
    assert code == 1
    expected = {
        "a_segfault": ("error", "crash"),
        "b_hang": ("error", "timeout"),
        "c_oom_killed": ("error", "crash"),
        "d_wrong": ("failed", None),
        "e_right": ("passed", None),
    }
    assert outcomes(tmp_path / "process") == outcomes(report) == expected
    records = by_name(report)
    crash = records["a_segfault"]["error"]
    assert "SIGSEGV" in crash["message"] and crash["example"] == 1 and crash["inputs"]
    assert "string_at" in crash["traceback"]  # the worker's faulthandler trace, sent back
    assert Path(crash["reproducer"]).parent == report  # written by the driver, in the report
    assert replay.stdout.strip().endswith("crashes the process (signal SIGSEGV)"), replay.stdout
    assert "SIGKILL" in records["c_oom_killed"]["error"]["message"]
    hang = records["b_hang"]["error"]
    assert "worker was killed" in hang["message"] and Path(hang["reproducer"]).is_file()
    (failure,) = records["d_wrong"]["failures"]
    assert Path(failure["reproducer"]).parent == report and Path(failure["reproducer"]).is_file()
    for folder in (report, tmp_path / "process"):  # the shrunk reproducer replaced the early one
        assert not list(folder.glob("*_unshrunk.py")), folder
    log = events(report)
    assert all("unit" in e for e in log if e["event"] == "target_started")
    started = [e for e in log if e["event"] == "target_started"]
    crashes = [e for e in started if e["target"] == "a_segfault"]
    # Each unit ran once (Ray never retried one), died, and the driver resumed the target from
    # its next round, up to 3 deaths at the same place.
    assert 1 <= len(crashes) <= 3 and crash.get("count", 1) == len(crashes)
    assert ("3 times at the same place" in crash["message"]) == (len(crashes) == 3)
    assert load_results(report)["run"]["executor"] == "ray"
    assert not _scratch_folders() - before  # the units' scratch folders were removed


def _scratch_folders() -> set[Path]:
    """The Ray workers' scratch folders (``fuzzgrad-<run>-...`` in the temp folder)."""
    pattern = re.compile(r"fuzzgrad-[0-9a-f]{8}-")
    return {p for p in Path(tempfile.gettempdir()).iterdir() if pattern.match(p.name)}


def test_one_target_is_fuzzed_by_both_workers_at_once_from_distinct_streams(cluster, tmp_path):
    folder = write_targets(tmp_path / "targets", {"only": scale_target("only", 2, 2)})
    report = tmp_path / "report"
    code = main(["fuzz", str(folder), "--executor", "ray", "--ray-address", cluster,
                 "--budget", "6s", "--seed", "3", "--properties", "vjp",
                 "--report", str(report)])  # fmt: skip
    assert code == 0
    log = events(report)
    units = {e["unit"]: e for e in log if e["event"] == "target_started"}
    ends = {e["unit"]: e for e in log if e["event"] in ("target_segment", "target_finished")}
    assert set(units) == set(ends) and len(units) >= 2
    assert {e["stream"] for e in units.values()} >= {0, 1}  # two seed streams
    starts = [e["first_round"] for e in units.values()]
    assert len(set(starts)) == len(starts)  # no two units draw the same seeded rounds
    assert _most_at_once(log) == 2  # both CPUs on the one target
    (record,) = load_results(report)["targets"]
    segments = [e["record"]["examples"] for e in ends.values() if e["event"] == "target_segment"]
    assert record["examples"] > sum(segments) > 0  # every unit's examples count
    pids = {e["pid"] for e in log if e["event"] == "worker_ready"}
    assert len(pids) == 2  # one fuzzgrad worker under each Ray worker


def _most_at_once(log: list[dict]) -> int:
    running, most = set(), 0
    for e in log:
        if e["event"] == "target_started":
            running.add(e["unit"])
        elif e["event"] in ("target_segment", "target_finished"):
            running.discard(e.get("unit"))
        most = max(most, len(running))
    return most


def test_a_killed_driver_loses_nothing_it_logged_and_leaves_no_worker(cluster, tmp_path):
    folder = write_targets(
        tmp_path / "targets",
        {"a_wrong": scale_target("wrong", 3, 2), "b_right": scale_target("right", 2, 2)},
    )
    report = tmp_path / "report"
    driver = subprocess.Popen(
        [sys.executable, "-m", "fuzzgrad", "fuzz", str(folder), "--executor", "ray",
         "--ray-address", cluster, "--jobs", "1", "--budget", "120s", "--properties", "vjp",
         "--database", "none", "--report", str(report)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        found = wait_for(lambda: any(e["event"] == "finding" for e in events(report)), 120)
        assert found, "no finding logged"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        driver.kill()
        driver.wait()
    workers = [e["pid"] for e in events(report) if e["event"] == "worker_ready"]
    assert workers
    for pid in workers:  # Ray ends the job's workers, and each takes its fuzzgrad worker along
        assert wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 60), pid
    assert main(["report", str(report)]) == 1  # rebuilt from the log: incomplete
    results = load_results(report)
    assert results["run"]["incomplete"]
    wrong = by_name(report)["wrong"]
    assert wrong["failures"] and wrong["failures"][0]["property"] == "vjp"


def test_the_driver_logs_every_finding_of_many_workers_at_once(cluster, tmp_path):
    sys.path.insert(0, str(ROOT))
    from bench.ray_scale import fake_run
    from fuzzgrad.registry.discovery import load_targets

    folder = write_targets(
        tmp_path / "targets", {f"t{i}": scale_target(f"t{i}", 2, 2) for i in range(3)}
    )
    out = fake_run(tmp_path / "report", load_targets([str(folder)]), budget=4.0, cpus_per_task=0.2)
    log = out["events"]
    sent = sum(t["examples"] for t in out["results"]["targets"])
    assert sent == sum(e["event"] == "finding" for e in log) > 0  # none lost
    assert _most_at_once(log) > 3  # more units at once than targets
    first = [e for e in log if e["event"] == "finding" and e["reproducer"]]
    assert first and all(Path(e["reproducer"]).parent == tmp_path / "report" for e in first)
    assert all(Path(e["reproducer"]).is_file() for e in first)  # the files came along
    json.dumps(out["results"])
