"""Targets: a registered Function with its references, input spec and options.

Registration validates everything it can without running the Function, so a mistake surfaces at
import time with the target's name in the message, not halfway through a nightly run.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzzgrad.errors import InvalidRegistration
from fuzzgrad.registry.options import OPTIONS, unknown_option
from fuzzgrad.registry.project import shown_path
from fuzzgrad.registry.spec import (
    _check_dtypes,
    check_inputs,
    normalise_inputs,
    normalise_sizes,
    tensor,
)

#: Attribute under which a module keeps the targets it registered ({name: Target}). Reproducers
#: use it to find a target's Function and references after importing the module.
MODULE_ATTR = "__fuzzgrad_targets__"

#: Prefix of the import name `fuzzgrad.registry.discovery` gives a file it imports by path; the name
#: ends with the file's stem and a digest of its folder (see `Target.key`).
BY_PATH_PREFIX = "fuzzgrad_user_"
_BY_PATH = re.compile(re.escape(BY_PATH_PREFIX) + r"(.+)_\d+")

_REGISTRY: dict[tuple[str, str], Target] = {}


@dataclass(frozen=True)
class Target:
    """A registered Function: what to call, what to compare it with, and how to feed it."""

    name: str
    fn: Callable[..., Any]  # what a case calls: `Function.apply` or a plain callable
    function: Any  # the torch.autograd.Function subclass, if there is one
    reference: Callable[..., Any] | None
    jax_reference: Callable[..., Any] | None
    inputs: tuple[Any, ...] | Any  # one spec per argument, or a strategy of the args tuple
    dtypes: tuple[Any, ...] | None  # None: the default float dtypes
    xfail: str | None = None
    tolerances: Mapping[Any, tuple[float, float]] = field(default_factory=dict)
    module: str = ""  # the module that registered it
    #: The properties the known bug (``xfail``) shows in; None: any property.
    xfail_properties: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: For a plain callable (a function, a ``functools.partial``): the Function it calls, found
    #: in its code or its partial's ``func`` (`wrapped_function`); None if not exactly one.
    wraps: Any = None
    #: For a ``torch.library.custom_op``: the Python function it was defined from, its own
    #: math (`custom_op_impl`): the reference when none is given.
    own_math: Callable[..., Any] | None = None

    def known_bug_in(self, prop: str) -> bool:
        """Whether the registration's ``xfail`` covers property ``prop`` (every property,
        unless it names some)."""
        listed = self.xfail_properties
        return bool(self.xfail) and (listed is None or prop in listed)

    @property
    def autograd_function(self) -> Any:
        """The Function whose own properties (grad_meta, vmap, forward-AD) the target has: the
        registered class, or the one a registered callable calls."""
        return self.function if self.function is not None else self.wraps

    @property
    def once_differentiable(self) -> bool:
        """Whether the Function's backward is wrapped in ``once_differentiable``."""
        code = getattr(getattr(self.autograd_function, "backward", None), "__code__", None)
        return (
            code is not None
            and code.co_name == "wrapper"
            and code.co_filename.replace("\\", "/").endswith("torch/autograd/function.py")
        )

    @property
    def slow(self) -> bool:
        """Registered ``slow=True``: left out of default runs (see `fuzzgrad fuzz --slow`)."""
        return bool(self.options.get("slow", False))

    @property
    def key(self) -> str:
        """The target's identity across checkouts: ``module.name``, where a module imported by
        path is named by its file's stem (not by the folder digest in its import name), so a
        derandomized run draws the same cases, and finds its stored failures, wherever the
        project is cloned."""
        match = _BY_PATH.fullmatch(self.module)
        return f"{match.group(1) if match else self.module}.{self.name}"

    @property
    def source_file(self) -> str | None:
        module = sys.modules.get(self.module)
        return getattr(module, "__file__", None)

    @property
    def display_module(self) -> str:
        """Where the target comes from, as people read it: the module's import name, or, for a
        file imported by path, the file's path relative to the project (`shown_path`)."""
        if not self.module.startswith(BY_PATH_PREFIX) or not self.source_file:
            return self.module
        return shown_path(self.source_file)


def file_safe(name: str, limit: int = 80) -> str:
    """``name`` as a file or key name: letters, digits, ``_.-``; where that changes it (or it
    is longer than ``limit``) a short hash of the original keeps two names apart (``"dup x"``
    and ``"dup/x"`` both sanitise to ``dup_x``)."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    if safe == name and len(safe) <= limit:
        return safe
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{safe[: limit - 9]}-{digest}"


def _positional_params(fn: Callable[..., Any], skip: int) -> tuple[list[str], bool, int] | None:
    """Names of the positional parameters after ``skip``, whether ``*args`` follows, and how
    many of them have no default."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names: list[str] = []
    required = 0
    star = False
    for p in list(sig.parameters.values()):
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
            required += p.default is p.empty
        elif p.kind is p.VAR_POSITIONAL:
            star = True
    return names[skip:], star, max(0, required - skip)


def _is_function_class(obj: Any) -> bool:
    import torch

    return isinstance(obj, type) and issubclass(obj, torch.autograd.Function)


def _function_bases() -> frozenset[type]:
    import torch

    return frozenset(torch.autograd.Function.__mro__)


def defines(cls: Any, name: str) -> bool:
    """Whether a Function class defines ``name`` itself or in a base class of its own (not
    in torch's ``autograd.Function`` machinery), wherever the class is defined: PyTorch's own
    test Functions live in ``torch.*`` modules too."""
    bases = _function_bases()
    for klass in getattr(cls, "__mro__", ()):
        if klass in bases:
            return False
        if name in klass.__dict__:
            return True
    return False


def uses_setup_context(cls: type) -> bool:
    """Whether a Function is written in the ``forward(*args)`` + ``setup_context`` style."""
    return defines(cls, "setup_context")


def _function_arity(name: str, obj: Any) -> tuple[list[str], bool, int] | None:
    if _is_function_class(obj):
        skip = 0 if uses_setup_context(obj) else 1  # forward(ctx, ...) unless setup_context style
        return _positional_params(obj.forward, skip)
    if is_custom_op(obj):
        args = [a for a in obj._schema.arguments if not a.kwarg_only]
        return [a.name for a in args], False, sum(not a.has_default_value() for a in args)
    return _positional_params(obj, 0)


def is_custom_op(obj: Any) -> bool:
    """Whether ``obj`` is an operator overload (``torch.ops.mylib.op.default``), as
    ``torch.library.custom_op`` makes them."""
    return type(obj).__name__ == "OpOverload" and hasattr(obj, "_schema")


def custom_op_overload(obj: Any) -> Any:
    """The overload to call for an operator given as a packet (``torch.ops.mylib.op``) or as
    what ``@torch.library.custom_op`` returns; None for anything else."""
    if type(obj).__name__ == "OpOverloadPacket" and hasattr(obj, "default"):
        return obj.default
    if type(obj).__name__ == "CustomOpDef":
        import torch

        namespace, _, op = obj._qualname.partition("::")
        return getattr(getattr(torch.ops, namespace), op).default
    return None


def custom_op_impl(obj: Any) -> Callable[..., Any] | None:
    """The Python function an operator made with ``torch.library.custom_op`` was defined from
    (given as what the decorator returns, its packet or its overload): its own math, whose
    autograd is the reference when the registration gives none. None for anything else, or an
    operator defined another way (``torch.library.define``: no Python math to differentiate).
    torch offers no public accessor, so this reads ``CustomOpDef``'s own attribute."""
    if type(obj).__name__ != "CustomOpDef":
        overload = custom_op_overload(obj) or obj
        if not is_custom_op(overload):
            return None
        from torch._library import custom_ops

        obj = getattr(custom_ops, "OPDEFS", {}).get(overload._schema.name)
    impl = getattr(obj, "_init_fn", None)
    return impl if callable(impl) else None


def custom_op_has_backward(obj: Any) -> bool:
    """Whether a ``torch.library.custom_op`` has an autograd formula (``register_autograd``)."""
    return getattr(obj, "_backward_fn", None) is not None


@functools.lru_cache(maxsize=256)
def _cached_arity(fn: Any) -> tuple[list[str], bool, int] | None:
    """`_function_arity`, once per callable (reports ask for every example)."""
    return _function_arity(getattr(fn, "__name__", "?"), fn)


def argument_names(target: Target, count: int) -> list[str]:
    """The names of a target's first ``count`` positional arguments, from its Function's
    ``forward`` (or its callable's) signature, for reports: arguments past the named ones (a
    ``*args`` forward) are ``args[k]``, and where there is no signature to read, ``arg k``."""
    fn = target.function or target.fn
    try:
        arity = _cached_arity(fn)
    except TypeError:  # not hashable
        arity = _function_arity(target.name, fn)
    params = arity[0] if arity else []
    names = list(params[:count])
    for k in range(len(names), count):
        names.append(f"args[{k - len(params)}]" if arity and arity[1] else f"arg {k}")
    return names


def property_names() -> tuple[str, ...]:
    """The properties fuzzgrad has: one module each in the ``fuzzgrad.properties`` package,
    named as the property is (read off the package's folder, so that validating a registration
    imports none of them)."""
    import importlib.util
    import pkgutil

    spec = importlib.util.find_spec("fuzzgrad.properties")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    machinery = ("base", "case", "checker")
    return tuple(
        sorted(
            m.name
            for m in pkgutil.iter_modules(folders)
            if m.name not in machinery and not m.name.startswith("_")
        )
    )


#: Values of the ``precision`` option: "native" (default) allows a half-precision Function the
#: error the reference math makes in that dtype; "fused" holds it to one rounding of float32 math.
PRECISIONS = ("native", "fused")


def register(
    fn: Any = None,
    /,
    *,
    reference: Callable[..., Any] | None = None,
    jax_reference: Callable[..., Any] | None = None,
    inputs: Any = None,
    name: str | None = None,
    dtypes: Any = None,
    xfail: str | Mapping[str, str] | None = None,
    tolerances: Mapping[Any, tuple[float, float]] | None = None,
    **options: Any,
) -> Any:
    """Register a custom autograd Function (or a callable wrapping ``.apply``) for fuzzing.

    Use as a decorator, ``@fg.register(reference=..., jax_reference=...)``, or as a call,
    ``fg.register(TheirFunction, reference=..., name="theirs")``. Returns ``fn`` unchanged.

    ``reference`` is torch math that autograd differentiates; ``jax_reference`` is the same math
    for ``jax.vjp``. ``inputs`` is a list with one entry per positional argument
    (`fuzzgrad.tensor`, `fuzzgrad.dim`, `fuzzgrad.size`, a Hypothesis strategy, or a plain value
    passed as is; see `fuzzgrad.registry.spec`) or a Hypothesis strategy drawing the whole
    argument tuple. ``dtypes`` restricts the float dtypes tried. ``xfail`` is a reason: the
    Function is known wrong (a failure of any property is expected); or a mapping from property
    to reason, ``{"second_order": "..."}``: the known bugs show in those properties, and a
    failure of any other property fails the target. ``tolerances`` maps a dtype to ``(rtol,
    atol)`` overriding the defaults. Other keyword options are kept in ``Target.options`` (e.g.
    ``properties=[...]``, ``max_elements=...``, ``sizes={"n": (3, 300)}``: bounds on named
    sizes, ``slow=True``: left out of default runs; ``devices=["cuda"]``: the device types its
    cases are drawn on, where this machine has them; ``precision="fused"``: in float16/bfloat16
    the Function computes in float32 or wider and rounds its results once, so each
    half-precision result must be, within about an ulp, its own result on the same inputs upcast
    to float32, rounded once; a forgotten upcast fails that; an output it keeps for its backward
    is kept rounded in the float32 run too; ``mutates_inputs=True`` or ``[0]``: the Function
    writes into all its inputs, or those, in place: they are never drawn expanded;
    ``nonfinite_ok=("vjp",)``: in those properties a NaN or inf is accepted where the
    reference run at the case's dtype gives one too, though the float64 reference is finite;
    ``oracle="differences"``, without any reference: judge the backward by finite differences
    of the forward, whose autograd is not its derivative: an iterative solver, say).
    """
    caller = sys._getframe(1).f_globals.get("__name__", "__main__")
    kwargs = dict(
        reference=reference,
        jax_reference=jax_reference,
        inputs=inputs,
        name=name,
        dtypes=dtypes,
        xfail=xfail,
        tolerances=tolerances,
        options=options,
        module=caller,
    )
    if fn is None:
        return lambda f: _register(f, **kwargs)
    return _register(fn, **kwargs)


def _register(fn: Any, *, module: str, **kw: Any) -> Any:
    target = make_target(fn, module=module, **kw)
    key = (target.module, target.name)
    previous = _REGISTRY.get(key)
    if previous is not None and _identity(previous) != _identity(target):
        raise InvalidRegistration(
            f"fuzzgrad: target name {target.name!r} is registered twice: {where(previous)} and "
            f"{where(target)}. Pass name='...' to one of the register() calls."
        )
    _REGISTRY[key] = target
    mod = sys.modules.get(module)
    if mod is not None:
        table = mod.__dict__.setdefault(MODULE_ATTR, {})
        table[target.name] = target
    return fn


def make_target(
    fn: Any,
    *,
    reference: Callable[..., Any] | None = None,
    jax_reference: Callable[..., Any] | None = None,
    inputs: Any = None,
    name: str | None = None,
    dtypes: Any = None,
    xfail: str | Mapping[str, str] | None = None,
    tolerances: Mapping[Any, tuple[float, float]] | None = None,
    options: Mapping[str, Any] | None = None,
    module: str = "__main__",
) -> Target:
    """Validate a registration and build its `Target` (without adding it to any registry)."""
    impl = custom_op_impl(fn)
    fn = custom_op_overload(fn) or fn
    label = name or (fn.name() if is_custom_op(fn) else None)
    label = label or getattr(fn, "__name__", None) or repr(fn)
    where = f"fuzzgrad: cannot register {label!r}: "
    if fn is None or not callable(fn):
        raise InvalidRegistration(
            f"{where}expected a torch.autograd.Function subclass or a callable, got {fn!r}."
        )
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidRegistration(f"{where}name must be a non-empty string, got {name!r}.")
    function = fn if _is_function_class(fn) else None
    call = fn.apply if function is not None else fn
    for key, ref in (("reference", reference), ("jax_reference", jax_reference)):
        if ref is not None and not callable(ref):
            raise InvalidRegistration(f"{where}{key} must be callable, got {ref!r}.")
    xfail, xfail_properties = _known_bug(where, xfail)
    if dtypes is not None:
        dtypes = tuple(dtypes) if isinstance(dtypes, (list, tuple)) else (dtypes,)
        _check_dtypes(dtypes, where)
    tolerances = dict(tolerances or {})
    for key, value in tolerances.items():
        ok = isinstance(value, (tuple, list)) and len(value) == 2
        if not ok or not all(isinstance(v, (int, float)) and v >= 0 for v in value):
            raise InvalidRegistration(
                f"{where}tolerances[{key!r}] must be a pair (rtol, atol) of non-negative numbers, "
                f"got {value!r}."
            )
    _check_dtypes(tuple(tolerances), where) if tolerances else None

    arity = _function_arity(label, fn)
    params = arity[0] if arity else None
    star = arity[1] if arity else True
    inputs = _normalise_inputs(inputs, params, star, where)
    opts = dict(options or {})
    for key in opts:
        if key not in OPTIONS:
            raise InvalidRegistration(f"{where}{unknown_option(key)}")
    if "sizes" in opts:
        opts["sizes"] = normalise_sizes(opts["sizes"], where)
    if isinstance(inputs, tuple):
        check_inputs(inputs, sizes=opts.get("sizes", {}), dtypes=dtypes, where=where)
    n_args = len(inputs) if isinstance(inputs, tuple) else None
    required = arity[2] if arity else 0
    if (
        n_args is not None
        and params is not None
        and not star
        and not (required <= n_args <= len(params))
    ):
        raise InvalidRegistration(
            f"{where}inputs has {n_args} specs but forward takes {len(params)} argument(s) "
            f"({', '.join(params)}). Give one fuzzgrad.tensor(...) per argument."
        )
    for key, ref in (("reference", reference), ("jax_reference", jax_reference)):
        if ref is None or n_args is None:
            continue
        ref_arity = _positional_params(ref, 0)
        if ref_arity is None:
            continue
        ref_params, ref_star, ref_required = ref_arity
        if ref_required > n_args or (not ref_star and len(ref_params) < n_args):
            raise InvalidRegistration(
                f"{where}{key} takes {len(ref_params)} argument(s) ({', '.join(ref_params)}) but "
                f"the Function takes {n_args}. Make {key} accept the same positional arguments."
            )
    if reference is None and jax_reference is None and function is None and impl is None:
        raise InvalidRegistration(
            f"{where}a plain callable needs reference= or jax_reference= (only an "
            "autograd.Function's own forward, or a torch.library.custom_op's own Python "
            "function, can serve as its reference)."
        )
    if isinstance(inputs, tuple) and not _anything_differentiable(inputs, dtypes):
        raise InvalidRegistration(
            f"{where}nothing in it is differentiable: no argument can be a floating tensor that "
            f"requires grad (dtypes={dtypes!r}; inputs={list(inputs)!r}), so no gradient would "
            "be checked. Give it float dtypes, or an input with requires_grad=True."
        )
    for option, meaning in (
        ("properties", "a list drawn from"),
        (
            "nonfinite_ok",
            "a list of property names (those in which a NaN or inf is accepted where the "
            "reference at the case's dtype gives one too) drawn from",
        ),
    ):
        if option in opts:
            known = property_names()
            props = opts[option]
            if isinstance(props, str) or not all(p in known for p in props or ()):
                raise InvalidRegistration(
                    f"{where}{option} must be {meaning} {', '.join(known)}; got {props!r}."
                )
            opts[option] = tuple(props)
    if opts.get("max_order", 2) not in (1, 2):
        raise InvalidRegistration(
            f"{where}max_order must be 1 (first derivatives only: second order is not checked) "
            f"or 2 (the default), got {opts['max_order']!r}."
        )
    if not isinstance(opts.get("slow", False), bool):
        raise InvalidRegistration(
            f"{where}slow must be True or False, got {opts['slow']!r}. slow=True keeps a target "
            "out of default runs (fuzzgrad fuzz --slow, or pytest --fuzzgrad-slow, runs it)."
        )
    if "devices" in opts:
        devices = opts["devices"]
        if isinstance(devices, str) or not devices or not all(isinstance(d, str) for d in devices):
            raise InvalidRegistration(
                f"{where}devices must be a non-empty list of device types such as "
                f"['cpu'] or ['cuda'], got {devices!r}."
            )
        opts["devices"] = tuple(devices)
    if opts.get("oracle", "differences") != "differences" or (
        "oracle" in opts and (reference is not None or jax_reference is not None)
    ):
        raise InvalidRegistration(
            f"{where}oracle={opts['oracle']!r}: the only oracle option is 'differences' (judge "
            "the backward by finite differences of the forward), for a Function registered "
            "without reference= or jax_reference= whose forward autograd cannot differentiate "
            "into its derivative (an iterative solver, say)."
        )
    precision = opts.get("precision", "native")
    if precision not in PRECISIONS:
        raise InvalidRegistration(
            f"{where}precision must be one of {', '.join(map(repr, PRECISIONS))}; got "
            f"{precision!r}. 'fused' promises that float16/bfloat16 results are computed in "
            "float32 or wider and rounded once, and holds the Function to that."
        )
    return Target(
        name=label,
        fn=call,
        function=function,
        reference=reference,
        jax_reference=jax_reference,
        inputs=inputs,
        dtypes=dtypes,
        xfail=xfail,
        tolerances=tolerances,
        module=module,
        xfail_properties=xfail_properties,
        options=opts,
        wraps=wrapped_function(fn) if function is None else None,
        own_math=impl,
    )


def _known_bug(where: str, xfail: Any) -> tuple[str | None, tuple[str, ...] | None]:
    """``xfail`` as a reason and the properties the known bug shows in (None: any)."""
    if xfail is None or isinstance(xfail, str):
        return xfail, None
    if not isinstance(xfail, Mapping) or not xfail:
        raise InvalidRegistration(
            f"{where}xfail must be a string saying why the Function is known wrong, or a "
            f"mapping from property to reason ({{'second_order': 'why'}}), got {xfail!r}."
        )
    known = property_names()
    for prop, reason in xfail.items():
        if prop not in known:
            raise InvalidRegistration(
                f"{where}xfail names {prop!r}, which is not a property; properties: "
                f"{', '.join(known)}."
            )
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidRegistration(
                f"{where}xfail[{prop!r}] must say why the Function is known wrong there, got "
                f"{reason!r}."
            )
    properties = tuple(xfail)
    return "; ".join(f"{p}: {xfail[p]}" for p in properties), properties


def _anything_differentiable(specs: tuple, dtypes: tuple | None) -> bool:
    """Whether some tensor spec can draw a floating tensor that requires grad (the target's
    ``dtypes`` are the default for specs without their own)."""

    def floating(ds) -> bool:
        return ds is None or any(d.is_floating_point or d.is_complex for d in ds)

    return any(
        getattr(spec, "requires_grad", False) and floating(getattr(spec, "dtypes", None) or dtypes)
        for spec in specs
    )


def wrapped_function(fn: Any, depth: int = 0) -> Any:
    """The one autograd Function a plain callable calls, or None: through a
    ``functools.partial``'s ``func``, a bound ``apply``, or the names its code (and the helpers
    it calls, two levels deep) reads from its globals and closure."""
    if _is_function_class(getattr(fn, "__self__", None)):
        return fn.__self__  # SomeFunction.apply
    if isinstance(fn, functools.partial):
        return wrapped_function(fn.func, depth)
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: look at its class's __call__
        call = type(fn).__dict__.get("__call__")
        return wrapped_function(call, depth + 1) if call is not None and depth < 2 else None
    bases = _function_bases()
    found = {f for f in _referenced(fn, code) if _is_function_class(f) and f not in bases}
    if not found and depth < 2:
        helpers = [f for f in _referenced(fn, code) if inspect.isfunction(f) and f is not fn]
        found = {w for h in helpers if (w := wrapped_function(h, depth + 1)) is not None}
    return next(iter(found)) if len(found) == 1 else None


def _referenced(fn: Any, code: Any) -> list[Any]:
    """The objects a function's code names: globals, closure cells, and attributes of the
    modules and classes among them (``mod.MyFunction.apply``)."""
    scope = dict(getattr(fn, "__globals__", {}))
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    names: list[str] = []
    stack = [code]
    while stack:
        c = stack.pop()
        names += list(c.co_names) + list(c.co_freevars)
        stack += [k for k in c.co_consts if inspect.iscode(k)]
    out = [scope[n] for n in names if n in scope]
    for obj in list(out):
        if inspect.ismodule(obj):
            out += [getattr(obj, n) for n in names if hasattr(obj, n)]
    return out


def _normalise_inputs(inputs: Any, params: list[str] | None, star: bool, where: str) -> Any:
    from hypothesis.strategies import SearchStrategy

    if isinstance(inputs, SearchStrategy):
        return inputs
    if inputs is None:
        if params is None or star:
            raise InvalidRegistration(
                f"{where}cannot tell how many arguments the Function takes (it has *args or no "
                "signature); pass inputs=[fuzzgrad.tensor(...), ...]."
            )
        return tuple(tensor() for _ in params)
    if not isinstance(inputs, (list, tuple)):
        raise InvalidRegistration(
            f"{where}inputs must be a list with one spec per argument (fuzzgrad.tensor(...), "
            "fuzzgrad.dim(i), fuzzgrad.size('n'), a strategy or a plain value) or a Hypothesis "
            f"strategy of the argument tuple, got {inputs!r}."
        )
    return normalise_inputs(inputs, where)


def registered() -> dict[str, Target]:
    """Every target registered in this process, by name (``module:name`` where names clash)."""
    names = [name for _, name in _REGISTRY]
    return {
        (name if names.count(name) == 1 else f"{module}:{name}"): t
        for (module, name), t in _REGISTRY.items()
    }


def where(t: Target) -> str:
    """Where a target's Function is defined, for messages: ``file:line`` (else its module)."""
    obj = t.function or t.fn
    obj = getattr(obj, "__func__", obj)
    try:
        file = inspect.getsourcefile(obj)
        line = inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return t.display_module
    return f"{shown_path(file)}:{line}" if file else t.display_module


def _identity(t: Target) -> tuple[str, str | None]:
    obj = t.function or t.fn
    return t.module, getattr(obj, "__qualname__", None)
