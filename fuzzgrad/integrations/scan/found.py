"""The custom Functions a package defines, and which of them are registered."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from fuzzgrad.registry.target import _BY_PATH


@dataclass(frozen=True)
class Found:
    """One ``torch.autograd.Function`` subclass, or one ``torch.library.custom_op`` with an
    autograd formula, defined (not merely imported) in a module."""

    cls: Any  # the Function class, or what ``@torch.library.custom_op`` returned
    module: str  # its module's import name (``fuzzgrad_user_...`` for a file imported by path)
    spec: str  # the scan argument (module name or absolute path) whose import reaches it
    #: Where the module holds it (a custom op: the name it was bound to); default: its class's.
    attribute: str = ""

    @property
    def qualname(self) -> str:
        return self.attribute or str(self.cls.__qualname__)

    @property
    def name(self) -> str:
        """``module.Class`` as people read it: a file imported by path is named by its stem."""
        head, _, rest = self.module.partition(".")
        match = _BY_PATH.fullmatch(head)
        shown = ".".join(p for p in (match.group(1) if match else head, rest) if p)
        return f"{shown}.{self.qualname}"


@dataclass
class Coverage:
    """What a scan found: the Functions, which are registered, and the imports that failed."""

    functions: list[Found] = field(default_factory=list)
    registered: set[str] = field(default_factory=set)  # names (`Found.name`) of registered ones
    import_errors: list[str] = field(default_factory=list)

    @property
    def unregistered(self) -> list[Found]:
        return [f for f in self.functions if f.name not in self.registered]

    def line(self) -> str:
        """``12 custom Functions, 9 registered; not registered: a.Foo, b.Bar``."""
        n, missing = len(self.functions), [f.name for f in self.unregistered]
        text = f"{n} custom Function{'s' * (n != 1)}, {n - len(missing)} registered"
        return text + (f"; not registered: {', '.join(missing)}" if missing else "")


def is_custom_function(obj: Any) -> bool:
    """A subclass of ``torch.autograd.Function`` with a forward of its own (not torch's base
    classes, nor an abstract base that leaves forward undefined)."""
    import torch

    if not (isinstance(obj, type) and issubclass(obj, torch.autograd.Function)):
        return False
    if obj.__module__.startswith("torch."):
        return False
    return any("forward" in vars(k) for k in obj.__mro__ if not k.__module__.startswith("torch"))


def is_custom_op_with_backward(obj: Any) -> bool:
    """What ``@torch.library.custom_op`` returns, with ``register_autograd`` called on it: a
    hand-written backward, as a Function's is."""
    from fuzzgrad.registry.target import custom_op_has_backward, custom_op_impl

    return (
        type(obj).__name__ == "CustomOpDef"
        and custom_op_impl(obj) is not None
        and custom_op_has_backward(obj)
    )


def functions_in(module: ModuleType, spec: str) -> list[Found]:
    """The custom Functions and custom operators with a backward that ``module`` defines at
    its top level, in source order."""
    from fuzzgrad.registry.target import custom_op_impl

    out = []
    for attribute, obj in vars(module).items():
        if is_custom_function(obj) and obj.__module__ == module.__name__:
            out.append(Found(obj, module.__name__, spec))
        elif is_custom_op_with_backward(obj):
            impl = custom_op_impl(obj)
            if getattr(impl, "__module__", None) == module.__name__:
                out.append(Found(obj, module.__name__, spec, attribute))
    return sorted(out, key=_line)


def identity(obj: Any) -> Any:
    """What a registration and a scan both call a Function or custom operator by: the class,
    or the operator's qualified name (a registration holds its overload, the scan what the
    decorator returned)."""
    from fuzzgrad.registry.target import custom_op_impl

    impl = custom_op_impl(obj)
    return id(obj) if impl is None else _op_key(impl)


def _op_key(impl: Any) -> tuple[str, str, str]:
    """A custom operator's identity: its Python function's module and qualified name."""
    return ("op", getattr(impl, "__module__", ""), impl.__qualname__)


def _targets_ids(targets: list[Any]) -> set[Any]:
    out: set[Any] = set()
    for t in targets:
        if t.autograd_function is not None:
            out.add(id(t.autograd_function))
        elif t.own_math is not None:
            out.add(_op_key(t.own_math))
    return out


def _line(found: Found) -> int:
    from fuzzgrad.registry.target import custom_op_impl

    try:
        return inspect.getsourcelines(custom_op_impl(found.cls) or found.cls)[1]
    except (OSError, TypeError):
        return 0


def scan_modules(specs: list[str]) -> Coverage:
    """Import each spec (a failing module is noted, not fatal) and collect its Functions, then
    mark those a registration covers: an ``fg.register`` anywhere in the imported code, or a
    ``[tool.fuzzgrad]`` target of the project."""
    from fuzzgrad.registry.discovery import import_tolerantly

    coverage = Coverage()
    seen: set[int] = set()
    for spec in specs:
        modules, errors = import_tolerantly(spec)
        coverage.import_errors += errors
        for module in modules:
            for found in functions_in(module, spec):
                if id(found.cls) not in seen:
                    seen.add(id(found.cls))
                    coverage.functions.append(found)
    covered = registered_functions(coverage.import_errors)
    coverage.registered = {f.name for f in coverage.functions if identity(f.cls) in covered}
    return coverage


def registered_functions(errors: list[str]) -> set[Any]:
    """Identities (`identity`) of the Functions and custom operators registered targets call
    (a target's Function, the one its callable wraps, or its custom operator): those
    registered in this process, and the project's configured targets (an import that fails
    there is noted in ``errors``)."""
    from fuzzgrad.errors import FuzzgradError
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.registry.project import configured_targets, find_pyproject
    from fuzzgrad.registry.target import registered

    targets = list(registered().values())
    pyproject = find_pyproject(declaring=True)
    configured = configured_targets(pyproject) if pyproject is not None else None
    if configured is not None:
        try:
            targets += load_targets(list(configured.specs))
        except FuzzgradError as exc:
            errors.append(str(exc))
    return _targets_ids(targets)


def scanned(spec: str, module: str, qualname: str) -> Any:
    """The Function ``qualname`` of ``module``, imported as the scan imported it (by module name
    or by path): what the registrations a scan writes call."""
    import sys

    from fuzzgrad.registry.discovery import import_tolerantly

    if module not in sys.modules:
        import_tolerantly(spec)
    obj: Any = sys.modules[module]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def registration_coverage(targets: list[Any]) -> Coverage:
    """Registration coverage of a ``fuzzgrad fuzz`` run: the custom Functions defined in the
    modules that register its targets and in those that define the targets' Functions, and
    which of them a target calls (nothing is imported: these modules are loaded already)."""
    import sys

    modules: dict[str, ModuleType] = {}
    for t in targets:
        fn = t.autograd_function or t.own_math
        for name in (t.module, getattr(fn, "__module__", None)):
            module = sys.modules.get(name) if name else None
            if module is not None:
                modules.setdefault(module.__name__, module)
    coverage = Coverage()
    seen: set[int] = set()
    for module in modules.values():
        for found in functions_in(module, module.__name__):
            if id(found.cls) not in seen:
                seen.add(id(found.cls))
                coverage.functions.append(found)
    covered = _targets_ids(targets)
    coverage.registered = {f.name for f in coverage.functions if identity(f.cls) in covered}
    return coverage
