"""``fuzzgrad repro``: replay a reproducer (a file, or a failure id looked up in a report), or
write it as a regression test that runs in any clone of the project (``--pytest``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fuzzgrad.integrations.runs import EXIT_OK, report_folder


def repro_command(args) -> int:
    """``fuzzgrad repro FILE_OR_ID [--pytest [-o FILE_OR_FOLDER]]``."""
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
    return subprocess.call([sys.executable, str(path), "--runs", str(args.runs)])


def _is_path(text: str) -> bool:
    """Whether ``fuzzgrad repro`` was given a file (``*.py`` or a path), not a failure id."""
    return text.endswith(".py") or any(sep and sep in text for sep in (os.sep, os.altsep))


def _find_reproducer(failure_id: str, report: Path) -> Path:
    """The reproducer of a failure in a report, by signature (or a prefix) or target name."""
    from fuzzgrad.errors import ReproducerError
    from fuzzgrad.report.common import failure_signature
    from fuzzgrad.report.events import recover
    from fuzzgrad.report.results import load_results

    folder = report_folder(report)
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
