"""The user's project: its root folder, its ``[tool.fuzzgrad]`` settings, and how names are shown.

The project is the folder of the nearest ``pyproject.toml`` at or above the current folder (else
the current folder itself). Names shown to people are a module's import name, or, for a file
fuzzgrad imported by path, the file's path relative to the project: never the digest-bearing
import name `fuzzgrad.registry.discovery` gives such files.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzgrad.errors import FuzzgradError, TargetNotFound

PYPROJECT = "pyproject.toml"


class ConfigError(FuzzgradError, ValueError):
    """``[tool.fuzzgrad]`` in a pyproject.toml is unreadable or malformed."""


def find_pyproject(start: Path | None = None, *, declaring: bool = False) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` (default: the current folder); with
    ``declaring``, the nearest one that has a ``[tool.fuzzgrad]`` table (its project is then
    fuzzgrad's, and never falls back to the built-in targets)."""
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.parents):
        path = folder / PYPROJECT
        if path.is_file() and (not declaring or fuzzgrad_table(path) is not None):
            return path
    return None


def project_root(start: Path | None = None) -> Path:
    """The folder of the nearest pyproject.toml at or above ``start``, else ``start`` (default:
    the current folder), absolute."""
    here = (Path.cwd() if start is None else Path(start)).resolve()
    found = find_pyproject(here)
    return found.parent if found is not None else here


def fuzzgrad_table(path: Path) -> dict[str, Any] | None:
    """The ``[tool.fuzzgrad]`` table of a pyproject.toml (None when it has none)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConfigError(f"fuzzgrad: cannot read {path}: {reason}; fix the file.") from None
    tool = data.get("tool")
    table = tool.get("fuzzgrad") if isinstance(tool, dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"fuzzgrad: tool.fuzzgrad in {path} must be a table; fix the file.")
    _check_keys(table, path)
    return table


# The keys ``[tool.fuzzgrad]`` may hold, with the types their values may have (``targets`` is
# checked, with an example of its form, by `configured_targets`).
KEYS: dict[str, tuple[type, ...]] = {"targets": (object,), "profile": (str,)}


def _check_keys(table: dict[str, Any], path: Path) -> None:
    """An unknown key (a typo such as ``target`` or ``tragets``) or a value of the wrong type is
    an error naming the key, so that a misspelt setting is never silently ignored."""
    for key, value in table.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"fuzzgrad: unknown key {key!r} in [tool.fuzzgrad] of {path}; {hint}"
                f"the known keys are {', '.join(KEYS)}."
            )
        if not isinstance(value, KEYS[key]):
            raise ConfigError(
                f"fuzzgrad: [tool.fuzzgrad] {key} in {path} must be a string, got "
                f"{type(value).__name__} {value!r}."
            )


@dataclass(frozen=True)
class Configured:
    """The targets a pyproject.toml declares, resolved: paths made absolute against its folder,
    module names left as they are (importable once `root` is on ``sys.path``)."""

    specs: tuple[str, ...]
    pyproject: Path

    @property
    def root(self) -> Path:
        return self.pyproject.parent


def configured_targets(path: Path) -> Configured | None:
    """What ``[tool.fuzzgrad] targets`` in ``path`` names (None when it names nothing), checked
    now: an entry that is neither a file or folder next to the pyproject.toml nor an importable
    module is a `TargetNotFound` naming the entry and the file."""
    table = fuzzgrad_table(path) or {}
    if "targets" not in table:
        return None
    targets = table["targets"]
    if isinstance(targets, str):
        targets = [targets]
    where = f"[tool.fuzzgrad] targets in {path}"
    if not isinstance(targets, list) or not all(isinstance(t, str) and t.strip() for t in targets):
        raise ConfigError(
            f"fuzzgrad: {where} must be a list of module names, files or folders, e.g. "
            f'targets = ["mypkg.ops", "tests/targets"]; got {targets!r}.'
        )
    if not targets:
        raise ConfigError(
            f"fuzzgrad: {where} is empty; name the modules, files or folders that register "
            "targets, or remove the key to fuzz fuzzgrad's built-in targets."
        )
    root = path.parent.resolve()
    with on_sys_path(root):
        specs = tuple(_resolve_entry(t.strip(), root, where) for t in targets)
    return Configured(specs, path.resolve())


def _resolve_entry(entry: str, root: Path, where: str) -> str:
    candidate = root / entry
    if candidate.exists():
        return str(candidate)
    if _looks_like_path(entry) or not _importable(entry):
        raise TargetNotFound(
            f"fuzzgrad: {where} names {entry!r}, which is neither a file or folder in "
            f"{root} nor an importable module; fix or remove the entry."
        )
    return entry


def _looks_like_path(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def _importable(name: str) -> bool:
    """Whether a module name can be found (finding ``a.b`` imports ``a``: its errors say so
    later, when the target modules are imported for real)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - the parent package raised: it exists; report it on import
        return True


class on_sys_path:  # noqa: N801 - used like a function
    """Put ``folder`` at the front of ``sys.path`` (if it is not there already) for a ``with``
    block, or for good with `add`."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)
        self.added = False

    def add(self) -> str | None:
        """Add the folder for good; return it when it was added (not already there)."""
        current = {os.path.abspath(p or os.curdir) for p in sys.path}
        if os.path.abspath(self.folder) in current:
            return None
        sys.path.insert(0, self.folder)
        self.added = True
        importlib.invalidate_caches()
        return self.folder

    def __enter__(self) -> on_sys_path:
        self.add()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.added and self.folder in sys.path:
            sys.path.remove(self.folder)


def shown_path(file: str | os.PathLike[str], root: Path | None = None) -> str:
    """``file`` as shown to people: relative to the project root (``root``, default
    `project_root`), else to the current folder, in ``/`` form; absolute where it is in neither."""
    path = Path(file).resolve()
    for base in (root or project_root(), Path.cwd().resolve()):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.as_posix()
