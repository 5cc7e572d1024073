"""The ``fuzzgrad`` command: ``fuzz``, ``list`` and ``repro``.

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
        default=200,
        metavar="N",
        help="examples per target before shrinking (default: 200)",
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
        "--database",
        default=".fuzzgrad/examples",
        metavar="DIR",
        help="Hypothesis example database, so known failures replay first "
        "(default: .fuzzgrad/examples; 'none' to disable)",
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
        help="replay a reproducer file",
        description="Run a reproducer written by `fuzzgrad fuzz`: exit 1 while the "
        "bug is there, 0 once it is fixed.",
    )
    rep.add_argument("file", type=Path, metavar="FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from fuzzgrad._errors import FuzzgradError

    try:
        if args.command == "fuzz":
            return _fuzz(args)
        if args.command == "list":
            return _list(args)
        if args.command == "repro":
            return _repro(args)
    except FuzzgradError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE


def _load(specs, names=None):
    from fuzzgrad._discovery import load_targets

    return load_targets(specs or None, names)


def _list(args) -> int:
    for t in _load(args.targets):
        xfail = f"  [xfail: {t.xfail}]" if t.xfail else ""
        refs = "+".join(n for n, r in (("torch", t.reference), ("jax", t.jax_reference)) if r)
        print(f"{t.name:32s} {t.module:36s} refs={refs or 'none'}{xfail}")
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
    from fuzzgrad._properties import PROPERTIES
    from fuzzgrad._report import now, results_document, run_info, write_results
    from fuzzgrad._runner import fuzz_target

    targets = _load(args.targets, args.names)
    props = args.properties.split(",") if args.properties else None
    for p in props or ():
        if p not in PROPERTIES:
            print(
                f"error: unknown property {p!r}; choose from {', '.join(PROPERTIES)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    report = args.report or _default_report_dir()
    report.mkdir(parents=True, exist_ok=True)
    if args.report is None:
        _point_latest(report)
    database = None if args.database.lower() == "none" else Path(args.database)
    run = run_info(
        argv=["fuzzgrad", *sys.argv[1:]],
        seed=args.seed,
        max_examples=args.max_examples,
        budget_seconds=None,
        shard=None,
    )
    records = []
    unexpected = 0
    for target in targets:
        result = fuzz_target(
            target,
            max_examples=args.max_examples,
            seed=args.seed,
            properties=props,
            report_dir=report,
            database_dir=database,
        )
        records.append(result.to_json())
        write_results(report / "results.json", results_document(run, records))
        unexpected += result.status not in EXPECTED
        _print_result(result)
    run["finished"] = now()
    write_results(report / "results.json", results_document(run, records))
    counts = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"\n{len(records)} targets: {summary}. Report: {report / 'results.json'}")
    return EXIT_FAILED if unexpected else EXIT_OK


def _print_result(result) -> None:
    line = (
        f"{result.name:28s} {result.status.upper():8s} {result.examples:5d} examples "
        f"{result.seconds:6.1f}s"
    )
    print(line, flush=True)
    for f in result.failures:
        print(f"    {f.property}: {f.message}")
        print(f"    diagnosis: {f.diagnosis}")
        if f.reproducer:
            print(f"    reproducer: fuzzgrad repro {os.path.relpath(f.reproducer)}")
    if result.error:
        print(f"    error: {result.error['message']}")


def _repro(args) -> int:
    import subprocess

    from fuzzgrad._errors import ReproducerError
    from fuzzgrad._repro import read_reproducer

    if not args.file.exists():
        raise ReproducerError(f"fuzzgrad: no such reproducer file: {args.file}")
    read_reproducer(args.file)  # fails clearly on a file that is not a reproducer
    return subprocess.call([sys.executable, str(args.file)])


if __name__ == "__main__":
    sys.exit(main())
