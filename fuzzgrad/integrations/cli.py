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
        "(default: fuzzgrad's built-in targets). Writes results.json and one reproducer per "
        "failure under the report directory.",
    )
    fuzz.add_argument(
        "targets",
        nargs="*",
        metavar="MODULE_OR_PATH",
        help="module name, .py file or folder that registers targets",
    )
    fuzz.add_argument(
        "-k",
        "--target",
        action="append",
        dest="names",
        metavar="NAME",
        help="only fuzz the target with this name (repeatable)",
    )
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
        help="report directory (default: reports/<timestamp>, with reports/latest pointing at it)",
    )
    fuzz.add_argument(
        "--properties",
        default=None,
        metavar="P[,P...]",
        help="only check these properties (default: all the target declares)",
    )
    fuzz.add_argument(
        "--slow",
        action="store_true",
        help="also fuzz the targets registered slow=True (the Triton ones under the "
        "interpreter); they run anyway with --budget, or when named with -k",
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
        "--max-crashes",
        type=int,
        default=3,
        metavar="N",
        help="a target whose worker dies N times at the same place stops, giving its time back "
        "(default: 3); with --budget, a target resumes after a crash until then",
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
        description="List the targets the given modules, files or folders "
        "register (default: the built-in targets).",
    )
    lst.add_argument("targets", nargs="*", metavar="MODULE_OR_PATH")
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
        help="where --pytest writes the test (default: tests/test_regress_<target>_<prop>.py)",
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
        "--baseline", type=Path, default=None, metavar="DIR", help="diff DIR against this run"
    )
    return p


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


def _load(specs, names=None):
    from fuzzgrad.registry.discovery import load_targets

    return load_targets(specs or None, names)


def _list(args) -> int:
    from fuzzgrad.report.common import terminal_safe

    for t in _load(args.targets):
        xfail = f"  [xfail: {t.xfail}]" if t.xfail else ""
        xfail += "  [slow]" if t.slow else ""
        refs = "+".join(n for n, r in (("torch", t.reference), ("jax", t.jax_reference)) if r)
        line = f"{t.name:32s} {t.module:36s} refs={refs or 'none'}{xfail}"
        print(terminal_safe(line, newlines=False))
    return EXIT_OK


def _default_report_dir() -> Path:
    import datetime as dt

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / stamp


def _point_latest(report: Path) -> None:
    latest = report.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(report.name, target_is_directory=True)
    except OSError:
        pass


def _fuzz(args) -> int:
    import time

    started = time.monotonic()
    props = args.properties.split(",") if args.properties else None
    try:
        from fuzzgrad.nightly.plan import parse_options

        options = parse_options(args)
    except ValueError as exc:
        return _usage(str(exc))
    database = None if args.database.lower() == "none" else args.database
    missing = _missing_client(database)
    if missing:
        return _usage(missing)
    from fuzzgrad.nightly.plan import Plan, shard
    from fuzzgrad.nightly.pool import Stop, stoppable, workers_for

    report = args.report or _default_report_dir()
    baseline = args.baseline
    if baseline is None:
        latest = report.parent / "latest"
        if latest.exists() and latest.resolve() != report.resolve():
            baseline = latest.resolve()
    report.mkdir(parents=True, exist_ok=True)
    plan = Plan(
        specs=list(args.targets),
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
        max_crashes=options["max_crashes"],
        started=started,
    )
    problem = _database_problem(plan)
    try:
        # SIGTERM from here on ends the run cleanly (workers, scratch files, reports).
        with stoppable(), workers_for(plan) as workers:
            # Workers start loading now, while this process discovers the targets.
            from fuzzgrad.properties import names

            known = names()
            for p in props or ():
                if p not in known:
                    return _usage(f"unknown property {p!r}; choose from {', '.join(known)}")
            targets = _load(args.targets, args.names)
            if not (args.slow or args.names or options["budget"]):
                slow = [t.name for t in targets if t.slow]
                targets = [t for t in targets if not t.slow]
                if slow:
                    left_out = ", ".join(slow)
                    print(f"Left out {len(slow)} slow target(s) ({left_out}); --slow fuzzes them.")
            if options["shard"]:
                targets = shard(targets, *options["shard"])
            plan.targets = targets
            return _run_and_report(args, plan, options, baseline, workers, problem)
    except Stop:
        print("fuzzgrad: stopped (SIGTERM)", file=sys.stderr)
        return EXIT_FAILED


def _missing_client(database: str | None) -> str | None:
    """Why a Redis database cannot be used at all (its client package is not installed)."""
    from fuzzgrad.nightly.database import is_shared

    if not is_shared(database):
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return (
            "--database redis://... needs the Redis client, which is not installed: "
            'pip install -e ".[redis]" (or pip install redis)'
        )
    return None


def _database_problem(plan) -> str | None:
    """A warning when the example database cannot be used as given (then a folder in the report
    takes its place: at once for a folder, on first use in each worker for Redis)."""
    from fuzzgrad.nightly.database import FALLBACK_DATABASE, database_problem, is_shared

    problem = database_problem(None if plan.seed is not None else plan.database)
    if problem is None:
        return None
    fallback = plan.report_dir / FALLBACK_DATABASE
    if not is_shared(plan.database):
        plan.database = str(fallback)
    return f"{problem}; failures are kept in {fallback} instead"


def _run_and_report(args, plan, options, baseline, workers, problem) -> int:
    from fuzzgrad.nightly.pool import run
    from fuzzgrad.nightly.recorder import Recorder
    from fuzzgrad.report.common import redact
    from fuzzgrad.report.results import run_info

    report = plan.report_dir
    if args.report is None:
        _point_latest(report)
    info = run_info(
        # what the report shows of the command: without a password a database URL carries
        argv=[redact(a) for a in ["fuzzgrad", *args.argv]],
        seed=plan.seed,
        max_examples=args.max_examples,
        budget_seconds=plan.budget,
        shard="/".join(map(str, options["shard"])) if options["shard"] else None,
        jobs=plan.jobs,
        isolate=plan.isolate,
        database=redact(plan.database) if plan.database else None,
    )
    recorder = Recorder(plan, info)
    if problem is not None:
        recorder.warn("database", problem)
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
        cmp = compare(old, new)
        print(terminal_safe(format_comparison(cmp)), end="")
        return EXIT_FAILED if cmp["new"] or cmp["new_errors"] else EXIT_OK
    if args.dir is None:
        return _usage("give a report directory, or --compare OLD NEW")
    from fuzzgrad.nightly.recorder import render_reports
    from fuzzgrad.report.events import recover

    directory = _report_folder(args.dir)
    baseline = None if args.baseline is None else _report_folder(args.baseline)
    rebuilt = recover(directory)  # a killed run: results.json rebuilt from its event log
    for folder in (baseline, directory):
        if folder is not None:
            load_results(folder)  # a malformed file is an error here, not a traceback later
    run = load_results(directory)["run"]
    render_reports(directory, baseline)
    if rebuilt is not None:
        print(directory / "results.json")
    for name in ("junit.xml", "summary.md", "index.html"):
        print(directory / name)
    if isinstance(run, dict) and run.get("incomplete"):
        print(
            f"fuzzgrad: the run in {directory} is incomplete: {run['incomplete']}", file=sys.stderr
        )
        return EXIT_FAILED
    return EXIT_OK


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
        out = args.output or Path("tests") / _regression_name(data)
        _write_regression_test(path, out)
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
    from fuzzgrad.report.events import recover
    from fuzzgrad.report.results import load_results

    folder = _report_folder(report)
    results = recover(folder) or load_results(folder)  # a killed run: from its event log
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


REGRESSION_TEST = '''

def test_regression():
    """fuzzgrad regression test (`fuzzgrad repro --pytest`): this file is also the reproducer.

    Runs it in a fresh interpreter (a crash or JAX's x64 switch stays there) and asserts the
    Function now agrees with a reference on the shrunk input: it fails while the bug is there.
    """
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
'''


def _write_regression_test(reproducer: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reproducer.read_text().rstrip("\n") + "\n" + REGRESSION_TEST)


if __name__ == "__main__":
    sys.exit(main())
