"""``fuzzgrad scan``: a package's custom Functions found, registration coverage, contracts
inferred by trial, planted bugs caught (and shrunk) under them while correct twins pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzzgrad.integrations.cli import main
from fuzzgrad.integrations.scan.contract import PROPERTIES, infer
from fuzzgrad.integrations.scan.found import scan_modules

pytest_plugins = ["pytester"]

PKG = Path(__file__).parent / "corpus" / "scan_pkg"
#: Function -> (family inferred, the bug's property, or None for a correct twin).
EXPECTED = {
    "scan_pkg.elementwise.Square": ("one shape", None),
    "scan_pkg.elementwise.SquareMissingFactor": ("one shape", "vjp"),
    "scan_pkg.broadcasting.Mul": ("broadcastable", None),
    "scan_pkg.broadcasting.MulMeanReduced": ("broadcastable", "vjp"),
    "scan_pkg.matrix.MatMul": ("matrix product", None),
    # its backward raises on non-square factors, so the scan keeps square ones (a contract on
    # which the backward fails is taken for one the Function does not mean), where the values
    # are wrong
    "scan_pkg.matrix.MatMulMissingTranspose": ("square matrices", "vjp"),
    "scan_pkg.dims.Softmax": ("one shape", None),
    "scan_pkg.dims.SoftmaxLastDim": ("one shape", "vjp"),
    "scan_pkg.nondiff.NumpySin": ("one shape", None),
    "scan_pkg.nondiff.NumpySinWrongDerivative": ("one shape", "vjp"),
    "scan_pkg.iterative.CubicRoot": ("one shape", None),
    "scan_pkg.iterative.CubicRootWrongSlope": ("one shape", "vjp"),
    # torch.library.custom_op with register_autograd: judged by autograd of its Python function
    "scan_pkg.custom_ops.softplus": ("one shape", None),
    "scan_pkg.custom_ops.mul_add": ("broadcastable", "vjp"),
}
#: Functions whose contract only a trace of real calls shows (a last dim of 3).
TRACED = {"scan_pkg.traced.Cross", "scan_pkg.traced.CrossFlipped"}
#: Functions whose forward, differentiated by autograd, is not their derivative.
ITERATIVE = {"scan_pkg.iterative.CubicRoot", "scan_pkg.iterative.CubicRootWrongSlope"}


@pytest.fixture(scope="module")
def coverage():
    return scan_modules([str(PKG)])


def test_finds_the_functions_a_package_defines_and_which_are_registered(coverage):
    names = {f.name for f in coverage.functions}
    registered = {"scan_pkg.registered.Exp", "scan_pkg.custom_ops.cube"}
    unjudged = {"scan_pkg.unknown.Pick", "scan_pkg.convention.ConjugateTangent"}
    assert names == {*EXPECTED, *TRACED, *unjudged, *registered}
    assert coverage.registered == registered  # a custom op registered by what its decorator made
    assert coverage.line().startswith("20 custom Functions, 2 registered; not registered: ")
    assert "scan_pkg.unknown.Pick" in coverage.line()
    # a module that fails to import is reported, and the others are scanned all the same
    assert len(coverage.import_errors) == 1 and "broken" in coverage.import_errors[0]


def test_imported_functions_are_not_counted_as_defined(tmp_path):
    (tmp_path / "user.py").write_text("from torch.autograd import Function\nimport torch\n")
    assert scan_modules([str(tmp_path / "user.py")]).functions == []


def test_contracts_are_inferred_simplest_family_first_and_widened(coverage):
    by_name = {f.name: f for f in coverage.functions}
    for name, (family, _) in EXPECTED.items():
        inference = infer(by_name[name].cls, name)
        assert inference.contract is not None, (name, inference.tried)
        assert inference.contract.family == family, (name, inference.tried)
        assert bool(inference.differences) == (name in ITERATIVE), (name, inference.differences)
    softmax = infer(by_name["scan_pkg.dims.Softmax"].cls, "softmax")
    assert softmax.contract is not None and softmax.contract.inputs == ("fg.tensor()", "fg.dim(0)")


def test_a_backward_in_another_parametrisation_is_listed_not_judged(coverage):
    """A backward padding a tangent-space gradient with 0 (pypose's Lie group Functions, 23
    of them given contracts by a trace of its tests, all "wrong" against autograd of their
    forwards) disagrees by design: the scan says so and fuzzes nothing of it."""
    found = next(f for f in coverage.functions if f.name.endswith("ConjugateTangent"))
    inference = infer(found.cls, found.name)
    assert inference.contract is None
    assert "another parametrisation" in inference.tried[-1][1], inference.tried


def test_a_function_whose_contract_cannot_be_inferred_lists_what_was_tried(coverage):
    pick = next(f for f in coverage.functions if f.name == "scan_pkg.unknown.Pick")
    inference = infer(pick.cls, pick.name)
    assert inference.contract is None
    tried = [family for family, _ in inference.tried]
    assert tried == ["one shape", "broadcastable", "matrices", "square matrices", "matrix product"]
    assert all("ran on 0/" in outcome for _, outcome in inference.tried)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    report = tmp_path_factory.mktemp("scan")
    argv = ["scan", str(PKG), "--report", str(report), "--max-examples", "30", "--seed", "0"]
    status = main([*argv, "--no-isolate"])
    results = json.loads((report / "results.json").read_text())
    return status, report, {t["name"]: t for t in results["targets"]}


def test_scan_catches_planted_bugs_and_passes_correct_twins(scanned):
    status, report, records = scanned
    assert status == 1  # findings
    assert set(records) == set(EXPECTED)
    for name, (family, bug) in EXPECTED.items():
        record = records[name]
        assert record["scan"]["contract"] == family
        if bug is None:
            assert record["status"] == "passed", (name, record["failures"], record["error"])
            continue
        assert record["status"] == "failed", (name, record["error"])
        found = {f["property"] for f in record["failures"]}
        assert bug in found, (name, found)
        for failure in record["failures"]:
            assert failure["shrunk"] and Path(failure["reproducer"]).exists()
            assert failure["property"] in PROPERTIES  # only what holds under any contract


def test_scan_writes_registrations_and_a_scan_record(scanned):
    _, report, _ = scanned
    record = json.loads((report / "scan.json").read_text())
    assert record["coverage"].startswith("20 custom Functions, 2 registered")
    functions = {f["name"]: f for f in record["functions"]}
    assert functions["scan_pkg.registered.Exp"] == {
        "name": "scan_pkg.registered.Exp",
        "registered": True,
    }
    pick = functions["scan_pkg.unknown.Pick"]
    assert pick["contract"] is None and len(pick["tried"]) == 5
    assert "fg.register(" in functions["scan_pkg.matrix.MatMul"]["snippet"]
    page = (report / "index.html").read_text()  # each scanned target's card names its guess
    assert "scan contract (inferred): matrix product [fg.tensor(&#39;d0 d1&#39;)" in page
    assert functions["scan_pkg.matrix.MatMul"]["status"] == "passed"
    assert functions["scan_pkg.matrix.MatMul"]["oracle"] == "autograd of forward"
    assert functions["scan_pkg.iterative.CubicRoot"]["oracle"] == "differences"
    assert 'oracle="differences"' in functions["scan_pkg.iterative.CubicRoot"]["snippet"]
    # the registrations the scan fuzzed are a module a user can read, edit and fuzz again
    assert (
        main(
            [
                "fuzz",
                str(report / "scan_targets.py"),
                "-k",
                "Square and not Missing",
                "--report",
                str(report / "again"),
                "--max-examples",
                "5",
                "--seed",
                "0",
                "--database",
                "none",
                "--no-isolate",
            ]
        )
        == 0
    )


def test_oracle_differences_is_an_option_of_reference_free_registrations_only():
    from fuzzgrad.errors import InvalidRegistration
    from fuzzgrad.registry.target import make_target

    Square = pytest.importorskip("corpus.scan_pkg.elementwise").Square
    assert make_target(Square, options={"oracle": "differences"}).options["oracle"]
    for options, kw in (({"oracle": "jax"}, {}), ({"oracle": "differences"}, {"reference": abs})):
        with pytest.raises(InvalidRegistration, match="'Square': oracle="):
            make_target(Square, options=options, **kw)


COVERED = """
import torch
import fuzzgrad as fg


@fg.register()
class Double(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class Triple(Double):
    @staticmethod
    def forward(ctx, x):
        return 3 * x
"""


def test_fuzz_prints_registration_coverage(tmp_path, capsys):
    (tmp_path / "half_registered.py").write_text(COVERED)
    argv = ["fuzz", str(tmp_path / "half_registered.py"), "--report", str(tmp_path / "r")]
    argv += ["--max-examples", "3", "--seed", "0", "--database", "none", "--no-isolate"]
    main(argv)
    line = "registration coverage: 2 custom Functions, 1 registered; not registered: "
    assert line + "half_registered.Triple" in capsys.readouterr().out


def test_pytest_scan_option_adds_items_for_unregistered_functions(pytester):
    """``--fuzzgrad-scan`` collects the unregistered Functions as the scan infers them; the
    planted bug fails, its correct twin passes, and the header says the coverage."""
    ops = pytester.makepyfile(ops=(PKG / "elementwise.py").read_text())
    args = ["-p", "no:cacheprovider", "--no-fuzzgrad-isolate", "--fuzzgrad-max-examples", "10"]
    result = pytester.runpytest("-rA", "--fuzzgrad-scan", str(ops), *args)
    result.stdout.fnmatch_lines(["*--fuzzgrad-scan: 2 custom Functions, 0 registered*"])
    lines = [line.strip() for line in result.outlines]
    assert "PASSED fuzzgrad::ops.Square::test_fuzzgrad[ops.Square-vjp]" in lines, lines
    assert any(
        line.startswith("FAILED fuzzgrad::ops.SquareMissingFactor::test_fuzzgrad[")
        and "-vjp]" in line
        for line in lines
    ), lines


def test_a_trace_generalises_real_calls_into_a_contract():
    from fuzzgrad.integrations.scan.trace import traced_contract

    def call(*shapes, dtype="float32"):
        return [{"shape": list(s), "dtype": dtype} for s in shapes] + [{"value": -1}]

    contract = traced_contract([call((5, 3), (5, 3)), call((2, 3), (2, 3))])
    assert contract is not None
    assert contract.inputs == ("fg.tensor('d0 3')", "fg.tensor('d0 3')", "-1")
    varied = traced_contract([call((4, 2), (2, 4)), call((3, 5), (5, 3))])
    assert varied is not None and varied.inputs[:2] == ("fg.tensor('d0 d1')", "fg.tensor('d1 d0')")
    assert traced_contract([call((2,), dtype="int64")]) is None  # indices: left to trial
    assert traced_contract([call((2,)), call((2, 2))]) is None  # the rank varies


def test_scan_with_a_trace_fuzzes_what_only_real_calls_show(tmp_path):
    """Without a trace the cross product's contract (3 columns) is not inferred; with one, the
    planted bug is caught and its twin passes."""
    import sys

    script = PKG / "_trace_calls.py"
    argv = ["scan", str(PKG / "traced.py"), "--report", str(tmp_path), "--max-examples", "20"]
    argv += ["--seed", "0", "--no-isolate", "--trace", f"{sys.executable} {script}"]
    assert main(argv) == 1
    records = json.loads((tmp_path / "results.json").read_text())["targets"]
    # named traced.X, or scan_pkg.traced.X where an earlier test imported the package
    status = {r["name"].rsplit(".", 1)[-1]: (r["status"], r["scan"]["contract"]) for r in records}
    assert status == {"Cross": ("passed", "traced"), "CrossFlipped": ("failed", "traced")}
    flipped = next(r for r in records if r["name"].endswith(".CrossFlipped"))
    assert "vjp" in {f["property"] for f in flipped["failures"]}
    untraced = infer(pytest.importorskip("corpus.scan_pkg.traced").Cross, "cross")
    assert untraced.contract is None


def test_a_trace_that_calls_no_function_says_which_python_to_name(tmp_path, capsys):
    """A traced command that ran another Python (the first on PATH, without torch) records
    nothing: the scan says so instead of inferring as if no call had been made."""
    import sys

    argv = ["scan", str(PKG / "elementwise.py"), "--report", str(tmp_path), "--max-examples"]
    argv += ["5", "--seed", "0", "--no-isolate", "--trace", f"{sys.executable} -c pass"]
    main(argv)
    err = capsys.readouterr().err
    assert "the traced command called no custom Function" in err and sys.executable in err


def test_a_custom_op_registered_without_a_reference_is_judged_by_its_own_python_function():
    """``fg.register(op)`` for a ``torch.library.custom_op``: autograd of the Python function
    it was defined from is the reference (as a Function's forward is), so the planted missing
    term of ``mul_add`` is caught and shrunk, and its correct twins pass."""
    import importlib
    import sys

    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.spec import tensor
    from fuzzgrad.registry.target import make_target

    sys.path.insert(0, str(PKG.parent))
    try:
        ops = importlib.import_module("scan_pkg.custom_ops")
    finally:
        sys.path.remove(str(PKG.parent))
    import torch

    for op in (ops.softplus, ops.cube, torch.ops.fuzzgrad_scan_pkg.cube):  # or its packet
        result = fuzz_target(make_target(op), max_examples=20, seed=0)
        assert result.status == "passed", (op, result.failures, result.error)
    buggy = make_target(ops.mul_add, inputs=[tensor("*#b"), tensor("*#b")])
    result = fuzz_target(buggy, max_examples=30, seed=0)
    assert result.status == "failed", result.error
    vjp = next(f for f in result.failures if f.property == "vjp")
    assert vjp.shrunk and "grad[input=0]" in vjp.message
    assert all(a["shape"] == [] for a in vjp.inputs if "shape" in a)  # shrunk to 0-d
