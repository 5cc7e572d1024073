"""Rendering results.json into JUnit XML, Markdown, HTML and run-to-run diffs.

All inputs are synthetic results dicts, so these tests need neither torch nor a fuzzing run.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from fuzzgrad.errors import FuzzgradError, ReproducerError
from fuzzgrad.report.common import failure_signature
from fuzzgrad.report.compare import compare, format_comparison
from fuzzgrad.report.html import write_html
from fuzzgrad.report.junit import write_junit
from fuzzgrad.report.markdown import summary_markdown, write_summary
from fuzzgrad.report.results import load_results

HOSTILE = '<script>alert("x")</script>'


def _input(name: str, shape: list[int], stride: list[int], dtype: str = "float64") -> dict:
    return {
        "name": name,
        "shape": shape,
        "dtype": dtype,
        "stride": stride,
        "storage_offset": 0,
        "device": "cpu",
        "requires_grad": True,
    }


def _coverage(scale: int) -> dict:
    return {
        "dtype": {"float64": 20 * scale, "float32": 10 * scale, "bfloat16": 3 * scale},
        "layout": {"contiguous": 25 * scale, "transposed": 5 * scale, "sliced": 3 * scale},
        "dtype_layout": {
            "float64|contiguous": 15 * scale,
            "float64|transposed": 5 * scale,
            "float32|contiguous": 7 * scale,
            "float32|sliced": 3 * scale,
            "bfloat16|contiguous": 3 * scale,
        },
        "ndim": {"0": 5 * scale, "1": 12 * scale, "2": 10 * scale, "3": 6 * scale},
        "numel": {"0": 2 * scale, "1": 5 * scale, "2-8": 10 * scale, "9-64": 10 * scale, ">64": 6},
    }


def make_results(report_dir: str = "reports/nightly") -> dict[str, Any]:
    """A realistic run: every status, a bug found twice, coverage, histograms, a partial record."""
    vjp_bug = {
        "property": "vjp",
        "diagnosis": "fails for any input (layout, dtype, values irrelevant)",
        "message": "grad[input=0]: max abs error 0.44 at index (), actual 0.53 expected 0.088",
        "reproducer": f"{report_dir}/repro_MyActivation_vjp.py",
        "seconds_to_find": 0.4,
        "inputs": [_input("input", [], [])],
    }
    stride_bug = {
        "property": "vjp",
        "diagnosis": "fails only for non-contiguous cotangent (stride 0)",
        "message": "grad[input=1]: max abs error 3.1 at index (0, 2), actual 4.0 expected 0.9",
        "reproducer": f"{report_dir}/repro_FusedScale_vjp.py",
        "seconds_to_find": 2.5,
        "inputs": [_input("x", [2, 3], [1, 2], "float32"), _input("scale", [3], [0], "float32")],
    }
    return {
        "format": "fuzzgrad-results",
        "format_version": 1,
        "fuzzgrad_version": "0.1.0",
        "run": {
            "started": "2026-11-26T05:00:00Z",
            "finished": "2026-11-26T05:00:12Z",
            "seconds": 12.3,
            "seed": 0,
            "max_examples": 100,
            "budget_seconds": None,
            "argv": ["fuzzgrad", "fuzz", "targets/"],
            "torch_version": "2.13.0",
            "jax_version": "0.10.2",
            "hostname": "nightly-1",
            "shard": None,
        },
        "targets": [
            {
                "name": "MyActivation",
                "module": "fuzzgrad.targets.seed",
                "status": "xfailed",
                "xfail_reason": "backward formula is wrong",
                "examples": 37,
                "seconds": 1.9,
                "discards": {"reference raised": 2},
                "ambiguous": 0,
                "jax_share": 0.25,
                "error": None,
                "coverage": _coverage(1),
                "error_ratio_hist": {
                    "edges": [-12, -10, -8, -6, -4, -2, 0, 2],
                    "counts": [3, 10, 12, 5, 2, 0, 1],
                },
                "failures": [vjp_bug],
            },
            {
                "name": "FusedScale",
                "module": "fuzzgrad.targets.seed",
                "status": "failed",
                "examples": 58,
                "seconds": 4.2,
                "ambiguous": 3,
                "jax_share": 0.5,
                "coverage": _coverage(2),
                "error_ratio_hist": {
                    "edges": [-16, -14, -12, -10, -8, -6, -4, -2, 0, 2, 4],
                    "counts": [1, 4, 9, 20, 11, 5, 3, 1, 2, 2],
                },
                # the same bug found twice (different shrunk example): one line in reports
                "failures": [stride_bug, {**stride_bug, "message": "other example"}],
            },
            {
                "name": "StableLogSumExp",
                "module": "fuzzgrad.targets.seed",
                "status": "passed",
                "examples": 100,
                "seconds": 3.1,
                "coverage": _coverage(3),
                "error_ratio_hist": {"edges": [-16, -12, -8, -4, 0], "counts": [40, 50, 9, 1]},
                "failures": [],
            },
            {
                "name": "SurrogateSpike",
                "module": "fuzzgrad.targets.seed",
                "status": "xpassed",
                "xfail_reason": "surrogate gradient mismatch",
                "examples": 100,
                "seconds": 2.0,
                "failures": [],
            },
            {
                "name": "CrashyKernel",
                "module": "fuzzgrad.targets.seed",
                "status": "error",
                "error": {
                    "kind": "crash",
                    "message": "worker died with signal SIGSEGV while running example 3",
                    "traceback": "Traceback (most recent call last):\n  ...\x00 bad byte",
                },
                "examples": 3,
                "seconds": 0.2,
                "failures": [],
            },
            # an old, partial record: only the required fields
            {"name": "Bare", "status": "passed", "examples": 5, "seconds": 0.1, "failures": []},
        ],
    }


@pytest.fixture
def results() -> dict[str, Any]:
    return make_results()


def _write(tmp_path: Path, data: Any, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- signatures -----------------------------------------------------------------------------------


def test_signature_is_stable_short_and_ignores_the_example() -> None:
    a = {"property": "vjp", "diagnosis": "fails for any input", "message": "x", "inputs": []}
    b = {"property": "vjp", "diagnosis": "fails  for any input ", "message": "y", "seconds": 3}
    sig = failure_signature("Op", a)
    assert sig == failure_signature("Op", b)
    assert len(sig) == 12 and int(sig, 16) >= 0
    assert sig != failure_signature("Other", a)
    assert sig != failure_signature("Op", {**a, "property": "jvp"})
    assert sig != failure_signature("Op", {**a, "diagnosis": "fails only for float16"})


# --- load_results ---------------------------------------------------------------------------------


def test_load_results_accepts_file_or_directory(tmp_path: Path, results: dict) -> None:
    path = _write(tmp_path, results)
    assert load_results(path) == results
    assert load_results(str(tmp_path)) == results


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "no results file"),
        ("{not json", "cannot read"),
        (json.dumps([1, 2]), "not a fuzzgrad results file"),
        (json.dumps({"format": "something-else", "format_version": 1}), "not a fuzzgrad results"),
        (json.dumps({"format": "fuzzgrad-results"}), "no integer format_version"),
        (json.dumps({"format": "fuzzgrad-results", "format_version": 99}), "upgrade fuzzgrad"),
        (json.dumps({"format": "fuzzgrad-results", "format_version": 1}), "'targets' must be"),
        (
            json.dumps({"format": "fuzzgrad-results", "format_version": 1, "targets": [{}]}),
            r"targets\[0\] has no string 'name'",
        ),
    ],
)
@pytest.mark.malformed_results
def test_load_results_errors_are_clear(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ReproducerError, match=match) as info:
        load_results(path)
    assert isinstance(info.value, FuzzgradError) and isinstance(info.value, ValueError)


# --- JUnit ----------------------------------------------------------------------------------------


def test_junit_structure(tmp_path: Path, results: dict) -> None:
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    root = ET.parse(path).getroot()
    (suite,) = root.iter("testsuite")
    assert suite.get("name") == "fuzzgrad"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "2", "1")
    assert suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {t["name"] for t in results["targets"]}
    assert cases["FusedScale"].get("classname") == "fuzzgrad.targets.seed"
    assert cases["FusedScale"].get("time") == "4.200"
    failure = cases["FusedScale"].find("failure")
    assert failure is not None and "non-contiguous cotangent" in failure.get("message")
    assert "repro_FusedScale_vjp.py" in failure.text
    assert "fuzzgrad repro reports/nightly/repro_FusedScale_vjp.py" in failure.text
    assert failure.text.count("property: vjp") == 1  # same bug twice, reported once
    skipped = cases["MyActivation"].find("skipped")
    assert skipped.get("message") == "xfail: backward formula is wrong"
    xpassed = cases["SurrogateSpike"].find("failure")
    assert "no longer reproduces" in xpassed.get("message")
    error = cases["CrashyKernel"].find("error")
    assert error.get("type") == "crash" and "SIGSEGV" in error.get("message")
    assert "\x00" not in error.text  # control characters would make the file unparseable
    for name in ("StableLogSumExp", "Bare"):
        assert [child.tag for child in cases[name]] == ["system-out"]


def test_junit_parses_with_junitparser(tmp_path: Path, results: dict) -> None:
    junitparser = pytest.importorskip(
        "junitparser", reason="junitparser not installed (pip install junitparser)"
    )
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    assert [s.name for s in suites] == ["fuzzgrad"]
    outcomes = {}
    for case in suites[0]:
        kinds = {type(r).__name__ for r in case.result}
        outcomes[case.name] = kinds.pop() if kinds else "passed"
    assert outcomes == {
        "MyActivation": "Skipped",
        "FusedScale": "Failure",
        "StableLogSumExp": "passed",
        "SurrogateSpike": "Failure",
        "CrashyKernel": "Error",
        "Bare": "passed",
    }


# --- Markdown summary -----------------------------------------------------------------------------


def test_summary_contents(tmp_path: Path, results: dict) -> None:
    path = tmp_path / "summary.md"
    write_summary(results, path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("## fuzzgrad: 1 error, 1 failed, 1 xpassed, 1 xfailed, 2 passed")
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(table) == 6  # one line per target
    assert table[0].startswith("| `CrashyKernel` | error | 3 | 0.20 | 0 |")
    assert "| `FusedScale` | failed | 58 | 4.20 | 1 |" in text
    assert "non\\-contiguous" not in text and "non-contiguous cotangent (stride 0)" in text
    assert "`fuzzgrad repro reports/nightly/repro_FusedScale_vjp.py`" in text
    assert "`fuzzgrad repro reports/nightly/repro_MyActivation_vjp.py`" in text
    assert "found 2 times" in text
    assert "`x: float32 shape (2, 3) stride (1, 2) cpu`" in text
    assert "SIGSEGV" in text and "remove the mark" in text
    assert "Compared with" not in text
    for emoji in ("\u2705", "\u274c", "\u26a0"):
        assert emoji not in text


def test_summary_escapes_markdown_and_html() -> None:
    data = make_results()
    data["targets"][1]["name"] = "a|b`c"
    data["targets"][1]["failures"][0]["diagnosis"] = f"{HOSTILE} *bold* [link](x)"
    text = summary_markdown(data)
    assert "<script>" not in text
    assert "&lt;script&gt;" in text and "\\*bold\\*" in text and "\\[link\\]" in text
    assert "| ``a\\|b`c`` | failed |" in text  # the pipe cannot split the table row


# --- compare --------------------------------------------------------------------------------------


def _next_run(old: dict) -> dict:
    """The next night: FusedScale fixed, MyActivation still wrong, a new bug, a new crash."""
    new = copy.deepcopy(old)
    targets = {t["name"]: t for t in new["targets"]}
    targets["FusedScale"].update(status="passed", failures=[])
    lse = targets["StableLogSumExp"]
    lse["status"] = "failed"
    bug = {"property": "jvp", "diagnosis": "fails only for float16", "reproducer": "r.py"}
    lse["failures"] = [bug, {**bug, "message": "found again"}]
    targets["Bare"].update(status="error", error={"kind": "timeout", "message": "took 60 s"})
    new["targets"].append(
        {"name": "Brand", "status": "passed", "examples": 1, "seconds": 0.1, "failures": []}
    )
    new["targets"].remove(targets["SurrogateSpike"])
    return new


def test_compare_new_fixed_still_failing() -> None:
    old = make_results()
    cmp = compare(old, _next_run(old))
    assert [(e["target"], e["property"]) for e in cmp["new"]] == [("StableLogSumExp", "jvp")]
    assert cmp["new"][0]["count"] == 2  # same bug found twice: one entry
    assert cmp["new"][0]["signature"] == failure_signature(
        "StableLogSumExp", {"property": "jvp", "diagnosis": "fails only for float16"}
    )
    assert [e["target"] for e in cmp["fixed"]] == ["FusedScale"]
    assert [e["target"] for e in cmp["still_failing"]] == ["MyActivation"]
    assert cmp["still_failing"][0]["reproducer"].endswith("repro_MyActivation_vjp.py")
    assert cmp["new_errors"] == [{"target": "Bare", "kind": "timeout", "message": "took 60 s"}]
    assert cmp["targets_added"] == ["Brand"] and cmp["targets_removed"] == ["SurrogateSpike"]
    for entry in cmp["new"] + cmp["fixed"] + cmp["still_failing"]:
        assert {"signature", "target", "property", "diagnosis", "reproducer"} <= set(entry)


def test_compare_absent_or_crashed_target_is_not_fixed() -> None:
    old = make_results()
    new = copy.deepcopy(old)
    new["targets"] = [t for t in new["targets"] if t["name"] != "FusedScale"]
    crashy = next(t for t in new["targets"] if t["name"] == "MyActivation")
    crashy.update(status="error", failures=[], error={"kind": "crash", "message": "segv"})
    cmp = compare(old, new)
    assert cmp["fixed"] == [] and cmp["new"] == []
    assert {e["target"] for e in cmp["unverified"]} == {"FusedScale", "MyActivation"}
    assert [e["target"] for e in cmp["new_errors"]] == ["MyActivation"]  # CrashyKernel: old news


def test_compare_identical_runs_and_empty_runs() -> None:
    old = make_results()
    cmp = compare(old, copy.deepcopy(old))
    assert cmp["new"] == cmp["fixed"] == cmp["new_errors"] == []
    assert len(cmp["still_failing"]) == 2
    empty = compare({"targets": []}, {})
    assert all(v == [] for v in empty.values())


def test_format_comparison_text() -> None:
    old = make_results()
    text = format_comparison(compare(old, _next_run(old)))
    assert text.splitlines()[0] == "1 new, 1 fixed, 1 still failing, 1 new error"
    assert "New:" in text and "Fixed:" in text and "Still failing:" in text
    assert "StableLogSumExp  jvp: fails only for float16" in text
    assert "fuzzgrad repro r.py" in text
    assert "Targets removed: SurrogateSpike" in text


def test_summary_with_comparison() -> None:
    old = make_results()
    new = _next_run(old)
    text = summary_markdown(new, compare(old, new))
    sections = text.split("### Compared with the previous run")[1]
    assert "#### New (1)" in sections and "#### Fixed (1)" in sections
    assert "#### Still failing (1)" in sections and "#### New errors (1)" in sections
    new_part = sections.split("#### Fixed")[0]
    assert new_part.count("StableLogSumExp") == 1


# --- HTML -----------------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k in ("href", "src")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


def test_html_is_self_contained_and_complete(tmp_path: Path) -> None:
    report = tmp_path / "reports" / "nightly"
    report.mkdir(parents=True)
    (report / "repro_FusedScale_vjp.py").write_text("# reproducer\n", encoding="utf-8")
    data = make_results(str(report))
    data["targets"][0]["failures"][0]["reproducer"] = "/elsewhere/repro_MyActivation_vjp.py"
    write_html(data, report / "index.html")
    html = (report / "index.html").read_text(encoding="utf-8")
    parsed = _parse(html)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "http://" not in html and "https://" not in html
    assert "./repro_FusedScale_vjp.py" in parsed.hrefs  # relative: travels with the report
    assert not any("elsewhere" in h for h in parsed.hrefs)  # outside the report: no link
    assert "fuzzgrad repro /elsewhere/repro_MyActivation_vjp.py" in html
    text = " ".join(parsed.text)
    for expected in (
        "FusedScale",
        "SIGSEGV",
        "fails only for non-contiguous cotangent",
        "nightly-1",
    ):
        assert expected in text
    assert parsed.tags.count("svg") >= 3  # coverage bars and error histograms
    assert "tolerance" in text and "float32" in text and "found 2 times" in text
    assert all(h.startswith(("#", "./")) for h in parsed.hrefs)


def test_html_relative_link_for_relative_reproducer_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "reports" / "nightly"
    report.mkdir(parents=True)
    write_html(make_results("reports/nightly"), report / "index.html")
    hrefs = _parse((report / "index.html").read_text(encoding="utf-8")).hrefs
    assert "./repro_FusedScale_vjp.py" in hrefs and "./repro_MyActivation_vjp.py" in hrefs


def test_html_escapes_hostile_text(tmp_path: Path) -> None:
    data = make_results()
    victim = data["targets"][1]
    victim["name"] = HOSTILE
    victim["module"] = HOSTILE
    victim["failures"][0].update(diagnosis=HOSTILE, message=HOSTILE, reproducer=f"{HOSTILE}.py")
    victim["failures"][0]["inputs"][0]["dtype"] = HOSTILE
    victim["coverage"]["dtype_layout"][f"{HOSTILE}|{HOSTILE}"] = 4
    victim["coverage"]["ndim"][HOSTILE] = 1
    data["run"]["hostname"] = HOSTILE
    data["run"]["argv"] = [HOSTILE]
    new = copy.deepcopy(data)
    new["targets"][1]["failures"][0]["property"] = HOSTILE
    write_html(new, tmp_path / "index.html", compare(data, new))
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert "script" not in _parse(html).tags


def test_html_renders_sparse_and_malformed_records(tmp_path: Path) -> None:
    data = {
        "format": "fuzzgrad-results",
        "format_version": 1,
        "targets": [
            {"name": "A", "status": "passed", "examples": 1, "seconds": None, "failures": []},
            {"name": "B", "status": "weird", "examples": 0, "seconds": 0, "failures": [{}]},
            {
                "name": "C",
                "status": "failed",
                "examples": 2,
                "seconds": 1,
                "failures": [{"property": "output"}],
                "error_ratio_hist": {"edges": [0, 1], "counts": [1, 2]},
                "coverage": {"dtype": {"float64": 2}, "layout": {"contiguous": 2}},
            },
        ],
    }
    write_html(data, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "malformed" in html and "No error histogram recorded" in html
    assert "weird" in html
    write_junit(data, tmp_path / "junit.xml")
    ET.parse(tmp_path / "junit.xml")
    write_summary(data, tmp_path / "summary.md")


def test_rendering_imports_neither_torch_nor_jax() -> None:
    code = (
        "import sys, fuzzgrad.report, fuzzgrad.report.compare, fuzzgrad.report.junit, "
        "fuzzgrad.report.markdown, fuzzgrad.report.html, fuzzgrad.report.results; "
        "print(sorted(m for m in ('torch', 'jax', 'numpy', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- what a newcomer sees first: values, names, cotangents, errors with their example ------------


def _with_example(data: dict) -> dict:
    """The failure and the crash of `make_results`, as this version records them: argument
    names and small values, the cotangent's layout, the example a crash was running."""
    fused = data["targets"][1]
    for failure in fused["failures"]:
        failure["inputs"][0].update(layout="transposed", values=[1.0, -2.5, "nan", 0.0, 3.0, 4.0])
        failure["cotangents"] = [
            {"output": 0, "shape": [2, 3], "dtype": "float32", "stride": [0, 1],
             "storage_offset": 0, "layout": "expanded", "device": "cpu"}
        ]  # fmt: skip
    crash = data["targets"][4]["error"]
    crash.update(
        example=3,
        inputs=[dict(_input("logits", [2], [1]), values=[0.5, "-inf"])],
        reproducer="reports/nightly/repro_CrashyKernel_crash_0123456789ab.py",
    )
    return data


def test_cards_show_values_argument_names_and_the_cotangent_layout(tmp_path: Path) -> None:
    data = _with_example(make_results())
    write_html(data, tmp_path / "index.html")
    text = " ".join(_parse((tmp_path / "index.html").read_text(encoding="utf-8")).text)
    assert "[[1.0, -2.5, nan], [0.0, 3.0, 4.0]]" in text  # nested by the shape (2, 3)
    assert "scale" in text and "grad_output[0]" in text and "expanded" in text
    summary = summary_markdown(data)
    assert "`x: float32 shape (2, 3) stride (1, 2) transposed cpu values [[1.0, -2.5, nan], " in (
        summary
    )
    assert "`grad_output[0]: float32 shape (2, 3) stride (0, 1) expanded cpu`" in summary
    write_junit(data, tmp_path / "junit.xml")
    junit = (tmp_path / "junit.xml").read_text(encoding="utf-8")
    assert "grad_output[0]: float32 shape (2, 3) stride (0, 1) expanded cpu" in junit


def test_error_cards_show_the_example_and_its_reproducer(tmp_path: Path) -> None:
    data = _with_example(make_results())
    write_html(data, tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    errors = html.split('<h2 id="errors">')[1].split("<h2")[0]
    assert "example 3" in errors and "logits" in errors and "[0.5, -inf]" in errors
    assert "fuzzgrad repro reports/nightly/repro_CrashyKernel_crash_0123456789ab.py" in errors
    summary = summary_markdown(data).split("### Errors")[1]
    assert "running example 3" in summary and "`logits: float64 shape (2,) " in summary
    assert "`fuzzgrad repro reports/nightly/repro_CrashyKernel_crash_0123456789ab.py`" in summary
    write_junit(data, tmp_path / "junit.xml")
    (case,) = [c for c in ET.parse(tmp_path / "junit.xml").iter("testcase")
               if c.get("name") == "CrashyKernel"]  # fmt: skip
    assert "running example 3" in case.find("error").text
    assert "replay: fuzzgrad repro" in case.find("error").text


def test_a_real_failure_card_names_arguments_and_shows_the_cotangent(tmp_path: Path) -> None:
    """A planted bug that needs a strided grad_output: its card says which layout it had."""
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.report.results import results_document, write_results

    corpus = Path(__file__).parent / "corpus" / "buggy_layout.py"
    (target,) = load_targets([str(corpus)], names=["ExpKernelStridedGrad"])
    result = fuzz_target(
        target, max_examples=100, derandomize=True, report_dir=tmp_path, properties=["vjp"]
    )
    failure = result.failures[0]
    assert failure.property == "vjp" and "grad_output" in failure.diagnosis, failure.diagnosis
    (arg,) = failure.inputs
    assert arg["name"] == "x" and "values" in arg  # shrunk small: its values are shown
    (cot,) = failure.cotangents
    assert cot["output"] == 0 and cot["layout"] not in ("contiguous", None), cot
    write_results(tmp_path / "results.json", results_document({}, [result.to_json()]))
    write_html(load_results(tmp_path), tmp_path / "index.html")
    text = " ".join(_parse((tmp_path / "index.html").read_text(encoding="utf-8")).text)
    assert "grad_output[0]" in text and cot["layout"] in text


# --- the HTML comes from templates, escaped by Jinja2 --------------------------------------------


def test_html_is_rendered_from_packaged_templates_without_hand_escaping() -> None:
    import ast
    import fnmatch
    import tomllib
    from importlib import resources

    import fuzzgrad.report.html as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not ({"escape", "Markup", "markupsafe"} & (names | imported))
    assert "autoescape=True" in Path(module.__file__).read_text(encoding="utf-8")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["fuzzgrad.report"]
    shipped = resources.files("fuzzgrad.report")
    files = [f"templates/{p.name}" for p in shipped.joinpath("templates").iterdir()]
    assert "templates/index.html.j2" in files
    for name in [*files, "results.schema.json"]:  # each is package data, so it is installed
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
    assert any(d.startswith("jinja2") for d in pyproject["project"]["dependencies"])


# --- results.json has a JSON Schema --------------------------------------------------------------


def _schema_walk(node: Any):
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for sub in value.values():
                    yield from _schema_walk(sub)
            elif key in ("items", "additionalProperties"):
                yield from _schema_walk(value)
            elif key == "anyOf":
                for sub in value:
                    yield from _schema_walk(sub)


def test_the_schema_is_valid_and_the_loader_understands_all_of_it() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from fuzzgrad.report.results import SCHEMA_KEYWORDS, schema

    jsonschema.Draft202012Validator.check_schema(schema())
    used = {key for node in _schema_walk(schema()) for key in node}
    assert used <= SCHEMA_KEYWORDS, used - SCHEMA_KEYWORDS
    assert schema()["properties"]["format_version"]["minimum"] == 1
    jsonschema.validate(_with_example(make_results()), schema())


def _broken(where: str) -> dict:
    data = _with_example(make_results())
    targets = data["targets"]
    change = {
        "run": lambda: data.update(run="nightly"),
        "run.argv": lambda: data["run"].update(argv="fuzzgrad fuzz"),
        "run.seed": lambda: data["run"].update(seed="0"),
        "targets.examples": lambda: targets[0].update(examples=-1),
        "targets.seconds": lambda: targets[0].update(seconds="fast"),
        "targets.status": lambda: targets[0].update(status="exploded"),
        "targets.failures": lambda: targets[0].update(failures={"vjp": 1}),
        "targets.error": lambda: targets[4].update(error="crashed"),
        "targets.missing": lambda: targets[2].pop("examples"),
        "failures.property": lambda: targets[1]["failures"][0].update(property=3),
        "failures.inputs": lambda: targets[1]["failures"][0].update(inputs="x"),
        "inputs.shape": lambda: targets[1]["failures"][0]["inputs"][0].update(shape="2x3"),
        "inputs.values": lambda: targets[1]["failures"][0]["inputs"][0].update(values=[[1.0]]),
        "cotangents.output": lambda: targets[1]["failures"][0]["cotangents"][0].pop("output"),
        "reproducer": lambda: targets[1]["failures"][0].update(reproducer=["a.py"]),
        "error.inputs": lambda: targets[4]["error"].update(inputs=[1, 2]),
        "error.reproducer": lambda: targets[4]["error"].update(reproducer=False),
        "error.example": lambda: targets[4]["error"].update(example="three"),
    }
    change[where]()
    return data


BROKEN = [
    "run", "run.argv", "run.seed", "targets.examples", "targets.seconds", "targets.status",
    "targets.failures", "targets.error", "targets.missing", "failures.property",
    "failures.inputs", "inputs.shape", "inputs.values", "cotangents.output", "reproducer",
    "error.inputs", "error.reproducer", "error.example",
]  # fmt: skip


#: Where `schema_problem` says each kind of breakage is.
_LOCATIONS = {
    "run": "run",
    "targets": "targets[",
    "failures": "targets[1].failures[0]",
    "inputs": "targets[1].failures[0].inputs[0]",
    "cotangents": "targets[1].failures[0].cotangents[0]",
    "reproducer": "targets[1].failures[0].reproducer",
    "error": "targets[4].error",
}


@pytest.mark.malformed_results
@pytest.mark.parametrize("where", BROKEN)
def test_a_broken_results_file_fails_validation_and_the_cli_says_so(
    tmp_path: Path, where: str, capsys, schema_check
) -> None:
    jsonschema = pytest.importorskip("jsonschema")

    from fuzzgrad.integrations.cli import main
    from fuzzgrad.report.results import schema, schema_problem

    data = _broken(where)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())
    problem = schema_problem(data)  # the loader's own check agrees, and says where
    assert problem is not None and problem.startswith(_LOCATIONS[where.split(".")[0]]), problem
    report = tmp_path / "report"
    report.mkdir()
    _write(report, data)
    with pytest.raises(AssertionError, match="breaks fuzzgrad/report/results.schema.json"):
        schema_check(report)  # what checks every report the test suite writes
    for argv in (["report", str(report)], ["report", "--compare", str(report), str(report)],
                 ["repro", "0123456789ab", "--report", str(report)]):  # fmt: skip
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "malformed" in err and "Traceback" not in err
