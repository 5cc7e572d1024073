"""Finding targets: a module name, a ``.py`` file, or a folder of them."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import zlib
from pathlib import Path
from types import ModuleType

from fuzzgrad.errors import FuzzgradError, InvalidRegistration, TargetImportError, TargetNotFound
from fuzzgrad.registry.target import BY_PATH_PREFIX, MODULE_ATTR, Target, where

BUILTIN = "fuzzgrad.targets"


def _import_path(path: Path) -> list[ModuleType]:
    path = path.resolve()
    if path.is_dir():
        if (path / "__init__.py").exists():
            package = _import_file(path / "__init__.py", _module_name(path), package=True)
            return [package, *_walk(package)]
        modules: list[ModuleType] = []
        for file in sorted(path.rglob("*.py")):
            if file.name.startswith(("_", "test_", "conftest")):
                continue
            modules.append(_import_file(file, _module_name(file)))
        return modules
    return [_import_file(path, _module_name(path))]


def _module_name(path: Path) -> str:
    """A stable module name for a file, so reproducers can import it again by path."""
    stem = path.stem if path.suffix == ".py" else path.name
    digest = zlib.crc32(str(path.parent).encode())  # stable across processes, unique per folder
    return f"{BY_PATH_PREFIX}{stem}_{digest}"


def _import_file(file: Path, name: str, package: bool = False) -> ModuleType:
    for existing in list(sys.modules.values()):
        if getattr(existing, "__file__", None) == str(file):
            return existing
    spec = importlib.util.spec_from_file_location(
        name, file, submodule_search_locations=[str(file.parent)] if package else None
    )
    if spec is None or spec.loader is None:
        raise TargetNotFound(f"fuzzgrad: cannot import {file}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(file.parent if not package else file.parent.parent))
    try:
        spec.loader.exec_module(module)
    except FuzzgradError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_error(str(file), exc) from exc
    finally:
        sys.path.pop(0)
    return module


#: Frames of a failed import shown to the user (the last ones: where the module failed).
IMPORT_FRAMES = 4


def _import_error(what: str, exc: BaseException) -> TargetImportError:
    """`TargetImportError` naming the module or file, the exception and its last frames (those
    inside importlib's machinery left out)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in f.filename and "fuzzgrad/registry/discovery" not in f.filename
    ][-IMPORT_FRAMES:]
    where = "".join(traceback.format_list(frames)).rstrip()
    return TargetImportError(
        f"fuzzgrad: importing {what} raised {type(exc).__name__}: {exc}"
        + (f"\n{where}" if where else "")
        + "\nFix the module (or install what it needs) and run again."
    )


def _walk(package: ModuleType, errors: list[str] | None = None) -> list[ModuleType]:
    """The package's public submodules, imported; with ``errors``, a submodule that fails to
    import is noted there (the message) instead of raising."""
    modules = []
    for info in pkgutil.walk_packages(
        package.__path__,
        package.__name__ + ".",
        onerror=errors.append if errors is not None else None,
    ):
        if info.name.rsplit(".", 1)[-1].startswith(("_", "test_")):
            continue
        try:
            modules.append(_import_module(info.name))
        except TargetImportError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return modules


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except FuzzgradError:
        raise
    except Exception as exc:
        raise _import_error(name, exc) from exc


def import_targets(spec: str) -> list[ModuleType]:
    """Import what ``spec`` names (module, file or folder) and return the modules imported."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_dir() or path.is_file():
        if not path.exists():
            raise TargetNotFound(f"fuzzgrad: no such file or folder: {spec!r}.")
        return _import_path(path)
    module = _import_top(spec)
    if hasattr(module, "__path__"):
        return [module, *_walk(module)]
    return [module]


def _import_top(spec: str) -> ModuleType:
    """The module named ``spec`` (not its submodules), imported."""
    try:
        module = importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name and spec.startswith(exc.name):
            raise TargetNotFound(
                f"fuzzgrad: {spec!r} is neither a module on sys.path nor an existing file or "
                "folder. Pass a module name (my_pkg.grads), a .py file or a folder."
            ) from None
        raise _import_error(spec, exc) from exc
    except FuzzgradError:
        raise
    except Exception as exc:
        raise _import_error(spec, exc) from exc
    return module


def import_tolerantly(spec: str) -> tuple[list[ModuleType], list[str]]:
    """Like `import_targets`, but a module of a package or folder that fails to import is
    skipped and its message returned beside the modules that did import (a scan reports a
    broken module and goes on). A spec that names nothing still raises `TargetNotFound`."""
    errors: list[str] = []
    path = Path(spec)
    if spec.endswith(".py") or path.is_dir() or path.is_file():
        if not path.exists():
            raise TargetNotFound(f"fuzzgrad: no such file or folder: {spec!r}.")
        path = path.resolve()
        if path.is_dir() and not (path / "__init__.py").exists():
            modules = []
            for file in sorted(path.rglob("*.py")):
                if not file.name.startswith(("_", "test_", "conftest")):
                    try:
                        modules.append(_import_file(file, _module_name(file)))
                    except TargetImportError as exc:
                        errors.append(str(exc))
            return modules, errors
        try:
            top = (
                _import_path(path)
                if path.is_file()
                else [_import_file(path / "__init__.py", _module_name(path), package=True)]
            )
        except TargetImportError as exc:
            return [], [str(exc)]
    else:
        try:
            top = [_import_top(spec)]
        except TargetImportError as exc:
            return [], [str(exc)]
    if hasattr(top[0], "__path__"):
        return [top[0], *_walk(top[0], errors)], errors
    return top, errors


def load_targets(specs: list[str] | None = None, names: list[str] | None = None) -> list[Target]:
    """The targets that the given modules, files or folders register (default: the built-ins).

    ``names``, when given, keeps only those targets (an unknown name is an error that lists the
    known ones).
    """
    found: dict[str, Target] = {}
    for spec in specs or [BUILTIN]:
        for module in import_targets(spec):
            for name, target in getattr(module, MODULE_ATTR, {}).items():
                other = found.setdefault(name, target)
                if other is not target and other.module != target.module:
                    raise InvalidRegistration(
                        f"fuzzgrad: two targets are named {name!r}: {where(other)} and "
                        f"{where(target)}. Pass name='...' to one of the register() calls."
                    )
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise TargetNotFound(
                f"fuzzgrad: no target named {', '.join(map(repr, missing))}; known targets: "
                f"{', '.join(sorted(found)) or '(none)'}."
            )
        return [found[n] for n in names]
    return list(found.values())
