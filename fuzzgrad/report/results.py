"""``results.json``: the versioned, sorted-key record of a run (see DESIGN.md)."""

from __future__ import annotations

import datetime as _dt
import functools
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
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    from fuzzgrad.report.common import redact, write_atomically

    # No credential reaches the file, wherever it came from (a database URL in a message).
    write_atomically(path, redact(json.dumps(document, indent=1, sort_keys=True, default=str)))


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
    problem = schema_problem(data)
    if problem is not None:
        raise ResultsFormatError(f"{str(path)!r} is malformed: {problem}")
    return data


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of ``results.json`` (``fuzzgrad/report/results.schema.json``)."""
    from importlib import resources

    text = resources.files("fuzzgrad.report").joinpath("results.schema.json").read_text("utf-8")
    return json.loads(text)


#: The JSON Schema keywords `schema_problem` understands: all that results.schema.json uses.
SCHEMA_KEYWORDS = frozenset(
    {"$schema", "$id", "$defs", "title", "description"}  # annotations
    | {"type", "properties", "required", "items", "enum", "minimum", "$ref"}
    | {"additionalProperties", "anyOf"}
)


def schema_problem(document: Any) -> str | None:
    """Where ``document`` breaks the results schema, in one line (``targets[2].failures[0].
    inputs[1].shape: expected array, got string 'abc'``), or None.

    A small interpreter of the `SCHEMA_KEYWORDS` the schema uses, so reading a report needs no
    third-party package; the test suite checks that it agrees with the jsonschema package.
    """
    root = schema()
    return _problem(document, root, "", root)


_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}


def _problem(value: Any, rule: Any, where: str, root: dict[str, Any]) -> str | None:
    if rule is True or not isinstance(rule, dict):
        return None
    if "$ref" in rule:  # only local references: "#/$defs/name"
        rule = functools.reduce(lambda node, part: node[part], _ref_parts(rule["$ref"]), root)
    here = where or "the document"
    if "anyOf" in rule:
        problems = [_problem(value, sub, where, root) for sub in rule["anyOf"]]
        if all(problems):
            return problems[0]
    if "enum" in rule and not any(_same(value, e) for e in rule["enum"]):
        return f"{here}: expected one of {', '.join(map(repr, rule['enum']))}, got {_show(value)}"
    if "type" in rule:
        types = rule["type"] if isinstance(rule["type"], list) else [rule["type"]]
        if not any(_JSON_TYPES[t](value) for t in types):
            return f"{here}: expected {' or '.join(types)}, got {_show(value)}"
    if "minimum" in rule and _JSON_TYPES["number"](value) and value < rule["minimum"]:
        return f"{here}: expected at least {rule['minimum']}, got {_show(value)}"
    if isinstance(value, dict):
        for key in rule.get("required", ()):
            if key not in value:
                return f"{here}: {key!r} is missing"
        properties = rule.get("properties", {})
        for key, item in value.items():
            sub = properties.get(key, rule.get("additionalProperties", True))
            if sub is False:
                return f"{here}: unexpected key {key!r}"
            problem = _problem(item, sub, f"{where}.{key}" if where else str(key), root)
            if problem:
                return problem
    if isinstance(value, list) and "items" in rule:
        for i, item in enumerate(value):
            problem = _problem(item, rule["items"], f"{where}[{i}]", root)
            if problem:
                return problem
    return None


def _ref_parts(ref: str) -> list[str]:
    return [part for part in ref.removeprefix("#").split("/") if part]


def _same(value: Any, expected: Any) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return value == expected and isinstance(value, bool) == isinstance(expected, bool)


def _show(value: Any) -> str:
    """A short description of a JSON value for an error message."""
    from fuzzgrad.report.common import terminal_safe

    kind = next((t for t in ("null", "boolean", "integer", "number", "string", "array", "object")
                 if _JSON_TYPES[t](value)), type(value).__name__)  # fmt: skip
    text = repr(value)
    return terminal_safe(f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}", newlines=False)
