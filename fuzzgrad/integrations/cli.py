"""The ``fuzzgrad`` command: ``fuzz``, ``scan``, ``list``, ``repro`` and ``report``.

Exit status: 0 when every target behaved as expected (passed, or failed where registered
``xfail``), 1 on any unexpected outcome (a failure, an unexpected pass, a crashed target), 2 on a
usage or registration error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from fuzzgrad.integrations.cluster import (
    add_cluster_options,
    bad_database,
    executor,
    executor_problem,
)
from fuzzgrad.integrations.runs import EXIT_FAILED, EXIT_OK, EXIT_USAGE

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
        "--slow",
        action="store_true",
        help="also fuzz the targets registered slow=True (the Triton ones under the "
        "interpreter); they run anyway with --budget, or when named with -k",
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
        help="Hypothesis example database, so known failures replay first: a folder, "
        "redis://host:port/db to share it among machines, or "
        "github-artifact://OWNER/REPO[/ARTIFACT][?local=DIR] to replay a CI artifact (read-only) "
        "and save to a local folder (default: .fuzzgrad/examples; 'none' to disable)",
    )
    fuzz.add_argument(  # `fuzzgrad scan` fuzzes its own registrations: no coverage line
        "--no-coverage", dest="coverage", action="store_false", help=argparse.SUPPRESS
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
        default=None,
        metavar="N|auto",
        help="targets fuzzed in parallel worker processes (default: 1; auto: one per CPU); "
        "with --executor ray, at most this many tasks at once (default: what the cluster holds)",
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
    add_cluster_options(fuzz, nightly)
    nightly.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="previous report to diff against in summary.md and index.html (default: "
        "reports/latest as it was before this run)",
    )
    _add_scan(sub)
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
        "--runs",
        type=_positive,
        default=5,
        metavar="N",
        help="check the case N times: a nondeterministic bug that fails some of them is "
        "reported as 'FLAKY: failed k of N' (exit 1), not as fixed (default: 5)",
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
    report.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="OUT DIR",
        help="merge the reports DIR... (of shards, or of hosts) into a new report OUT: one "
        "record per target, failures once per signature, examples and time summed",
    )
    return p


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1 (argparse says which option on error)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"takes a number >= 1, not {text!r}")
    return int(text)


DEFAULT_TARGETS = (
    "default: [tool.fuzzgrad] targets of the nearest pyproject.toml at or above the current "
    "folder, else fuzzgrad's built-in targets"
)


def _add_scan(sub) -> None:
    scan = sub.add_parser(
        "scan",
        help="fuzz every custom Function of a package, registered or not",
        description="Find every torch.autograd.Function subclass the given packages, modules, "
        ".py files or folders define, say which are registered, infer an input contract for "
        "the others by trial (one shape, broadcastable, matrices, a dim argument), and fuzz them "
        "against autograd of their own forward (finite differences where it is not "
        "differentiable), checking only what holds under any contract the forward accepts. "
        "Writes the inferred registrations (scan_targets.py), scan.json and the usual report.",
    )
    scan.add_argument("targets", nargs="+", metavar="MODULE_OR_PATH")
    scan.add_argument(
        "--max-examples",
        type=int,
        default=100,
        metavar="N",
        help="examples per Function before shrinking (default: 100)",
    )
    scan.add_argument("--seed", type=int, default=None, help="random seed")
    scan.add_argument(
        "--trace",
        default=None,
        metavar="CMD",
        help='run CMD (a shell command: "pytest tests/", an example script) with '
        "Function.apply instrumented, and infer each traced Function's contract from the calls "
        "it made (shapes: which dims vary, which are equal; plain values) before trying families",
    )
    scan.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="report directory (default: reports/<timestamp>)",
    )
    scan.add_argument(
        "--database",
        default="none",
        metavar="DIR_OR_URL",
        help="Hypothesis example database, as for fuzz (default: none)",
    )
    scan.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="fuzz in this process (for debugging)",
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
            return _stoppable_fuzz(args)
        if args.command == "list":
            return _list(args)
        if args.command == "scan":
            from fuzzgrad.integrations.scan.command import scan_command

            return scan_command(args, main)
        if args.command == "repro":
            from fuzzgrad.integrations.regression import repro_command

            return repro_command(args)
        if args.command == "report":
            from fuzzgrad.integrations.runs import report_command

            return report_command(args)
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
        ConfigError,
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
    if configured is None:  # a fuzzgrad project without targets: never the built-ins
        raise ConfigError(
            f"fuzzgrad: [tool.fuzzgrad] in {pyproject} has no targets; add targets = "
            '["my_package.ops", "tests/fuzz_targets.py"] (modules, files or folders), or name '
            "them on the command line."
        )
    added.append(on_sys_path(configured.root).add())
    return list(configured.specs), [p for p in added if p], f"[tool.fuzzgrad] in {pyproject}"


def _is_existing_path(spec: str) -> bool:
    return Path(spec).exists()  # as `import_targets` reads it: a path wins over a module name


def _load(specs: list[str], keywords: list[str] | None = None):
    from fuzzgrad.errors import TargetNotFound
    from fuzzgrad.integrations.keywords import select
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.registry.project import shown_path

    targets = load_targets(specs)
    if not targets:
        named = ", ".join(shown_path(s) if Path(s).exists() else s for s in specs)
        raise TargetNotFound(
            f"fuzzgrad: {named} register(s) no targets; decorate Functions there with "
            "@fuzzgrad.register(...), or name the modules, files or folders that do."
        )
    return select(targets, keywords)


def _check_keywords(keywords: list[str] | None) -> None:
    """A malformed -k is a usage error before anything is imported or started."""
    from fuzzgrad.integrations.keywords import Expression

    for text in keywords or ():
        if text.strip():
            Expression(text)


def _list(args) -> int:
    from fuzzgrad.nightly.plugins import prepare
    from fuzzgrad.report.common import terminal_safe

    prepare(isolate=True)  # listing runs no test: no Hypothesis plugin here

    _check_keywords(args.keywords)
    specs, _, _ = _specs(args.targets)
    for t in _load(specs, args.keywords):
        xfail = f"  [xfail: {t.xfail}]" if t.xfail else ""
        xfail += "  [slow]" if t.slow else ""
        refs = "+".join(n for n, r in (("torch", t.reference), ("jax", t.jax_reference)) if r)
        line = f"{t.name:32s} {t.display_module:36s} refs={refs or 'none'}{xfail}"
        print(terminal_safe(line, newlines=False))
    return EXIT_OK


def _stoppable_fuzz(args) -> int:
    """`_fuzz`, stopped by Ctrl-C (SIGINT) or SIGTERM at any moment with one line: during the
    run, the report holds what was done; during start-up, nothing was fuzzed yet."""
    from fuzzgrad.nightly.pool import Stop, reset_stop, stoppable

    reset_stop()
    try:
        with stoppable():
            return _fuzz(args)
    except KeyboardInterrupt as stop:
        name = str(stop) if isinstance(stop, Stop) and str(stop) else "SIGINT"
        print(
            f"fuzzgrad: stopped ({name}) before fuzzing started; nothing was fuzzed",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _fuzz(args) -> int:
    import time

    from fuzzgrad.nightly.plugins import prepare

    prepare(isolate=args.isolate)  # before anything imports Hypothesis
    args.started = time.monotonic()
    props = args.properties.split(",") if args.properties else None
    try:
        from fuzzgrad.nightly.plan import parse_options

        options = parse_options(args)
    except ValueError as exc:
        return _usage(str(exc))
    from fuzzgrad.integrations.runs import default_report_dir

    problem = executor_problem(args, options)
    if problem:
        return _usage(problem)
    _check_keywords(args.keywords)
    specs, sys_path, source = _specs(args.targets)
    report = args.report or default_report_dir()
    if report.exists() and not report.is_dir():
        return _usage(f"--report {str(report)!r} is a file; give a folder for the report")
    database = None if args.database.lower() == "none" else args.database
    missing = _missing_client(database) or bad_database(database)
    if missing:
        return _usage(missing)
    from fuzzgrad.integrations.runs import hypothesis_files_in, report_lock

    hypothesis_files = hypothesis_files_in(report) if database is None else contextlib.nullcontext()
    # one run per report folder; a read-only one stops here
    with report_lock(report), hypothesis_files:
        return _fuzz_into(args, report, database, specs, sys_path, source, options, props)


def _fuzz_into(args, report, database, specs, sys_path, source, options, props) -> int:
    """`_fuzz` once the report folder is this run's."""
    from fuzzgrad.nightly.plan import Plan
    from fuzzgrad.nightly.pool import Stop, check_stop, workers_for

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
        max_crashes=options["max_crashes"],
        started=args.started,
        devices=options["devices"],
    )
    problem = _database_problem(plan)
    local = options["executor"] == "process"
    try:
        # SIGTERM and SIGINT (`_stoppable_fuzz`) end the run cleanly: workers, scratch files,
        # and the reports, which the run writes (marked interrupted) once it has started.
        pool: contextlib.AbstractContextManager[list] = (
            workers_for(plan) if local else contextlib.nullcontext([])
        )
        with pool as workers:
            # Workers start loading now, while this process discovers the targets.
            from fuzzgrad.properties import names

            known = names()
            for p in props or ():
                if p not in known:
                    return _usage(f"unknown property {p!r}; choose from {', '.join(known)}")
            loaded = _load(specs, args.keywords)
            plan.targets = _selected(loaded, args, options)
            check_stop()  # a Ctrl-C that an import's callback swallowed still stops the run
            if not args.targets:
                print(f"fuzzgrad: {len(plan.targets)} targets from {source}")
            if args.coverage:
                _print_coverage(loaded)
            return _run_and_report(args, plan, options, workers, problem)
    except Stop as stop:
        print(f"fuzzgrad: stopped ({str(stop) or 'SIGTERM'})", file=sys.stderr)
        return EXIT_FAILED


def _print_coverage(targets) -> None:
    """One line of registration coverage: the custom Functions of the modules fuzzed, and
    which no target calls (`fuzzgrad scan` fuzzes those)."""
    from fuzzgrad.integrations.scan.found import registration_coverage
    from fuzzgrad.report.common import terminal_safe

    coverage = registration_coverage(targets)
    if coverage.unregistered:
        line = f"fuzzgrad: registration coverage: {coverage.line()} (fuzzgrad scan fuzzes them)"
        print(terminal_safe(line, newlines=False))


def _selected(targets, args, options) -> list:
    """The targets this run fuzzes: slow ones only when asked for (``--slow``, ``-k``, or a
    nightly ``--budget``), then this shard's."""
    from fuzzgrad.nightly.plan import shard

    if not (args.slow or args.keywords or options["budget"]):
        slow = [t.name for t in targets if t.slow]
        targets = [t for t in targets if not t.slow]
        if slow:
            print(f"Left out {len(slow)} slow target(s) ({', '.join(slow)}); --slow fuzzes them.")
    if options["shard"]:
        targets = shard(targets, *options["shard"])
    return targets


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


def _run_and_report(args, plan, options, workers, problem) -> int:
    from fuzzgrad.integrations.runs import (
        WRITE_ERRNOS,
        implicit_baseline,
        point_latest,
        unwritable,
    )
    from fuzzgrad.nightly.recorder import Recorder
    from fuzzgrad.report.common import redact
    from fuzzgrad.report.results import run_info

    runner = executor(plan, options, workers)  # a cluster out of reach: exit 2, no report
    report = plan.report_dir
    baseline = args.baseline or implicit_baseline(report, plan.targets)
    point_latest(report)
    info = run_info(
        # what the report shows of the command: without a password a database URL carries
        argv=[redact(a) for a in ["fuzzgrad", *args.argv]],
        seed=plan.seed,
        max_examples=args.max_examples,
        budget_seconds=plan.budget,
        shard="/".join(map(str, options["shard"])) if options["shard"] else None,
        jobs=plan.jobs if options["executor"] == "process" or options["jobs_given"] else None,
        isolate=plan.isolate,
        database=redact(plan.database) if plan.database else None,
        executor=options["executor"],
    )
    recorder = Recorder(plan, info)
    if problem is not None:
        recorder.warn("database", problem)
    try:
        try:
            runner(recorder)
        finally:
            comparison = recorder.finish(baseline)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        recorder.abandon(exc)  # the report is marked incomplete, as far as it can be
        raise unwritable(report, exc) from None
    records = recorder.ordered()
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"\n{len(records)} targets: {summary or 'none'} in {info['seconds']:.1f}s. ", end="")
    print(f"Report: {report / 'index.html'}")
    if info.get("interrupted"):
        print(f"fuzzgrad: stopped ({info['interrupted']}); the report holds what was done")
    if info.get("incomplete"):
        from fuzzgrad.report.common import terminal_safe

        print(
            f"fuzzgrad: the report is incomplete: {terminal_safe(info['incomplete'])}",
            file=sys.stderr,
        )
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


def command() -> None:
    """The ``fuzzgrad`` command (and ``python -m fuzzgrad``): `main`, then the process ends at
    once. Once a run's reports are written and its workers stopped, Python's own finalisation
    (tearing down torch's and XLA's native state) took 1 to 3 s more, which made Ctrl-C, and
    every run, that much slower to give the prompt back. The exit functions registered with
    `atexit` (multiprocessing's, Ray's, the user's) still run, and the output is flushed."""
    import atexit
    import os

    code = main()
    # The one way to run the registered exit functions without finalising the interpreter
    # (CPython's, stable since 3.0; what `sys.exit` would run first).
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            pass
    os._exit(code)


if __name__ == "__main__":
    command()
