"""``fuzzgrad report --merge OUT DIR...``: shards' and hosts' reports merged into one: every
target once, failures once per signature, examples and time summed, reproducers copied, the
schema kept (every results.json the tests write is validated)."""

from __future__ import annotations

import json
import shutil

import pytest
from test_nightly import by_name, scale_target, write_targets

from fuzzgrad.integrations.cli import main
from fuzzgrad.report.results import load_results

TARGETS = {"bug1": (3, 2), "bug2": (5, 4), "ok1": (2, 2), "ok2": (4, 4), "ok3": (6, 6)}


def fuzz(folder, report, *extra: str) -> int:
    return main(
        ["fuzz", str(folder), "--no-isolate", "--properties", "vjp", "--max-examples", "15",
         "--seed", "1", "--database", "none", "--report", str(report), *extra]
    )  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same targets fuzzed whole, in two shards, and by a second 'host' (another seed)."""
    base = tmp_path_factory.mktemp("merge")
    folder = write_targets(
        base / "targets", {n: scale_target(n, f, b) for n, (f, b) in TARGETS.items()}
    )
    out = {"whole": base / "whole", "s1": base / "s1", "s2": base / "s2", "host2": base / "host2"}
    assert fuzz(folder, out["whole"]) == 1
    assert fuzz(folder, out["s1"], "--shard", "1/2") in (0, 1)
    assert fuzz(folder, out["s2"], "--shard", "2/2") in (0, 1)
    assert main(
        ["fuzz", str(folder), "--no-isolate", "--properties", "vjp", "--max-examples", "15",
         "--seed", "2", "--database", "none", "--report", str(out["host2"])]
    ) == 1  # fmt: skip
    return out


def test_shards_merge_into_the_whole_run(runs, tmp_path, capsys):
    merged = tmp_path / "merged"
    assert main(["report", "--merge", str(merged), str(runs["s1"]), str(runs["s2"])]) == 1
    printed = capsys.readouterr().out
    assert "5 targets from 2 reports: 2 failed, 3 passed" in printed
    whole, shards = by_name(runs["whole"]), by_name(merged)
    assert {n: r["status"] for n, r in shards.items()} == {n: r["status"] for n, r in whole.items()}
    for name, record in shards.items():  # a shard's record, unchanged but for its reproducers
        assert record["examples"] == whole[name]["examples"]
        assert [f["signature"] for f in record["failures"]] == [
            f["signature"] for f in whole[name]["failures"]
        ]
    for name in ("junit.xml", "summary.md", "index.html"):
        assert (merged / name).is_file()
    run = load_results(merged)["run"]
    assert sorted(m["shard"] for m in run["merged"]) == ["1/2", "2/2"]
    assert (
        run["shard"] is None
        and run["seed"] == 1
        and run["argv"][:3] == ["fuzzgrad", "report", "--merge"]
    )
    seconds = [load_results(runs[s])["run"]["seconds"] for s in ("s1", "s2")]
    assert run["seconds"] == pytest.approx(sum(seconds), abs=1e-3)


def test_hosts_that_fuzzed_the_same_targets_sum_up_and_dedupe(runs, tmp_path):
    merged = tmp_path / "merged"
    assert main(["report", "--merge", str(merged), str(runs["whole"]), str(runs["host2"])]) == 1
    one, two, both = by_name(runs["whole"]), by_name(runs["host2"]), by_name(merged)
    for name in TARGETS:
        assert both[name]["examples"] == one[name]["examples"] + two[name]["examples"]
        seconds = one[name]["seconds"] + two[name]["seconds"]
        assert both[name]["seconds"] == pytest.approx(seconds, abs=2e-3)
    for bug in ("bug1", "bug2"):  # both hosts found it: one failure, one signature
        signatures = {f["signature"] for f in one[bug]["failures"] + two[bug]["failures"]}
        assert len(both[bug]["failures"]) == len(signatures) == 1
        assert both[bug]["status"] == "failed"


def test_reproducers_come_along_and_replay_by_id(runs, tmp_path):
    moved = tmp_path / "downloaded-s1"  # as a CI artifact lands elsewhere
    shutil.copytree(runs["s1"], moved)
    merged = tmp_path / "merged"
    main(["report", "--merge", str(merged), str(moved), str(runs["s2"])])
    failures = [f for r in by_name(merged).values() for f in r["failures"]]
    assert failures
    for failure in failures:
        assert (
            failure["reproducer"].startswith(str(merged))
            and (merged / failure["reproducer"].rsplit("/", 1)[1]).is_file()
        )
    assert main(["repro", failures[0]["signature"][:8], "--report", str(merged)]) == 1


def test_a_killed_shard_is_rebuilt_and_the_merge_is_incomplete(runs, tmp_path):
    killed = tmp_path / "killed"
    shutil.copytree(runs["s1"], killed)
    lines = (killed / "events.jsonl").read_text().splitlines()
    (killed / "events.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # no run_finished
    (killed / "results.json").unlink()
    merged = tmp_path / "merged"
    assert main(["report", "--merge", str(merged), str(killed), str(runs["s2"])]) == 1
    run = json.loads((merged / "results.json").read_text())["run"]
    assert "1 of the 2 merged runs did not finish" in run["incomplete"]
    assert set(by_name(merged)) == set(TARGETS)


@pytest.mark.parametrize(
    "args, message",
    [
        (["OUT"], "report --merge OUT DIR"),
        (["{s1}", "{s1}"], "is one of the reports to merge"),
        (["OUT", "{missing}"], "does not exist"),
    ],
)
def test_bad_merges_are_usage_errors(runs, tmp_path, args, message, capsys):
    paths = {"s1": runs["s1"], "missing": tmp_path / "missing"}
    argv = [a.format(**paths) if "{" in a else str(tmp_path / a) for a in args]
    assert main(["report", "--merge", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
