"""``--devices``: local workers pinned to GPUs through CUDA_VISIBLE_DEVICES, as Ray pins tasks.

This machine has no GPU: the device count is faked (CUDA_VISIBLE_DEVICES, or torch's count), and
the workers' pinning is read from inside them, by a target that writes what it sees.
"""

from __future__ import annotations

import collections

import pytest
from test_nightly import HEADER, by_name, write_targets

from fuzzgrad.integrations.cli import main
from fuzzgrad.nightly.devices import device_slots, parse_fraction, visible_gpus, wants_gpu


def test_slots_one_per_gpu_shared_by_fraction_or_grouped():
    assert device_slots(["0", "1"]) == ["0", "1"]
    assert device_slots(["0", "1"], 0.5) == ["0", "0", "1", "1"]
    assert device_slots(["0", "1", "2"], 0.34) == ["0", "0", "1", "1", "2", "2"]
    assert device_slots(["0", "1", "2"], 2) == ["0,1"]  # the odd one out is not used
    assert device_slots([], 0.5) == []


def test_visible_gpus_follow_cuda_visible_devices_else_the_count(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")  # CUDA stops at the first -1
    assert visible_gpus() == ["1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus(count=3) == ["0", "1", "2"]
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert visible_gpus() == ["0", "1"]


def test_fractions():
    assert parse_fraction("0.25", "--x") == 0.25 and parse_fraction("2", "--x") == 2
    for bad in ("0", "-1", "1.5", "nan", "inf", "one"):
        with pytest.raises(ValueError, match="--x takes a fraction"):
            parse_fraction(bad, "--x")


def test_cpu_only_targets_ask_for_no_gpu():
    class T:
        def __init__(self, **options):
            self.options = options

    assert wants_gpu(T()) and wants_gpu(T(devices=("cpu", "cuda")))
    assert not wants_gpu(T(devices=("cpu",)))


SEES = HEADER + (
    "import os\n\n\n"
    "def f(x):\n"
    "    with open({log!r}, 'a') as out:\n"
    "        out.write(f\"{{os.getpid()}} {{os.environ.get('CUDA_VISIBLE_DEVICES')}}\\n\")\n"
    "    return x * 2\n\n\n"
    "fg.register(f, reference=lambda x: x * 2, name={name!r})\n"
)


@pytest.mark.parametrize("per_task, expected", [("1", {"0": 1, "1": 1}), ("0.5", {"0": 2, "1": 2})])
def test_devices_auto_runs_one_worker_per_gpu_slot_pinned(
    tmp_path, monkeypatch, per_task, expected
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # two fake GPUs
    log = tmp_path / "seen.txt"
    names = [f"t{i}" for i in range(4)]
    folder = write_targets(
        tmp_path / "targets", {n: SEES.format(log=str(log), name=n) for n in names}
    )
    code = main(
        ["fuzz", str(folder), "--devices", "auto", "--gpus-per-task", per_task,
         "--max-examples", "3", "--properties", "forward", "--database", "none",
         "--report", str(tmp_path / "report")]
    )  # fmt: skip
    assert code == 0
    assert {r["status"] for r in by_name(tmp_path / "report").values()} == {"passed"}
    pinned = dict(line.split() for line in log.read_text().splitlines())  # worker pid -> GPUs
    # every worker that fuzzed saw one GPU, and no GPU had more workers than its slots (a
    # worker that starts late may find the 4 quick targets taken by the others)
    counts = collections.Counter(pinned.values())
    assert set(counts) <= set(expected) and all(counts[g] <= n for g, n in expected.items())
    assert len(counts) == len(expected) or len(pinned) < len(names), counts


@pytest.mark.parametrize(
    "option, message",
    [
        (["--devices", "0,,1"], "--devices takes auto or a list"),
        (["--devices", "0,1", "--jobs", "3"], "--jobs 3 and --devices 0,1 disagree"),
        (["--gpus-per-task", "1.5"], "--gpus-per-task takes a fraction"),
        (["--ray-address", "auto"], "--ray-address goes with --executor ray"),
        (["--cpus-per-task", "0.5"], "--cpus-per-task goes with --executor ray"),
        (["--executor", "ray", "--devices", "auto"], "Ray pins each task"),
        (["--database", "github-artifact://owner-only"], "github-artifact://OWNER/REPO"),
    ],
)
def test_bad_device_and_executor_options_are_usage_errors(option, message, capsys):
    assert main(["fuzz", "fuzzgrad.targets.seed", *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_devices_without_a_gpu_runs_unpinned_workers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    code = main(
        ["fuzz", "fuzzgrad.targets.seed", "-k", "MyElementWise", "--devices", "auto",
         "--max-examples", "5", "--database", "none", "--report", str(tmp_path / "r")]
    )  # fmt: skip
    assert code == 0
    assert "no GPU to pin workers to" in capsys.readouterr().out
