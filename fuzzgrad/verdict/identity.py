"""What makes two failures one finding: the identity of a failure.

One finding is one bug. Failures that differ in kind are separate findings, each shrunk on its
own, with its own signature and reproducer; the same root cause under several properties is one
finding listed with each property it breaks. A failure's identity is made of:

- its **root**: for an exception the Function (or its backward, or a transform of it) raised,
  the exception's type and raising site (the innermost frame of the user's code: file and
  function), whichever property met it; otherwise the property and the output or gradient path
  that is wrong (``grad[input=1]``, ``output[0]``, ``jvp[output=0]``), and whether the wrong value
  is non-finite;
- the **classes of its non-tensor arguments**: ``dim<0`` against ``dim>=0`` (`fuzzgrad.dim`),
  ``k==n`` against ``k<n`` (a bounded `fuzzgrad.size`), the value of a string, bool or None drawn
  by a strategy entry (``mode='reflect'``), the sign of a number;
- while searching, its **dtype** (a float16-only bug and a float64 one on the same path are two
  candidates); after shrinking, the structural **diagnosis factors** that matter replace it
  (`IDENTITY_FACTORS`: a layout, the dtype, the device, a requires_grad subset, unused outputs),
  and an argument's class that the diagnosis shows plays no part is dropped, so two candidates
  of one bug found in two dtypes (or for two values of an argument that plays no part) end as
  one finding.

`search_key` is the identity a run uses while exploring and shrinking (a shrink keeps it: it
never wanders from one finding into another); `final_kind` is the text of a shrunk, diagnosed
finding's identity, from which `fuzzgrad.report.common.failure_signature` makes the signature.
"""

from __future__ import annotations

import math
import os
import re
import sysconfig
import traceback
from typing import Any

import torch

#: Folders whose frames are never a raising site: fuzzgrad's own and its dependencies'.
_LIBRARY_DIRS: tuple[str, ...] | None = None
#: A path label inside a message (``grad[input=1]``, ``output[0]``, ``jacrev[output=0, input=1]``).
_PATH = re.compile(r"\b[a-z_]+\[[a-z_]+=?\d+(?:, [a-z_]+=\d+)?\]")


#: fuzzgrad's own package folder (this module is in ``fuzzgrad/verdict/``).
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _library_dirs() -> tuple[str, ...]:
    """Folders of the libraries a raising site is never in (found without importing any)."""
    global _LIBRARY_DIRS
    if _LIBRARY_DIRS is None:
        import importlib.util

        dirs = [_PACKAGE]
        for name in ("torch", "hypothesis", "numpy", "jax", "jaxlib"):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin:
                dirs.append(os.path.dirname(spec.origin))
        dirs += [os.path.realpath(d) for d in dirs]
        stdlib = sysconfig.get_paths().get("stdlib")
        if stdlib:
            dirs.append(stdlib)
        _LIBRARY_DIRS = tuple(os.path.join(d, "") for d in dirs if d)
    return _LIBRARY_DIRS


def _fuzzgrad_dirs() -> tuple[str, ...]:
    root = os.path.dirname(os.path.realpath(_PACKAGE))
    return tuple(
        os.path.join(d, "")
        for d in (_PACKAGE, os.path.realpath(_PACKAGE), os.path.join(root, "strategies"))
    )


def _frames(exc: BaseException):
    """(frame, owner) along ``exc``'s traceback: owner ``"user"`` (the user's code, fuzzgrad's
    built-in targets and test corpus included), ``"fuzzgrad"`` or ``"library"``."""
    libraries = _library_dirs()
    ours = _fuzzgrad_dirs()
    for frame in traceback.extract_tb(exc.__traceback__):
        path = frame.filename
        real = os.path.realpath(path) if os.path.isabs(path) else path
        if _is_user_target(real):
            owner = "user"
        elif any(p.startswith(d) for p in (path, real) for d in ours):
            owner = "fuzzgrad"
        elif any(p.startswith(d) for p in (path, real) for d in libraries):
            known = "site-packages" not in real or _in_known_package(real, libraries)
            owner = "library" if known else "user"
        else:  # the user's files, and exec'd code (a registration's lambda, a reproducer)
            owner = "user"
        yield frame, owner


def raised_by_user(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` outside torch and the other libraries is the
    user's code (the Function, a reference) rather than fuzzgrad's own."""
    last = None
    for _, owner in _frames(exc):
        if owner != "library":
            last = owner
    return last == "user"


def raising_site(exc: BaseException) -> str:
    """``Type in file.py:function`` at the innermost frame of the user's code in ``exc``'s
    traceback; where none is (torch's autograd engine raised about what a backward returned),
    the type and the first line of the message with its numbers blanked."""
    site = None
    for frame, owner in _frames(exc):
        if owner == "user":
            site = f"{os.path.basename(frame.filename)}:{frame.name}"
    name = type(exc).__name__
    if site is not None:
        return f"{name} in {site}"
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{name}: {re.sub(r'[0-9]+', '#', text)[:80]}"


def _in_known_package(path: str, libraries: tuple[str, ...]) -> bool:
    """Whether ``path`` is inside one of the library folders other than the standard library's
    (a site-packages folder under the standard library's holds users' libraries too)."""
    return any(path.startswith(d) and "site-packages" in d for d in libraries)


def _is_user_target(path: str) -> bool:
    """fuzzgrad's built-in targets and test corpus are user code for this purpose."""
    parts = path.replace(os.sep, "/")
    return "/targets/" in parts or "/tests/corpus/" in parts or "/examples/" in parts


#: Properties whose failures are one finding whatever path they show at: a wrong reference
#: (``reference_disagreement``) is one bug of the registration, in outputs and gradients alike.
PATHLESS = frozenset({"reference_disagreement"})


def root_of(failure) -> str:
    """The root of a `PropertyFailure` (see the module docstring)."""
    cause = getattr(failure, "cause", None)
    if cause is not None:
        return f"raises {raising_site(cause)}"
    if failure.property in PATHLESS:
        return failure.property
    mismatch = getattr(failure, "mismatch", None)
    path = getattr(mismatch, "path", None)
    if path is None:
        found = _PATH.search(getattr(failure, "message", "") or "")
        path = found.group(0) if found else ""
    value = getattr(mismatch, "actual", None)
    nonfinite = isinstance(value, float) and not math.isfinite(value)
    follows = FROM_BACKWARD if getattr(failure, "follows_backward", False) else ""
    parts = (failure.property, path, "non-finite" if nonfinite else "", follows)
    return " ".join(p for p in parts if p)


def argument_classes(target, case) -> tuple[tuple[int, str], ...]:
    """(argument index, class) for each non-tensor argument that has a class (see the module
    docstring): `fuzzgrad.dim`, bounded `fuzzgrad.size` and strategy entries of an ``inputs=``
    list. A whole-tuple ``inputs=`` strategy gives none (nothing tells its arguments apart)."""
    specs = target.inputs if isinstance(target.inputs, tuple) else None
    if specs is None or len(specs) != len(case.args):
        return ()
    from fuzzgrad.registry.target import argument_names

    names = argument_names(target, len(case.args))
    out = []
    sizes = None
    for i, (spec, value) in enumerate(zip(specs, case.args)):
        kind = getattr(spec, "kind", None)
        name = names[i]
        if kind == "dim" and isinstance(value, int):
            out.append((i, f"{name}<0" if value < 0 else f"{name}>=0"))
        elif kind == "size" and spec.bounds and isinstance(value, int):
            if sizes is None:
                sizes = named_sizes(target, case)
            out.append((i, _size_class(spec, value, sizes)))
        elif kind == "strategy":
            klass = value_class(value)
            if klass is not None:
                out.append((i, f"{name}{klass}"))
    return tuple(out)


def value_class(value: Any) -> str | None:
    """A plain value's class, as a suffix of its argument's name: ``='reflect'``, ``=True``,
    ``<0``, ``==0``, ``>0``, ``=None``; None for what has no useful class (tensors, objects)."""
    if value is None or isinstance(value, bool):
        return f"={value!r}"
    if isinstance(value, str):
        return f"={value!r}" if len(value) <= 24 else ":str"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "=nan"
        return "<0" if value < 0 else "==0" if value == 0 else ">0"
    if isinstance(value, (tuple, list)) and not any(isinstance(v, torch.Tensor) for v in value):
        return f":{type(value).__name__} of {len(value)}"
    return None


def _size_class(spec, value: int, sizes: dict[str, int]) -> str:
    parts = []
    for bound in spec.bounds:
        rhs = sizes.get(bound.value) if isinstance(bound.value, str) else bound.value
        if rhs is None:
            continue
        rhs += bound.offset
        text = str(bound.value) + (f"{bound.offset:+d}" if bound.offset else "")
        if value == rhs:
            parts.append(f"{spec.name}=={text}")
        else:
            parts.append(f"{spec.name}{'<' if bound.upper else '>'}{text}")
    return ",".join(parts) or spec.name


def named_sizes(target, case) -> dict[str, int]:
    """The size of each name in ``case`` (its tensors' dims and `fuzzgrad.size` arguments)."""
    try:
        from fuzzgrad.strategies._contract import named_sizes as sizes_of

        return sizes_of(target, case)
    except Exception:  # noqa: BLE001 - a case its spec cannot match: no relations known
        return {}


def dtype_name(case) -> str:
    return str(case.dtype).replace("torch.", "") if case.dtype is not None else ""


def search_key(target, failure, case) -> tuple:
    """The identity of a failure while exploring and shrinking: its root, the classes of its
    non-tensor arguments and (for a wrong value) the case's dtype."""
    root = root_of(failure)
    classes = tuple(c for _, c in argument_classes(target, case))
    dtype = "" if root.startswith("raises ") else dtype_name(case)
    return (root, classes, dtype)


#: Diagnosis factors that are part of a finding's identity: the structure of the call (layouts,
#: dtype, device, requires_grad subset, unused outputs). Value factors (signs, zeros, edge
#: values) are not: which of them a shrunk case happens to need varies from shrink to shrink.
IDENTITY_FACTORS = frozenset(
    {
        "layout",
        "conj_view",
        "cotangent_layout",
        "unused_outputs",
        "dtype",
        "device",
        "requires_grad",
    }
)


def final_kind(root: str, classes: list[str], factors: list[str]) -> str:
    """The text of a shrunk, diagnosed finding's identity: its root, then the argument classes
    and the structural factors (`IDENTITY_FACTORS`) its diagnosis found it needs."""
    parts = [root]
    parts += sorted(classes)
    parts += [f"needs {f}" for f in sorted(set(factors) & IDENTITY_FACTORS)]
    return " | ".join(parts)


#: The mark of a second-order failure whose double backward is the derivative of the Function's
#: own wrong backward (`fuzzgrad.properties.second_order`): the backward's finding, not its own.
FROM_BACKWARD = "from the backward"


def folds_into(kind: str | None, general: str | None) -> bool:
    """Whether the finding ``kind`` is the finding ``general`` seen in a narrower dtype: both a
    NaN or inf at the same output or gradient of the same property, with the same argument
    classes and factors, where ``kind`` also needs a dtype and ``general`` fails in every
    dtype. An overflow that float64 reaches at 710 reaches float32 at 89 and float16 at 12:
    one bug, whose float32 and float16 shrinks need their own dtype only because their own
    range is the smaller. A finite wrong value in one dtype stays a finding of its own, as does
    an exception. And a second-order failure marked `FROM_BACKWARD` folds into a finding of a
    wrong backward (``vjp``): the double backward is right about a wrong backward."""
    if not kind or not general or kind == general:
        return False
    root = kind.split(" | ", 1)[0]
    if root.endswith(FROM_BACKWARD):  # the wrong backward's own finding shows it
        return general.startswith("vjp ") and not general.startswith("vjp raises")
    return (
        root.endswith(" non-finite")
        and not root.startswith("raises ")
        and " | needs dtype" in kind
        and kind.replace(" | needs dtype", "", 1) == general
    )


def kind_has(kind: str | None, parts: str) -> bool:
    """Whether the identity ``kind`` has every part of ``parts`` (a kind's text, or a piece of
    one: ``"vjp grad[input=0] | dim<0"``), whatever their order (argument classes split at
    commas)."""

    def atoms(text: str) -> set[str]:
        return {a.strip() for part in text.split(" | ") for a in part.split(",")}

    return bool(kind) and atoms(parts) <= atoms(str(kind))


__all__ = [
    "argument_classes",
    "folds_into",
    "kind_has",
    "final_kind",
    "named_sizes",
    "raising_site",
    "root_of",
    "search_key",
    "value_class",
]
