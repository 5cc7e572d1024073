"""Bad input files and values get one line naming what is wrong and exit status 2, never a
traceback: malformed reproducers, report folders that are not there, --max-memory out of range.
(Malformed results.json files: tests/test_render.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fuzzgrad.integrations.cli import main
from fuzzgrad.nightly.plan import parse_memory
from fuzzgrad.registry.discovery import load_targets
from fuzzgrad.report.reproducer import write_reproducer
from fuzzgrad.strategies import Case, CotangentRecipe, Values


@pytest.fixture(scope="module")
def reproducer_text(tmp_path_factory) -> str:
    (target,) = load_targets(["fuzzgrad.targets.seed"], names=["MyElementWise"])
    x = torch.ones(2, dtype=torch.float64)
    case = Case((x, x), (True, True), (CotangentRecipe(Values(seed=0)),), (None, None))
    folder = tmp_path_factory.mktemp("good")
    return write_reproducer(folder, target, "vjp", case, message="m", diagnosis="d").read_text()


def _data(text: str) -> dict:
    return json.loads(re.search(r'DATA = json\.loads\(r"""(.*?)"""\)', text, re.S).group(1))


def _with_data(text: str, change) -> str:
    data = _data(text)
    change(data)
    block = re.search(r'DATA = json\.loads\(r"""(.*?)"""\)', text, re.S)
    return text[: block.start(1)] + json.dumps(data, indent=1) + text[block.end(1) :]


def _tensor(data: dict) -> dict:
    return data["args"][0]["tensor"]


MALFORMED = {
    "not-utf8": lambda t: t.encode("utf-8").replace(b"fuzzgrad reproducer", b"\xff\xfe\xfd"),
    "no-data-block": lambda t: t.replace("DATA = json.loads", "DATA = dict"),
    "not-json": lambda t: t.replace('"args": [', '"args": [[', 1),
    "not-an-object": lambda t: _with_data(t, lambda d: d.clear()).replace("{}", "[1, 2]"),
    "newer-format": lambda t: _with_data(t, lambda d: d.update(format_version=99)),
    "no-target": lambda t: _with_data(t, lambda d: d.pop("target")),
    "target-not-text": lambda t: _with_data(t, lambda d: d.update(target=["x"])),
    "args-not-a-list": lambda t: _with_data(t, lambda d: d.update(args={"0": 1})),
    "requires-grad-length": lambda t: _with_data(t, lambda d: d["requires_grad"].pop()),
    "bad-base64": lambda t: _with_data(t, lambda d: _tensor(d).update(data="%%%")),
    "not-zlib": lambda t: _with_data(t, lambda d: _tensor(d).update(data="AAAA")),
    "unknown-dtype": lambda t: _with_data(t, lambda d: _tensor(d).update(dtype="float99")),
    "storage-too-small": lambda t: _with_data(t, lambda d: _tensor(d).update(size=[1000])),
    "value-not-an-object": lambda t: _with_data(t, lambda d: d["args"].__setitem__(0, 3)),
    "bad-recipe": lambda t: _with_data(
        t, lambda d: d["cotangent_recipes"][0]["layout"].update(x=1)
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_a_malformed_reproducer_is_one_line_and_exit_2(tmp_path, reproducer_text, kind, capsys):
    broken = MALFORMED[kind](reproducer_text)
    path = tmp_path / "repro_broken.py"
    if isinstance(broken, bytes):
        path.write_bytes(broken)
    else:
        path.write_text(broken)
    test_file = tmp_path / "t.py"
    for argv in (["repro", str(path)], ["repro", "--pytest", str(path), "-o", str(test_file)]):
        assert main(argv) == 2, (kind, argv)
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert str(path) in err and "Traceback" not in err
    assert not test_file.exists()


def test_the_unbroken_reproducer_is_accepted(tmp_path, reproducer_text, capsys):
    path = tmp_path / "repro_fine.py"
    path.write_text(reproducer_text)
    out = tmp_path / "test_regress.py"
    assert main(["repro", "--pytest", str(path), "-o", str(out)]) == 0
    assert out.is_file()


def _a_report(folder: Path) -> Path:
    folder.mkdir(parents=True)
    record = {"name": "T", "status": "passed", "examples": 1, "seconds": 0.1, "failures": []}
    document = {"format": "fuzzgrad-results", "format_version": 1, "targets": [record]}
    (folder / "results.json").write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{dir}/typo"],
        ["report", "{dir}/results.json/x"],
        ["report", "{dir}/notes.txt"],
        ["report", "{dir}", "--baseline", "{dir}/typo"],
        ["report", "--compare", "{dir}", "{dir}/typo"],
        ["repro", "0123456789ab", "--report", "{dir}/typo"],
    ],
    ids=["subfolder", "below-results", "other-file", "baseline", "compare", "repro"],
)
def test_a_report_folder_that_is_not_there_is_an_error(tmp_path, argv, capsys):
    report = _a_report(tmp_path / "run")
    (report / "notes.txt").write_text("not a report")
    argv = [a.format(dir=report) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (report / "index.html").exists()  # DIR itself was not rendered instead
    assert main(["report", str(report / "results.json")]) == 0  # the file names its folder
    assert (report / "index.html").is_file()


@pytest.mark.parametrize(
    "size", ["0", "1G", "512M", "-5G", "inf", "nan", "1e30", "16 gigs", "", "9" * 40 + "T"]
)
def test_max_memory_out_of_range_or_malformed_is_a_usage_error(size, capsys):
    assert main(["fuzz", "fuzzgrad.targets.seed", f"--max-memory={size}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --max-memory") and err.count("\n") == 1, err


def test_max_memory_sizes():
    assert parse_memory("16G") == parse_memory("16GB") == parse_memory("16GiB") == 16 * 2**30
    assert parse_memory("2.5g") == int(2.5 * 2**30)
    assert parse_memory("3000000000") == 3_000_000_000
