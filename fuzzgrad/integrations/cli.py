"""The ``fuzzgrad`` command: ``fuzz``, ``list``, ``repro`` and ``report``.

Exit status: 0 when every target behaved as expected (passed, or failed where registered
``xfail``), 1 on any unexpected outcome (a failure, an unexpected pass, a crashed target), 2 on a
usage or registration error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXPECTED = {"passed", "xfailed"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fuzzgrad",
        description="Fuzz hand-written torch.autograd.Functions against torch autograd and JAX.",
        epilog="Exit status: 0 all as expected, 1 unexpected failures, 2 usage or registration "
        "errors.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    fuzz = sub.add_parser(
        "fuzz",
        help="fuzz registered Functions and write a report",
        description="Fuzz every Function registered by the given modules, .py files or folders "
        f"({DEFAULT_TARGETS}). Writes results.json and one reproducer per failure under the "
        "report directory.",
    )
    _add_selection(fuzz, "fuzz")
    fuzz.add_argument(
        "--max-examples",
        type=int,
        default=100,
        metavar="N",
        help="examples per target (per round, with --budget) before shrinking (default: 100)",
    )
    fuzz.add_argument(
        "--seed", type=int, default=None, help="random seed, for a run that repeats exactly"
    )
    fuzz.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="report directory (default: reports/<timestamp>); DIR's parent gets a `latest` "
        "link to it",
    )
    fuzz.add_argument(
        "--properties",
        default=None,
        metavar="P[,P...]",
        help="only check these properties (default: all the target declares)",
    )
    fuzz.add_argument(
        "--database",
        default=".fuzzgrad/examples",
        metavar="DIR_OR_URL",
        help="Hypothesis example database, so known failures replay first: a folder, or "
        "redis://host:port/db to share it among machines (default: .fuzzgrad/examples; "
        "'none' to disable)",
    )
    nightly = fuzz.add_argument_group("nightly runs")
    nightly.add_argument(
        "--budget",
        default=None,
        metavar="TIME",
        help="total time for the run (90s, 30m, 1h), shared among targets; targets then run in "
        "rounds of --max-examples until their share is used (default: one round each)",
    )
    nightly.add_argument(
        "--jobs",
        default="1",
        metavar="N|auto",
        help="targets fuzzed in parallel worker processes (default: 1; auto: one per CPU)",
    )
    nightly.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="only fuzz shard I of N (1-based; targets split by a stable hash of their name)",
    )
    nightly.add_argument(
        "--example-timeout",
        default="30s",
        metavar="TIME",
        help="one example running longer is reported as a timeout error (default: 30s)",
    )
    nightly.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="address-space limit per worker, e.g. 16G (default: none)",
    )
    nightly.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="fuzz in this process (for debugging: a crash or hang then ends the run)",
    )
    nightly.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="previous report to diff against in summary.md and index.html (default: "
        "reports/latest as it was before this run)",
    )
    lst = sub.add_parser(
        "list",
        help="list registered targets",
        description="List the targets the given modules, files or folders register "
        f"({DEFAULT_TARGETS}): name, module (or file, relative to the project) and references.",
    )
    _add_selection(lst, "list")
    rep = sub.add_parser(
        "repro",
        help="replay a reproducer file or a failure id from a report",
        description="Run a reproducer written by `fuzzgrad fuzz`: exit 1 while the "
        "bug is there, 0 once it is fixed. FILE_OR_ID is a reproducer file, or a failure "
        "signature (or its first characters) or target name from a report.",
    )
    rep.add_argument("file", metavar="FILE_OR_ID")
    rep.add_argument(
        "--report",
        type=Path,
        default=Path("reports/latest"),
        metavar="DIR",
        help="report to look failure ids up in (default: reports/latest)",
    )
    rep.add_argument(
        "--pytest",
        action="store_true",
        help="write a regression test (passes once the bug is fixed) instead of running it",
    )
    rep.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="where --pytest writes the test, a file or a folder (default: "
        "tests/test_regress_<target>_<prop>.py in the project)",
    )
    report = sub.add_parser(
        "report",
        help="re-render a report, or compare two runs",
        description="Re-render junit.xml, summary.md and index.html of a report directory, or "
        "with --compare OLD NEW print the failures that are new, fixed and still failing "
        "(exit 1 when something is new).",
    )
    report.add_argument("dir", nargs="?", type=Path, metavar="DIR")
    report.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    report.add_argument(
        "--allow-different-targets",
        action="store_true",
        help="with --compare: compare runs that fuzzed different targets (other shards, -k, "
        "targets added or removed); targets only one run has are listed, not diffed",
    )
    report.add_argument(
        "--baseline", type=Path, default=None, metavar="DIR", help="diff DIR against this run"
    )
    return p


DEFAULT_TARGETS = (
    "default: [tool.fuzzgrad] targets of the nearest pyproject.toml at or above the current "
    "folder, else fuzzgrad's built-in targets"
)


def _add_selection(command: argparse.ArgumentParser, verb: str) -> None:
    command.add_argument(
        "targets",
        nargs="*",
        metavar="MODULE_OR_PATH",
        help="module name (the current folder is on sys.path), .py file or folder that "
        "registers targets",
    )
    command.add_argument(
        "-k",
        "--target",
        action="append",
        dest="keywords",
        metavar="EXPR",
        help=f"only {verb} targets whose name or module matches EXPR, as pytest's -k: "
        'substrings (case-insensitive) joined by and, or, not, parentheses: -k "norm and not '
        'rms" (repeatable: any of them)',
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # for the report, as given (its credentials redacted there)
    from fuzzgrad.errors import FuzzgradError

    try:
        if args.command == "fuzz":
            return _fuzz(args)
        if args.command == "list":
            return _list(args)
        if args.command == "repro":
            return _repro(args)
        if args.command == "report":
            return _report(args)
    except FuzzgradError as exc:
        return _usage(str(exc))
    return EXIT_USAGE


def _specs(given: list[str]) -> tuple[list[str], list[str], str]:
    """What to import, resolved once here so that worker processes load the same: the given
    modules, files and folders (existing paths made absolute), else ``[tool.fuzzgrad] targets``
    of the nearest pyproject.toml that declares them (relative to its folder), else the
    built-ins. Returns the specs, the folders put on ``sys.path`` (the current folder, as
    ``python -m`` and pytest do, the project's root, and the folder of the pyproject.toml that
    named the specs), and where the specs came from."""
    from fuzzgrad.registry.discovery import BUILTIN
    from fuzzgrad.registry.project import (
        configured_targets,
        find_pyproject,
        on_sys_path,
        project_root,
    )

    added = [on_sys_path(project_root()).add(), on_sys_path(Path.cwd()).add()]  # cwd first
    if given:
        specs = [str(Path(s).resolve()) if _is_existing_path(s) else s for s in given]
        return specs, [p for p in added if p], "the command line"
    pyproject = find_pyproject(declaring=True)
    if pyproject is None:
        return [BUILTIN], [p for p in added if p], "fuzzgrad's built-in targets"
    configured = configured_targets(pyproject)
    added.append(on_sys_path(configured.root).add())
    return list(configured.specs), [p for p in added if p], f"[tool.fuzzgrad] in {pyproject}"


def _is_existing_path(spec: str) -> bool:
    return Path(spec).exists()  # as `import_targets` reads it: a path wins over a module name


def _load(specs: list[str], keywords: list[str] | None = None):
    from fuzzgrad.integrations.keywords import select
    from fuzzgrad.registry.discovery import load_targets

    return select(load_targets(specs), keywords)


def _check_keywords(keywords: list[str] | None) -> None:
    """A malformed -k is a usage error before anything is imported or started."""
    from fuzzgrad.integrations.keywords import Expression

    for text in keywords or ():
        if text.strip():
            Expression(text)


def _list(args) -> int:
    from fuzzgrad.report.common import terminal_safe

    _check_keywords(args.keywords)
    specs, _, _ = _specs(args.targets)
    for t in _load(specs, args.keywords):
        xfail = f"  [xfail: {t.xfail}]" if t.xfail else ""
        refs = "+".join(n for n, r in (("torch", t.reference), ("jax", t.jax_reference)) if r)
        line = f"{t.name:32s} {t.display_module:36s} refs={refs or 'none'}{xfail}"
        print(terminal_safe(line, newlines=False))
    return EXIT_OK


def _default_report_dir() -> Path:
    import datetime as dt

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / stamp


def _point_latest(report: Path) -> None:
    """Point ``latest`` in the report's parent folder at it (a relative symlink, replaced
    atomically); where that cannot be done, say where latest is. A real file or folder named
    ``latest`` is left alone."""
    report = report.resolve()
    latest = report.parent / LATEST
    if report.name == LATEST or Path.cwd().resolve().is_relative_to(report):
        return  # `--report .`: no link in the folder above the one the user works in
    if latest.exists() and not latest.is_symlink():
        print(f"note: {latest} is not a link, so it was left alone; the newest report is {report}")
        return
    tmp = latest.with_name(f".{LATEST}-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(report.name, target_is_directory=True)
        os.replace(tmp, latest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        print(f"note: cannot link {latest} ({exc.strerror or exc}); the newest report is {report}")


LATEST = "latest"


def _implicit_baseline(report: Path, targets) -> Path | None:
    """The run ``latest`` points at, to diff this one against, when it fuzzed the same targets
    (a diff against another shard or another -k would call every target new or not re-run)."""
    from fuzzgrad.report.results import ResultsFormatError, load_results

    latest = report.parent / LATEST
    if not latest.exists() or latest.resolve() == report.resolve():
        return None
    try:
        previous = {t.get("name") for t in load_results(latest.resolve())["targets"]}
    except (ResultsFormatError, OSError):
        return None
    missing = sorted(previous - {t.name for t in targets})
    if missing:  # another shard, another -k: its targets would all read as "not re-run"
        print(
            f"note: not comparing with {latest.resolve()}: it fuzzed {len(missing)} target(s) "
            f"this run does not ({_some(missing)}); pass --baseline DIR to compare anyway"
        )
        return None
    return latest.resolve()


def _some(names: list[str], limit: int = 5) -> str:
    more = f", and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _fuzz(args) -> int:
    import time

    started = time.monotonic()
    props = args.properties.split(",") if args.properties else None
    try:
        from fuzzgrad.nightly.plan import parse_options

        options = parse_options(args)
    except ValueError as exc:
        return _usage(str(exc))
    from fuzzgrad.nightly.plan import Plan, shard
    from fuzzgrad.nightly.pool import run, start_workers, stop_workers

    _check_keywords(args.keywords)
    specs, sys_path, source = _specs(args.targets)
    report = args.report or _default_report_dir()
    if report.exists() and not report.is_dir():
        return _usage(f"--report {str(report)!r} is a file; give a folder for the report")
    report.mkdir(parents=True, exist_ok=True)
    database = None if args.database.lower() == "none" else args.database
    plan = Plan(
        specs=specs,
        sys_path=sys_path,
        targets=[],
        report_dir=report,
        max_examples=args.max_examples,
        seed=args.seed,
        properties=props,
        database=database,
        budget=options["budget"],
        jobs=options["jobs"],
        isolate=args.isolate,
        example_timeout=options["example_timeout"],
        max_memory=options["max_memory"],
        started=started,
    )
    # Workers start importing torch now, while this process discovers the targets.
    workers = start_workers(plan)
    try:
        from fuzzgrad.properties import names

        PROPERTIES = names()

        for p in props or ():
            if p not in PROPERTIES:
                stop_workers(workers)
                return _usage(f"unknown property {p!r}; choose from {', '.join(PROPERTIES)}")
        targets = _load(specs, args.keywords)
    except BaseException:
        stop_workers(workers)
        raise
    if options["shard"]:
        targets = shard(targets, *options["shard"])
    plan.targets = targets
    baseline = args.baseline or _implicit_baseline(report, targets)
    _point_latest(report)
    if not args.targets:
        print(f"fuzzgrad: {len(targets)} targets from {source}")
    from fuzzgrad.nightly.recorder import Recorder
    from fuzzgrad.report.common import redact
    from fuzzgrad.report.results import run_info

    info = run_info(
        # what the report shows of the command: without a password a database URL carries
        argv=[redact(a) for a in ["fuzzgrad", *args.argv]],
        seed=plan.seed,
        max_examples=args.max_examples,
        budget_seconds=plan.budget,
        shard="/".join(map(str, options["shard"])) if options["shard"] else None,
        jobs=plan.jobs,
        isolate=plan.isolate,
        database=redact(database) if database else None,
    )
    recorder = Recorder(plan, info)
    try:
        run(plan, recorder, workers)
    finally:
        comparison = recorder.finish(baseline)
    records = recorder.ordered()
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"\n{len(records)} targets: {summary or 'none'} in {info['seconds']:.1f}s. ", end="")
    print(f"Report: {report / 'index.html'}")
    if comparison is not None:
        from fuzzgrad.report.compare import format_comparison

        print(f"Compared with {baseline}: " + format_comparison(comparison).splitlines()[0])
    unexpected = any(r["status"] not in EXPECTED for r in records)
    registration = [r for r in records if (r.get("error") or {}).get("kind") == "registration"]
    for r in registration:
        print(f"error: {r['error']['message']}", file=sys.stderr)
    if registration:
        return EXIT_USAGE
    return EXIT_FAILED if unexpected or info.get("interrupted") else EXIT_OK


def _usage(message: str) -> int:
    from fuzzgrad.report.common import terminal_safe

    print(f"error: {terminal_safe(message)}", file=sys.stderr)
    return EXIT_USAGE


def _report(args) -> int:
    from fuzzgrad.report.common import terminal_safe
    from fuzzgrad.report.compare import compare, format_comparison
    from fuzzgrad.report.results import load_results

    if args.compare:
        old, new = (load_results(p) for p in args.compare)
        if not args.allow_different_targets:
            _same_targets(args.compare, old, new)
        cmp = compare(old, new)
        print(terminal_safe(format_comparison(cmp)), end="")
        return EXIT_FAILED if cmp["new"] or cmp["new_errors"] else EXIT_OK
    if args.dir is None:
        return _usage("give a report directory, or --compare OLD NEW")
    from fuzzgrad.nightly.recorder import render_reports

    directory = _report_folder(args.dir)
    baseline = None if args.baseline is None else _report_folder(args.baseline)
    for folder in (baseline, directory):
        if folder is not None:
            load_results(folder)  # a malformed file is an error here, not a traceback later
    render_reports(directory, baseline)
    for name in ("junit.xml", "summary.md", "index.html"):
        print(directory / name)
    return EXIT_OK


def _same_targets(paths, old, new) -> None:
    """Refuse to diff runs of different target sets: a target only the old run fuzzed would
    read as not re-run, one only the new run fuzzed as all new (another shard, another -k)."""
    from fuzzgrad.errors import FuzzgradError

    before, after = ({t.get("name") for t in r["targets"]} for r in (old, new))
    if before == after:
        return
    parts = []
    for label, names in (("OLD", before - after), ("NEW", after - before)):
        if names:
            parts.append(f"{len(names)} only in {label} ({_some(sorted(map(str, names)))})")
    raise FuzzgradError(
        f"fuzzgrad: OLD {paths[0]} and NEW {paths[1]} fuzzed different targets: "
        f"{'; '.join(parts)}; "
        "compare runs of the same targets (same shard, same -k), or pass "
        "--allow-different-targets to compare them anyway."
    )


def _report_folder(path: Path) -> Path:
    """The report folder ``path`` names: the folder itself, or the folder of its results.json
    (``fuzzgrad report DIR/typo`` is an error, not a re-render of DIR)."""
    from fuzzgrad.report.results import ResultsFormatError

    if path.is_dir():
        return path
    if path.is_file() and path.name == "results.json":
        return path.parent
    what = "is not a report folder or its results.json" if path.exists() else "does not exist"
    raise ResultsFormatError(
        f"{str(path)!r} {what}; give the folder a `fuzzgrad fuzz` run wrote (its --report)"
    )


def _repro(args) -> int:
    import subprocess

    from fuzzgrad.errors import ReproducerError
    from fuzzgrad.report.reproducer import read_reproducer

    if _is_path(args.file):
        path = Path(args.file)
        if not path.is_file():
            raise ReproducerError(f"fuzzgrad: no such reproducer file: {args.file}")
    else:  # a failure id: only ever a reproducer inside the report folder
        path = _find_reproducer(args.file, args.report)
    data = read_reproducer(path)  # fails clearly on a file that is not a reproducer
    if args.pytest:
        out = _regression_path(args.output, data)
        for note in _write_regression_test(path, data, out):
            print(f"note: {note}")
        print(f"wrote {out}: it fails while the bug is there and passes once it is fixed")
        return EXIT_OK
    return subprocess.call([sys.executable, str(path)])


def _is_path(text: str) -> bool:
    """Whether ``fuzzgrad repro`` was given a file (``*.py`` or a path), not a failure id."""
    return text.endswith(".py") or any(sep and sep in text for sep in (os.sep, os.altsep))


def _find_reproducer(failure_id: str, report: Path) -> Path:
    """The reproducer of a failure in a report, by signature (or a prefix) or target name."""
    from fuzzgrad.errors import ReproducerError
    from fuzzgrad.report.common import failure_signature
    from fuzzgrad.report.results import load_results

    folder = _report_folder(report)
    results = load_results(folder)
    found: dict[str, str] = {}
    for record in results["targets"]:
        name = record["name"]
        error = record.get("error") or {}
        for failure in record.get("failures") or []:
            sig = failure_signature(name, failure)
            if failure.get("reproducer") and (sig.startswith(failure_id) or name == failure_id):
                found[sig] = failure["reproducer"]
        if error.get("reproducer") and name == failure_id:
            found[f"{name} ({error.get('kind')})"] = error["reproducer"]
    if len(found) != 1:
        what = "matches" if found else "no failure with a reproducer matches"
        raise ReproducerError(
            f"fuzzgrad: {what} {failure_id!r} in {report}"
            + (f": {', '.join(found)}; give more of the signature" if found else "")
        )
    return _inside(folder, next(iter(found.values())), failure_id)


def _inside(folder: Path, recorded: str, failure_id: str) -> Path:
    """The file a report records as a reproducer, found inside the report folder and only
    there: a relative path is read against the folder (never the current one), a path that no
    longer exists by its tail under the folder (a report that was moved or downloaded), and a
    file outside the folder, or a link out of it, is refused."""
    from fuzzgrad.errors import ReproducerError

    root = folder.resolve()
    parts = Path(recorded).parts
    outside = None
    for i in range(len(parts)):
        candidate = (root / Path(*parts[i:])).resolve()  # an absolute path stays itself
        if not candidate.is_file():
            continue
        if candidate.is_relative_to(root):
            return candidate
        outside = outside or candidate
    if outside is not None:
        raise ReproducerError(
            f"fuzzgrad: the reproducer of {failure_id!r} is outside the report folder {folder} "
            f"({outside}); refusing to run it. Run it by its path if you trust it."
        )
    raise ReproducerError(f"fuzzgrad: the reproducer of {failure_id!r} is gone: {recorded}")


def _regression_name(data: dict) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9_]+", "_", f"{data['target']}_{data['property']}").lower()
    return f"test_regress_{stem}.py"


def _regression_path(output: Path | None, data: dict) -> Path:
    """Where ``repro --pytest`` writes: ``-o FILE``, into ``-o FOLDER``, else the project's
    ``tests/`` folder."""
    from fuzzgrad.registry.project import project_root

    if output is None:
        return project_root() / "tests" / _regression_name(data)
    return output / _regression_name(data) if output.is_dir() else output


REGRESSION_TEST = '''

def test_regression():
    """fuzzgrad regression test (`fuzzgrad repro --pytest`): this file is also the reproducer.

    Runs it in a fresh interpreter (a crash or JAX's x64 switch stays there) and asserts the
    Function now agrees with a reference on the shrunk input: it fails while the bug is there.
    The target is imported by module name from the project root, or by a path relative to this
    file (DATA's project_root and module_file), so the test runs in any clone.
    """
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
'''


def _write_regression_test(reproducer: Path, data: dict, out: Path) -> list[str]:
    """Write the reproducer as a test whose paths are relative to the test's own folder (never
    absolute, so it can be committed); return notes for the user."""
    from fuzzgrad.registry.project import find_pyproject, project_root
    from fuzzgrad.registry.target import BY_PATH_PREFIX
    from fuzzgrad.report.reproducer import replace_data

    folder = out.parent.resolve()
    found = find_pyproject(folder)
    root = found.parent if found is not None else project_root()
    data, notes = dict(data), []
    data["project_root"] = _relative(root, folder) if folder.is_relative_to(root) else None
    if data["project_root"] is None:
        notes.append(
            f"{out} is outside the project {root}: the test finds the target only where the "
            "module is installed or the file keeps its place relative to the test"
        )
    module_file = data.get("module_file")
    if module_file:
        file = (reproducer.resolve().parent / module_file).resolve()  # absolute stays itself
        inside = file.is_relative_to(root)
        if inside or data["module"].startswith(BY_PATH_PREFIX):
            data["module_file"] = _relative(file, folder)
            if not inside:
                notes.append(f"the target's file {file} is outside the project {root}")
        else:  # an installed module: imported by its name
            data["module_file"] = None
    text = replace_data(reproducer.read_text(encoding="utf-8"), data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text.rstrip("\n") + "\n" + REGRESSION_TEST, encoding="utf-8")
    return notes


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` in ``/`` form (``..`` where needed)."""
    return Path(os.path.relpath(path, folder)).as_posix()


if __name__ == "__main__":
    sys.exit(main())
