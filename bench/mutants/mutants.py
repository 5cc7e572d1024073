"""Mutants of the built-in targets: generated from source, rebuilt as unregistered Targets.

A mutant rewrites one site of a target Function's ``backward`` (or of a module-level helper that
only backward calls, such as attention's ``_backward``). It is rebuilt by executing the mutated
source in a copy of the target module's namespace, so that the module's helpers, constants and
imports are reused, and wrapped with `fuzzgrad.registry.target.make_target` using the original's
references, input spec and options. Nothing is registered globally, and the original target is
untouched. Generation is deterministic: the same sources give the same mutant ids in every
process, so worker processes rebuild mutants from their ids.
"""

from __future__ import annotations

import ast
import difflib
import functools
import inspect
import sys
import textwrap
import types
from dataclasses import dataclass

import torch

from bench.mutants.operators import HALF, MEAN_LEADING, OPERATORS, analyse, mutations


@dataclass(frozen=True)
class Mutant:
    """One planted bug: which target, which operator, which site, and the changed line."""

    id: str  # "SiLU:flip_sign:2"
    target: str
    operator: str
    function: str  # "backward", or the helper's name
    change: str  # "`old line` -> `new line`"
    source: str  # the mutated function's source


def _half(t):
    """Cast a floating tensor to float16 (a mutant's lost precision); anything else as is."""
    return t.half() if isinstance(t, torch.Tensor) and t.is_floating_point() else t


def _mean_leading(t):
    """`fuzzgrad.targets._common.sum_leading` with a mean: the mutant of a per-feature sum."""
    return t.flatten(0, -2).mean(0) if t.dim() > 1 else t


def _function_def(source: str) -> ast.AST:
    return ast.parse(textwrap.dedent(source)).body[0]


def _method(cls_def: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    return next(
        (n for n in cls_def.body if isinstance(n, ast.FunctionDef) and n.name == name), None
    )


def _called_names(func: ast.AST) -> list[str]:
    return [
        n.func.id
        for n in ast.walk(func)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    ]


def _constants(module: types.ModuleType) -> dict[str, float]:
    """The module's numeric constants (``LN_EPS``, ``_GELU_C``): candidates to change."""
    return {
        k: v for k, v in vars(module).items() if type(v) in (int, float) and not k.startswith("__")
    }


def _helpers(module, cls_def: ast.ClassDef, backward: ast.FunctionDef) -> list[str]:
    """Module-level functions that backward calls and forward does not (backward's own code)."""
    others = [n for n in cls_def.body if isinstance(n, ast.FunctionDef) and n is not backward]
    elsewhere = {name for f in others for name in _called_names(f)}
    out = []
    for name in dict.fromkeys(_called_names(backward)):
        fn = getattr(module, name, None)
        if (
            isinstance(fn, types.FunctionType)
            and fn.__module__ == module.__name__
            and name not in elsewhere
        ):
            out.append(name)
    return out


def _grad_params(func: ast.FunctionDef, skip: int) -> list[str]:
    return [a.arg for a in func.args.args[skip:]]


def _helper_grads(backward: ast.FunctionDef, helper: ast.FunctionDef, grads: set[str]) -> set[str]:
    """The helper's parameters that receive backward's grad_output arguments."""
    params = [a.arg for a in helper.args.args]
    out = set()
    for call in ast.walk(backward):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == helper.name:
            for k, arg in enumerate(call.args):
                if isinstance(arg, ast.Name) and arg.id in grads and k < len(params):
                    out.add(params[k])
    return out


def _change(before: str, after: str) -> str:
    old = [line.strip() for line in before.splitlines()]
    new = [line.strip() for line in after.splitlines()]
    removed = [line for line in difflib.ndiff(old, new) if line.startswith("- ")]
    added = [line for line in difflib.ndiff(old, new) if line.startswith("+ ")]
    left = removed[0][2:] if removed else ""
    right = " / ".join(line[2:] for line in added) if added else ""
    return f"`{left}` -> `{right}`" if left else f"(inserted) `{right}`"


def mutants_of(target, operators: list[str] | None = None) -> list[Mutant]:
    """Every distinct mutant of ``target`` by the given operators (default: all of them)."""
    cls = target.function
    if cls is None:
        return []
    module = sys.modules[cls.__module__]
    cls_def = _function_def(inspect.getsource(cls))
    backward = _method(cls_def, "backward")
    if backward is None:
        return []
    constants = _constants(module)
    grads = set(_grad_params(backward, 1))  # backward(ctx, *grad_outputs)
    units = [("backward", backward, analyse(backward, grads, constants))]
    for name in _helpers(module, cls_def, backward):
        helper = _function_def(inspect.getsource(getattr(module, name)))
        units.append(
            (name, helper, analyse(helper, _helper_grads(backward, helper, grads), constants))
        )
    out: list[Mutant] = []
    for op in operators or list(OPERATORS):
        seen: set[str] = set()
        for function, tree, info in units:
            original = ast.unparse(tree)
            for mutated in mutations(tree, op, info):
                text = ast.unparse(mutated)
                if text == original or text in seen:
                    continue
                seen.add(text)
                out.append(
                    Mutant(
                        f"{target.name}:{op}:{len(seen) - 1}",
                        target.name,
                        op,
                        function,
                        _change(original, text),
                        text,
                    )
                )
    return out


def all_mutants(targets, operators: list[str] | None = None) -> list[Mutant]:
    """Mutants of every target that is expected to pass (known-wrong ``xfail`` ones are skipped)."""
    return [m for t in targets if not t.xfail for m in mutants_of(t, operators)]


def build(mutant: Mutant, target):
    """The mutated Function wrapped as an unregistered `fuzzgrad` Target."""
    from fuzzgrad.registry.target import make_target

    cls = target.function
    module = sys.modules[cls.__module__]
    ns = dict(vars(module))
    ns[HALF], ns[MEAN_LEADING] = _half, _mean_leading
    cls_def = _function_def(inspect.getsource(cls))
    cls_def.decorator_list = []  # the class is not registered again
    filename = f"<mutant {mutant.id}>"
    if mutant.function == "backward":
        body = cls_def.body
        k = body.index(_method(cls_def, "backward"))
        new = _function_def(mutant.source)
        new.decorator_list = body[k].decorator_list  # staticmethod, once_differentiable
        body[k] = new
    else:
        exec(compile(mutant.source, filename, "exec"), ns)  # noqa: S102 - our own mutated code
    exec(compile(ast.unparse(cls_def), filename, "exec"), ns)  # noqa: S102
    return make_target(
        ns[cls.__name__],
        reference=target.reference,
        jax_reference=target.jax_reference,
        inputs=target.inputs,
        dtypes=target.dtypes,
        tolerances=target.tolerances,
        options=target.options,
        name=mutant.id,
        module=target.module,
    )


@functools.cache
def builtin_targets() -> dict[str, object]:
    """The built-in targets by name (imported once per process), less the ``slow`` ones (the
    Triton targets under the interpreter), as `fuzzgrad fuzz` runs them by default."""
    from fuzzgrad.registry.discovery import load_targets

    return {t.name: t for t in load_targets() if not t.slow}
