"""``fuzzgrad scan``: find, infer, write the registrations, fuzz them the usual way, report.

The inferred registrations are written as a module, ``scan_targets.py``, in the report folder
and fuzzed by ``fuzzgrad fuzz`` itself, so isolation, shrinking, reproducers (which import that
module again) and reports are those of any run. ``scan.json`` beside ``results.json`` lists every
Function found, its registration status, the contract inferred (or what was tried) and its
snippet; each fuzzed target's record in ``results.json`` gets a ``scan`` entry naming its
contract.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzzgrad.integrations.runs import EXIT_OK
from fuzzgrad.integrations.scan.contract import DTYPES, PROPERTIES, Inference, infer, snippet
from fuzzgrad.integrations.scan.found import Coverage, Found, scan_modules

#: File names the scan writes in the report folder.
TARGETS_FILE, SCAN_FILE = "scan_targets.py", "scan.json"
SCAN_FORMAT = 1


def scan_command(args: Any, fuzz: Callable[[list[str]], int]) -> int:
    """Run a scan for parsed ``args``; ``fuzz`` runs ``fuzzgrad fuzz`` on an argv."""
    from fuzzgrad.integrations.runs import default_report_dir
    from fuzzgrad.nightly.plugins import prepare
    from fuzzgrad.registry.project import on_sys_path

    prepare(isolate=args.isolate)  # before the trials import Hypothesis
    on_sys_path(Path.cwd()).add()
    report = args.report or default_report_dir()
    traces = None
    if args.trace:
        from fuzzgrad.integrations.scan.trace import record

        traces, traced_status = record(args.trace)
        print(
            f"fuzzgrad scan: traced {sum(map(len, traces.values()))} call(s) of "
            f"{len(traces)} Function(s) from {args.trace!r} (exit status {traced_status})"
        )
        if not traces:
            print(
                "warning: the traced command called no custom Function. Did it run the Python "
                f"that has your package and torch ({sys.executable})? Name it in the command "
                '(`--trace "python -m pytest tests/"` runs the first python on PATH).',
                file=sys.stderr,
            )
    coverage, inferred, written = infer_registrations(args.targets, report, traces)
    for error in coverage.import_errors:
        print(f"warning: {error}", file=sys.stderr)
    print(f"fuzzgrad scan: {coverage.line()}")
    for found in coverage.unregistered:
        print(_describe(found, inferred[found.name]))
    status, baseline = EXIT_OK, None
    if written is not None:
        argv = ["fuzz", str(written), "--report", str(report), "--no-coverage"]
        argv += ["--max-examples", str(args.max_examples)]
        argv += [] if args.seed is None else ["--seed", str(args.seed)]
        argv += [] if args.isolate else ["--no-isolate"]
        argv += ["--database", args.database]
        baseline = _baseline(report, [n for n, i in inferred.items() if i.contract is not None])
        argv += [] if baseline is None else ["--baseline", str(baseline)]
        status = fuzz(argv)
    results = _mark_results(report, inferred)
    if results:  # the report pages again, now naming each target's contract
        from fuzzgrad.nightly.recorder import render_reports

        render_reports(report, baseline)
    _write_scan(report, coverage, inferred, results)
    print(f"Scan record: {report / SCAN_FILE}; registrations: {report / TARGETS_FILE}")
    return status


def infer_registrations(
    given: list[str], folder: Path, traces: dict[str, list] | None = None
) -> tuple[Coverage, dict[str, Inference], Path | None]:
    """Scan ``given`` (modules, files, folders), infer a contract for each unregistered
    Function (from its ``traces``, the calls a command made, where there are some), and write
    the registrations of those with one to ``folder/scan_targets.py`` (returned; None when
    there are none)."""
    from fuzzgrad.integrations.scan.trace import traced_contract

    specs = [str(Path(s).resolve()) if Path(s).exists() else s for s in given]
    coverage = scan_modules(specs)
    inferred = {
        f.name: infer(f.cls, f.name, traced_contract(_calls_of(f, traces or {})))
        for f in coverage.unregistered
    }
    fuzzed = [f for f in coverage.unregistered if inferred[f.name].contract is not None]
    folder.mkdir(parents=True, exist_ok=True)
    if not fuzzed:
        return coverage, inferred, None
    (folder / TARGETS_FILE).write_text(registrations(fuzzed, inferred))
    return coverage, inferred, folder / TARGETS_FILE


def _baseline(report: Path, names: list[str]) -> Path | None:
    """The earlier run the fuzz run is diffed against (`implicit_baseline`), found before the
    run moves ``latest`` to this one, so that the pages rendered again after it keep the diff
    (its note, when there is none, is the fuzz run's to print)."""
    import contextlib
    import io
    from types import SimpleNamespace

    from fuzzgrad.integrations.runs import implicit_baseline

    with contextlib.redirect_stdout(io.StringIO()):
        return implicit_baseline(report, [SimpleNamespace(name=n) for n in names])


def _calls_of(found: Found, traces: dict[str, list]) -> list:
    """The traced calls of ``found``: recorded under its module's import name in the traced
    process, which for a file the scan imports by path is its stem (matched on the last part)."""
    last = found.name.rsplit(".", 2)[-2] if "." in found.name else ""
    for key, calls in traces.items():
        module, _, qualname = key.partition(":")
        if qualname == found.qualname and module.rsplit(".", 1)[-1] == last:
            return calls
    return []


def _describe(found: Found, inference: Inference) -> str:
    if inference.contract is None:
        return f"  {found.name}: no contract inferred (tried {inference.describe_tried()})"
    c = inference.contract
    oracle = " (judged by finite differences)" if inference.differences else ""
    return f"  {found.name}: {c.family} [{', '.join(c.inputs)}]{oracle}\n" + _indent(
        snippet(found.qualname, found.name, inference)
    )


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def registrations(fuzzed: list[Found], inferred: dict[str, Inference]) -> str:
    """The module of inferred registrations a scan fuzzes (and the user may copy from)."""
    lines = [
        '"""Registrations inferred by `fuzzgrad scan` (edit and move them into your code)."""',
        "",
        "import torch  # noqa: F401 - the dtypes below",
        "",
        "import fuzzgrad as fg",
        "from fuzzgrad.integrations.scan.found import scanned",
        "",
    ]
    for found in fuzzed:
        var = found.qualname.replace(".", "_")
        lines += [
            "",
            f"{var} = scanned({found.spec!r}, {found.module!r}, {found.qualname!r})",
            snippet(var, found.name, inferred[found.name]),
        ]
    return "\n".join(lines) + "\n"


def _mark_results(report: Path, inferred: dict[str, Inference]) -> dict[str, Any]:
    """Add each fuzzed target's contract to its record in ``results.json`` (readers ignore keys
    they do not know) and return the records by name."""
    path = report / "results.json"
    if not path.exists():
        return {}
    document = json.loads(path.read_text())
    out = {}
    for record in document.get("targets", []):
        inference = inferred.get(record.get("name"))
        if inference is not None and inference.contract is not None:
            c = inference.contract
            record["scan"] = {"contract": c.family, "inputs": list(c.inputs)}
            out[record["name"]] = record
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return out


def _write_scan(
    report: Path, coverage: Coverage, inferred: dict[str, Inference], results: dict[str, Any]
) -> None:
    functions = []
    for found in coverage.functions:
        entry: dict[str, Any] = {
            "name": found.name,
            "registered": found.name in coverage.registered,
        }
        inference = inferred.get(found.name)
        if inference is not None:
            c = inference.contract
            entry["tried"] = [{"family": f, "outcome": o} for f, o in inference.tried]
            entry["contract"] = (
                None if c is None else {"family": c.family, "inputs": list(c.inputs)}
            )
            entry["snippet"] = None if c is None else snippet(found.qualname, found.name, inference)
            entry["oracle"] = "differences" if inference.differences else "autograd of forward"
            entry["oracle_reason"] = inference.differences
            record = results.get(found.name)
            entry["status"] = record["status"] if record else None
            entry["failures"] = [
                {"property": f.get("property"), "reproducer": f.get("reproducer")}
                for f in (record or {}).get("failures", [])
            ]
        functions.append(entry)
    document = {
        "format": SCAN_FORMAT,
        "coverage": coverage.line(),
        "import_errors": coverage.import_errors,
        "properties": list(PROPERTIES),
        "dtypes": DTYPES,
        "functions": functions,
    }
    (report / SCAN_FILE).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
