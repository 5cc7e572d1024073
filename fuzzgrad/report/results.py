"""``results.json``: the versioned, sorted-key record of a run (see DESIGN.md)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from fuzzgrad.errors import ReproducerError

FORMAT = "fuzzgrad-results"
#: The version of the results format written (and the newest `load_results` reads).
FORMAT_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_info(**extra: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from fuzzgrad._version import __version__

    try:  # not `import jax`: seconds of a nightly budget, for a version string
        jax_version = version("jax")
    except PackageNotFoundError:  # pragma: no cover
        jax_version = None
    return {
        "started": now(),
        "torch_version": torch.__version__,
        "jax_version": jax_version,
        "hostname": platform.node(),
        "fuzzgrad_version": __version__,
        **extra,
    }


def results_document(run: dict[str, Any], targets: list[dict[str, Any]]) -> dict[str, Any]:
    from fuzzgrad._version import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fuzzgrad_version": __version__,
        "run": run,
        "targets": targets,
    }


def write_results(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


class ResultsFormatError(ReproducerError):
    """A ``results.json`` is missing, unreadable, or not in a format this fuzzgrad understands."""


def load_results(path_or_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run's results, from a ``results.json`` path or its report directory.

    Validation is shallow on purpose (format tag, version, the shape of ``targets``) so that
    renderers can rely on the structure while tolerating missing optional fields.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise ResultsFormatError(
            f"no results file at {str(path)!r}; pass a results.json path or the report directory "
            "that a `fuzzgrad fuzz` run wrote"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFormatError(f"cannot read {str(path)!r} as JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ResultsFormatError(
            f"{str(path)!r} is not a fuzzgrad results file (format={found!r}, expected {FORMAT!r})"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsFormatError(f"{str(path)!r} has no integer format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise ResultsFormatError(
            f"{str(path)!r} has format_version {version}, but this fuzzgrad reads versions up to "
            f"{FORMAT_VERSION}; upgrade fuzzgrad to render it"
        )
    if version < 1:
        raise ResultsFormatError(f"{str(path)!r} has invalid format_version {version}")
    targets = data.get("targets")
    if not isinstance(targets, list):
        raise ResultsFormatError(f"{str(path)!r}: 'targets' must be a list, got {targets!r:.60}")
    for i, record in enumerate(targets):
        if not isinstance(record, dict) or not isinstance(record.get("name"), str):
            raise ResultsFormatError(f"{str(path)!r}: targets[{i}] has no string 'name'")
        if not isinstance(record.get("status"), str):
            raise ResultsFormatError(
                f"{str(path)!r}: target {record['name']!r} has no string 'status'"
            )
    return data
