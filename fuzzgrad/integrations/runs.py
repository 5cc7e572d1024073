"""Report folders for the ``fuzzgrad`` command: where a run writes, the ``latest`` link,
which earlier run it is diffed against, and ``fuzzgrad report`` (re-render, ``--compare``)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path

from fuzzgrad.errors import FuzzgradError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The link, beside a run's folder, to the newest run written there.
LATEST = "latest"


def default_report_dir() -> Path:
    """``reports/<timestamp>`` under the current folder."""
    import datetime as dt

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / stamp


def point_latest(report: Path) -> None:
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


#: The file a run holds in its report folder while it writes there: the owner's pid.
LOCK = ".fuzzgrad.lock"
#: What a failed write of the report means: the folder, or its disk, cannot take it.
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


class ReportInUse(FuzzgradError, RuntimeError):
    """Another live run writes the same report folder."""


class ReportUnwritable(FuzzgradError, OSError):
    """The report folder cannot be created or written."""


def unwritable(report: Path, exc: OSError) -> ReportUnwritable:
    """The one-line error of a report folder that cannot be written (read-only, full disk)."""
    reason = exc.strerror or str(exc)
    return ReportUnwritable(
        f"cannot write the report in {report} ({reason}); free space there or give --report a "
        "folder you can write"
    )


class report_lock:  # noqa: N801 - used like a function
    """Hold ``report``'s lock file for a ``with`` block: a second run on the same folder is a
    `ReportInUse` error instead of a report mixing both runs. A lock whose owner pid is no
    longer alive (a run that was killed) is taken over. The folder is created here, so a
    read-only one is a `ReportUnwritable` before anything starts."""

    def __init__(self, report: Path) -> None:
        self.path = report / LOCK
        self.report = report

    def __enter__(self) -> report_lock:
        try:
            self.report.mkdir(parents=True, exist_ok=True)
            for _ in range(2):  # the second time after removing a stale lock
                if self._create():
                    return self
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise ReportInUse(
                        f"--report {self.report} is being written by another fuzzgrad run "
                        f"(pid {owner}); give this run another folder, or wait for that one"
                    )
                self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise unwritable(self.report, exc) from None
        raise ReportInUse(f"--report {self.report}: another run took its lock; try again")

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return True

    def _owner(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def __exit__(self, *exc: object) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def refuse_live(folder: Path, doing: str) -> None:
    """`ReportInUse` when a live run holds ``folder``'s lock: re-rendering or merging a report
    while its run still writes would rebuild results.json from half an event log and race the
    run's own final write."""
    path = folder / LOCK
    try:
        text = path.read_text().strip()
    except OSError:
        return
    if text.isdigit() and int(text) != os.getpid() and _alive(int(text)):
        raise ReportInUse(
            f"fuzzgrad: cannot {doing} {folder}: fuzzgrad run pid {text} is still writing it; "
            "wait for that run to finish (or stop it: Ctrl-C leaves a finished report)"
        )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts until reaped; a pid of another user's
    process counts as alive: better refuse than mix)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def hypothesis_files_in(report: Path):
    """With ``--database none``, what Hypothesis itself stores (its ``constants`` cache) goes
    into the report for the run, not into a ``.hypothesis`` folder of the current one: the run
    writes nothing outside its report. Workers inherit the setting through the environment; a
    ``HYPOTHESIS_STORAGE_DIRECTORY`` the user set is left as it is."""
    if STORAGE in os.environ:
        yield
        return
    os.environ[STORAGE] = str((report / ".hypothesis").resolve())
    configuration = sys.modules.get("hypothesis.configuration")  # imported: tell it too
    previous = None
    if configuration is not None:
        previous = configuration.storage_directory(intent_to_write=False).home_directory
        configuration.set_hypothesis_home_dir(os.environ[STORAGE])
    try:
        yield
    finally:
        del os.environ[STORAGE]
        if configuration is not None:
            configuration.set_hypothesis_home_dir(previous)


#: Where Hypothesis keeps its files (its documented environment variable).
STORAGE = "HYPOTHESIS_STORAGE_DIRECTORY"


def implicit_baseline(report: Path, targets) -> Path | None:
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


def report_command(args) -> int:
    """``fuzzgrad report DIR`` (re-render) or ``fuzzgrad report --compare OLD NEW``."""
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
    if args.merge:
        return _merge_command(args)
    if args.dir is None:
        raise FuzzgradError(
            "fuzzgrad: give a report directory, --compare OLD NEW, or --merge OUT DIR..."
        )
    from fuzzgrad.nightly.recorder import render_reports
    from fuzzgrad.report.events import recover

    directory = report_folder(args.dir)
    refuse_live(directory, "re-render")
    baseline = None if args.baseline is None else report_folder(args.baseline)
    rebuilt = recover(directory)  # a killed run: results.json rebuilt from its event log
    for folder in (baseline, directory):
        if folder is not None:
            load_results(folder)  # a malformed file is an error here, not a traceback later
    run = load_results(directory).get("run")
    render_reports(directory, baseline)
    if rebuilt is not None:
        print(directory / "results.json")
    for name in ("junit.xml", "summary.md", "index.html"):
        print(directory / name)
    if isinstance(run, dict) and run.get("incomplete"):
        incomplete = terminal_safe(str(run["incomplete"]))
        print(f"fuzzgrad: the run in {directory} is incomplete: {incomplete}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _merge_command(args) -> int:
    """``fuzzgrad report --merge OUT DIR...``: one report from many (shards, hosts)."""
    from fuzzgrad.nightly.recorder import render_reports
    from fuzzgrad.report.common import redact
    from fuzzgrad.report.merge import merge_reports

    out, *dirs = args.merge
    if args.dir is not None or not dirs:
        raise FuzzgradError(
            "fuzzgrad: write report --merge OUT DIR [DIR...]: the merged report's folder, then "
            "the reports to merge"
        )
    folders = [report_folder(d) for d in dirs]
    for folder in folders:
        refuse_live(folder, "merge")
    if out.exists() and not out.is_dir():
        raise FuzzgradError(f"fuzzgrad: --merge OUT {str(out)!r} is a file; give a folder")
    if any(out.resolve() == f.resolve() for f in folders):
        raise FuzzgradError(f"fuzzgrad: --merge OUT {str(out)!r} is one of the reports to merge")
    baseline = None if args.baseline is None else report_folder(args.baseline)
    argv = [redact(a) for a in ["fuzzgrad", *getattr(args, "argv", [])]]
    document = merge_reports(out, folders, argv=argv)
    render_reports(out, baseline)
    for name in ("results.json", "junit.xml", "summary.md", "index.html"):
        print(out / name)
    counts: dict[str, int] = {}
    for record in document["targets"]:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    print(f"{len(document['targets'])} targets from {len(folders)} reports: {summary}")
    unexpected = any(r["status"] not in ("passed", "xfailed") for r in document["targets"])
    return EXIT_FAILED if unexpected or document["run"].get("incomplete") else EXIT_OK


def _same_targets(paths, old, new) -> None:
    """Refuse to diff runs of different target sets: a target only the old run fuzzed would
    read as not re-run, one only the new run fuzzed as all new (another shard, another -k)."""
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


def report_folder(path: Path) -> Path:
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
