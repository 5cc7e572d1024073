"""``results.json``: the versioned, sorted-key record of a run (see DESIGN.md)."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any

FORMAT = "fuzzgrad-results"
FORMAT_VERSION = 1


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_info(**extra: Any) -> dict[str, Any]:
    import torch

    from fuzzgrad import __version__

    try:
        import jax

        jax_version = jax.__version__
    except ImportError:  # pragma: no cover
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
    from fuzzgrad import __version__

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
