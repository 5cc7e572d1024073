"""The JAX oracle: ``jax.vjp`` (or ``jvp``, or a second-order VJP) of a JAX reference.

JAX is imported only when this oracle runs; a missing JAX raises `OracleUnavailable` then. The
oracle computes in float64, with JAX's x64 mode switched on only inside its own calls.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import torch

from fuzzgrad.errors import OracleUnavailable
from fuzzgrad.oracles.evaluation import Evaluation, as_tuple


@functools.cache
def _jax():
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise OracleUnavailable(
            "fuzzgrad: the JAX oracle needs jax and jaxlib (pip install jax jaxlib)."
        ) from exc
    import os

    if os.environ.get("FUZZGRAD_JAX_CACHE"):
        persistent_cache(os.environ["FUZZGRAD_JAX_CACHE"])
    return jax


def x64():
    """A context in which JAX computes in float64: fuzzgrad's own calls only, never the user's
    JAX code in the same process (a global flag would change its dtypes)."""
    jax = _jax()
    if hasattr(jax, "enable_x64"):  # JAX >= 0.7: a config state usable as a context
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX

    return enable_x64()


def persistent_cache(folder: str | None) -> None:
    """Share compiled XLA programs across runs and worker processes (JAX's own disk cache).

    Opt-in: the ``fuzzgrad`` command turns it on for its own processes (a folder under
    ``~/.cache/fuzzgrad``); inside a user's process (pytest, `fuzzgrad.check`) only
    ``FUZZGRAD_JAX_CACHE=DIR`` does, since JAX's cache folder is a process-wide setting."""
    import os

    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "fuzzgrad", "jax")
    if folder.lower() in ("", "none", "0"):
        return
    import jax

    try:
        os.makedirs(folder, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    except (OSError, AttributeError):  # a read-only home or an old JAX: compile in memory only
        pass


def _to_numpy(x: torch.Tensor):
    """A float64 (for floating tensors) numpy copy: the JAX oracle always computes in float64."""
    x = x.detach().resolve_conj().resolve_neg().cpu()
    if x.dtype.is_floating_point:
        x = x.to(torch.float64)
    elif x.dtype.is_complex:
        x = x.to(torch.complex128)
    return x.contiguous().numpy().copy()


class JaxOracle:
    """``jax.vjp`` (or ``jvp``, or a second-order VJP) of a JAX reference, jitted and cached per
    signature (mode, shapes, dtypes, wrt)."""

    def __init__(self) -> None:
        self._cache: dict[Any, Callable[..., Any]] = {}
        self.compiles = 0
        self.calls = 0
        self.compile_seconds = 0.0

    def signature(self, reference, args, wrt, cotangents, mode: str = "vjp", working=None) -> tuple:
        def sig(x):
            if isinstance(x, torch.Tensor):
                return ("T", tuple(x.shape), str(x.dtype))
            return ("S", repr(x))

        return (
            mode,
            reference,
            tuple(sig(a) for a in args),
            tuple(wrt),
            None if cotangents is None else tuple(c is not None for c in cotangents),
            str(working),
        )

    def is_warm(self, reference, args, wrt, cotangents, mode: str = "vjp") -> bool:
        """Whether this call is compiled already (no JAX compile to pay)."""
        return self.signature(reference, args, wrt, cotangents, mode) in self._cache

    def __call__(
        self, reference, args, wrt, cotangents, *, mode: str = "vjp", extra=None, working=None
    ):
        """``mode="vjp"``: an `Evaluation`. ``"jvp"``: ``(outputs, output tangents)`` for the
        tangents ``extra`` (one per ``wrt``). ``"hvp"``: the VJP of the VJP with cotangents
        ``extra`` (one per ``wrt``): ``(grads w.r.t. wrt inputs, grads w.r.t. cotangents)``.
        ``working`` (a torch dtype): compute in that precision instead of float64 (the inputs
        are cast inside the program, the results returned as float64), to measure the error
        the reference math makes at a Function's dtype."""
        jax = _jax()
        key = self.signature(reference, args, wrt, cotangents, mode, working)
        compiled = self._cache.get(key)
        cold = compiled is None
        if compiled is None:
            program = _program(jax, reference, args, wrt, cotangents, mode)
            if working is not None:
                program = _at_precision(jax, program, str(working).replace("torch.", ""))
            compiled = jax.jit(program)
            self._cache[key] = compiled
            self.compiles += 1
        self.calls += 1
        started = time.perf_counter()
        dyn = [_to_numpy(a) for a in args if isinstance(a, torch.Tensor)]
        cts = [] if cotangents is None else [_to_numpy(c) for c in cotangents if c is not None]
        ext = [] if extra is None else [_to_numpy(e) for e in extra]
        with x64():
            result = compiled(dyn, cts, ext)
        if cold:  # the first call of a jitted function is (nearly all) compilation
            self.compile_seconds += time.perf_counter() - started
        if mode == "vjp":
            outs, grads = result
            full = [None] * len(args)
            for i, g in zip(wrt, grads):
                full[i] = _from_jax(g)
            return Evaluation(tuple(_from_jax(o) for o in outs), tuple(full))
        first, second = result
        return [_from_jax(x) for x in first], [_from_jax(x) for x in second]


def _program(jax, reference, args, wrt, cotangents, mode):
    """The function to jit: rebuilds the full argument list, then differentiates as asked."""
    import numpy as np

    jnp = jax.numpy
    tensor_pos = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
    statics = {i: a for i, a in enumerate(args) if not isinstance(a, torch.Tensor)}
    wrt = list(wrt)
    mask = list(cotangents) if cotangents is not None else None

    def full_args(dyn):
        full: list[Any] = [None] * len(args)
        for i, a in statics.items():
            full[i] = a
        for i, a in zip(tensor_pos, dyn):
            full[i] = a
        return full

    def pull(full, diff, cts):
        def f(*d):
            local = list(full)
            for i, x in zip(wrt, d):
                local[i] = x
            return reference(*local)

        out, pullback = jax.vjp(f, *diff)
        outs = as_tuple(out)
        it = iter(cts)
        ct_full = []
        assert mask is not None  # only the "vjp" and "hvp" modes pull, with cotangents
        for o, c in zip(outs, mask):
            o = jnp.asarray(o)  # a Python number among the outputs
            if not jnp.issubdtype(o.dtype, jnp.inexact):
                ct_full.append(np.zeros(o.shape, dtype=jax.dtypes.float0))
            elif c is None:  # an output the case leaves unused: no gradient flows from it
                ct_full.append(jnp.zeros(o.shape, o.dtype))
            else:
                ct_full.append(_conj(jnp, next(it)).astype(o.dtype))
        ct = type(out)(ct_full) if isinstance(out, (tuple, list)) else ct_full[0]
        return outs, tuple(_conj(jnp, g) for g in pullback(ct))

    def run(dyn, cts, ext):
        full = full_args(dyn)
        diff = [full[i] for i in wrt]
        if mode == "jvp":

            def f(*d):
                local = list(full)
                for i, x in zip(wrt, d):
                    local[i] = x
                return reference(*local)

            out, tangent = jax.jvp(f, tuple(diff), tuple(ext))
            return list(as_tuple(out)), list(as_tuple(tangent))
        if mode == "hvp":

            def first(d, c):
                return pull(full, d, c)[1]

            _, pullback = jax.vjp(first, diff, list(cts))
            gx, gc = pullback(tuple(_conj(jnp, e) for e in ext))
            return [_conj(jnp, g) for g in gx], [_conj(jnp, g) for g in gc]
        if cotangents is None or not wrt:
            return tuple(as_tuple(reference(*full))), ()
        return pull(full, diff, cts)

    return run


def _conj(jnp, x):
    """PyTorch's convention for complex gradients from JAX's: torch's backward takes and gives
    the conjugates of what ``jax.vjp``'s pullback takes and gives (torch's gradient is the
    conjugate Wirtinger derivative), so a cotangent is conjugated on the way in and a gradient
    on the way out; real values pass unchanged. Without it, a backward that forgets a
    ``conj()`` would agree with JAX."""
    return jnp.conj(x) if jnp.iscomplexobj(x) else x


def _at_precision(jax, program, dtype: str):
    """``program`` with its floating inputs cast to ``dtype`` and its results back to float64."""
    jnp = jax.numpy
    target = getattr(jnp, dtype)

    def down(x):
        return x.astype(target) if jnp.issubdtype(x.dtype, jnp.floating) else x

    def up(x):
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(jnp.float64)
        return x

    def run(dyn, cts, ext):
        result = program([down(d) for d in dyn], [down(c) for c in cts], [down(e) for e in ext])
        return jax.tree_util.tree_map(up, result)

    return run


def _from_jax(x: Any) -> Any:
    import numpy as np

    arr = np.asarray(x)
    if arr.dtype.kind in "fc" or arr.dtype.kind in "iub":
        return torch.from_numpy(arr.copy())
    return x


_SHARED: JaxOracle | None = None


def shared_jax() -> JaxOracle:
    """The process-wide JAX oracle, so every run and diagnosis reuses compiled programs."""
    global _SHARED
    if _SHARED is None:
        _SHARED = JaxOracle()
    return _SHARED
