"""Reproducers: standalone Python files that rebuild a shrunk failing case bit for bit.

A reproducer imports only torch, numpy, jax and the target's module. It rebuilds each tensor from
its raw storage bytes (so strides, storage offset and the NaN garbage around a view are exact),
runs the Function and both references, prints the mismatch, and exits 1 while the bug is there
and 0 once it is fixed. Saved data is JSON-like literals, never pickles.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path
from typing import Any

import torch

from fuzzgrad.errors import ReproducerError
from fuzzgrad.registry.target import file_safe
from fuzzgrad.verdict.compare import NEAR_OVERFLOW, WIDEN, tolerance
from fuzzgrad.verdict.overflow import magnitudes, overflow_regime

FORMAT_VERSION = 1


def storage_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor's whole storage (what a view is cut from)."""
    storage = t.untyped_storage()
    if storage.device.type != "cpu":
        storage = storage.cpu()
    if storage.nbytes() == 0:
        return b""
    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy().tobytes()


def encode_tensor(t: torch.Tensor) -> dict[str, Any]:
    """A JSON-safe description from which `decode_tensor` rebuilds ``t`` bit for bit."""
    return {
        "dtype": str(t.dtype).replace("torch.", ""),
        "size": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "device": str(t.device),
        "data": base64.b64encode(zlib.compress(storage_bytes(t), 9)).decode("ascii"),
    }


def decode_tensor(spec: dict[str, Any]) -> torch.Tensor:
    """Inverse of `encode_tensor` (the same code is inlined in every reproducer)."""
    dtype = getattr(torch, spec["dtype"])
    raw = zlib.decompress(base64.b64decode(spec["data"]))
    base = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    base = base.to(spec["device"])
    return base.as_strided(spec["size"], spec["stride"], spec["storage_offset"])


def encode_value(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return {"tensor": encode_tensor(x)}
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"literal": x}
    if isinstance(x, (tuple, list)):
        return {"sequence": [encode_value(v) for v in x], "tuple": isinstance(x, tuple)}
    raise ReproducerError(
        f"cannot write a reproducer for an argument of type {type(x).__name__}; reproducers hold "
        "tensors, numbers, strings, None and tuples/lists of them."
    )


def write_reproducer(
    directory: Path, target, prop: str, case, *, message: str, diagnosis: str, found_after: str = ""
) -> Path:
    """Write the reproducer for ``case`` under ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"repro_{file_safe(target.name)}_{prop}.py"
    module_file = target.source_file
    data = {
        "format_version": FORMAT_VERSION,
        "target": target.name,
        "module": target.module,
        "module_file": str(Path(module_file).resolve()) if module_file else None,
        "property": prop,
        "args": [encode_value(a) for a in case.args],
        "requires_grad": [i in case.notes.get("wrt", ()) for i in range(len(case.args))],
        "cotangents": [encode_value(c) for c in case.notes.get("cotangents", [])],
        "tolerance": {
            str(dt).replace("torch.", ""): list(tolerance(dt, target.tolerances))
            for dt in {a.dtype for a in case.args if isinstance(a, torch.Tensor)}
            if dt.is_floating_point or dt.is_complex
        },
        "widen": WIDEN,
        "near_overflow": NEAR_OVERFLOW,
        "overflow_regime": overflow_regime(magnitudes(case.args)),
        "direction_seed": case.direction_seed,
        # Some CPU kernels (oneDNN's bf16 matmul among them) pick their blocking, and so what
        # they compute, by thread count: the replay runs with the count the failure was found at.
        "threads": torch.get_num_threads(),
        "precision": target.options.get("precision", "native"),
    }
    header = _describe(target, prop, case, message, diagnosis, found_after)
    text = _TEMPLATE.replace("@@HEADER@@", header).replace(
        "@@DATA@@", json.dumps(data, indent=1, sort_keys=True)
    )
    path.write_text(text)
    return path


def _describe(target, prop, case, message, diagnosis, found_after) -> str:
    lines = [
        f"fuzzgrad reproducer: target {target.name!r} ({target.module}), property {prop!r}.",
        "",
        f"Failure: {message}",
        f"Diagnosis: {diagnosis}",
    ]
    if found_after:
        lines.append(found_after)
    lines.append("")
    lines.append("Inputs (shrunk):")
    for i, a in enumerate(case.args):
        if isinstance(a, torch.Tensor):
            vals = a.detach().cpu().reshape(-1)[:8].tolist() if a.numel() else []
            more = ", ..." if a.numel() > 8 else ""
            lines.append(
                f"  arg {i}: shape {tuple(a.shape)}, {str(a.dtype).replace('torch.', '')}, "
                f"stride {tuple(a.stride())}, offset {a.storage_offset()}, {a.device}, "
                f"requires_grad={case.requires_grad[i]}, values {vals}{more}"
            )
        else:
            lines.append(f"  arg {i}: {a!r}")
    lines += [
        "",
        f"Runs with torch.set_num_threads({torch.get_num_threads()}), as the fuzz run did.",
        "Run: python THIS_FILE  (exit 1 while the bug is there, 0 once it is fixed)",
    ]
    return "\n".join(lines).replace('"""', "'''").replace("\\", "\\\\")


def read_reproducer(path: str | Path) -> dict[str, Any]:
    """The data block of a reproducer file (target, property, args...)."""
    text = Path(path).read_text()
    m = re.search(r'^DATA = json\.loads\(r"""(.*?)"""\)', text, re.S | re.M)
    if m is None:
        raise ReproducerError(f"fuzzgrad: {path} is not a fuzzgrad reproducer (no DATA block).")
    return json.loads(m.group(1))


_TEMPLATE = r'''#!/usr/bin/env python
"""@@HEADER@@
"""
import base64
import importlib
import importlib.util
import json
import sys
import zlib

import torch

DATA = json.loads(r"""@@DATA@@""")


def load_target():
    """Import the module that registered the target, by name or else by file."""
    module = None
    try:
        module = importlib.import_module(DATA["module"])
    except ImportError:
        if DATA["module_file"]:
            spec = importlib.util.spec_from_file_location(DATA["module"], DATA["module_file"])
            module = importlib.util.module_from_spec(spec)
            sys.modules[DATA["module"]] = module
            spec.loader.exec_module(module)
    if module is None or DATA["target"] not in getattr(module, "__fuzzgrad_targets__", {}):
        sys.exit(f"cannot find target {DATA['target']!r} in module {DATA['module']!r}")
    return module.__fuzzgrad_targets__[DATA["target"]]


def decode(v):
    if "literal" in v:
        return v["literal"]
    if "sequence" in v:
        seq = [decode(x) for x in v["sequence"]]
        return tuple(seq) if v["tuple"] else seq
    spec = v["tensor"]
    dtype = getattr(torch, spec["dtype"])
    raw = zlib.decompress(base64.b64decode(spec["data"]))
    base = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    base = base.to(spec["device"])
    return base.as_strided(spec["size"], spec["stride"], spec["storage_offset"])


def floating(x):
    return isinstance(x, torch.Tensor) and (x.dtype.is_floating_point or x.dtype.is_complex)


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def fresh(x, dtype):
    """A fresh contiguous copy (at dtype, for floating tensors), as fuzzgrad's oracles use."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach().resolve_conj().resolve_neg()
    if dtype is not None and floating(x):
        x = x.to(dtype)
    return x.clone(memory_format=torch.contiguous_format)


def vjp(fn, args, wrt, cts, dtype=None, oracle=False):
    """Outputs and gradients of fn; for an oracle, on fresh contiguous copies at dtype (if set)."""
    if oracle:
        args = [fresh(a, dtype) for a in args]
        cts = [fresh(c, dtype) for c in cts]
    leaves = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    for i in wrt:
        leaves[i].requires_grad_(True)
    call = [a.clone() if i in wrt and MUTATES else a for i, a in enumerate(leaves)]
    with torch.enable_grad():
        outs = as_tuple(fn(*call))
    pairs = [(o, c) for o, c in zip(outs, cts) if c is not None and floating(o) and o.requires_grad]
    grads = [None] * len(args)
    if pairs and wrt:
        got = torch.autograd.grad([o for o, _ in pairs], [leaves[i] for i in wrt],
                                  [c for _, c in pairs], allow_unused=True)
        for i, g in zip(wrt, got):
            grads[i] = g
    return [o.detach() if isinstance(o, torch.Tensor) else o for o in outs], grads


def jax_vjp(ref, args, wrt, cts):
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    arrs = [a.detach().cpu().to(torch.float64 if floating(a) else a.dtype).contiguous().numpy()
            if isinstance(a, torch.Tensor) else a for a in args]

    def f(*diff):
        full = list(arrs)
        for i, d in zip(wrt, diff):
            full[i] = d
        return ref(*full)

    out, pull = jax.vjp(f, *[arrs[i] for i in wrt])
    outs = as_tuple(out)
    ct = [np.asarray(c.detach().cpu().to(torch.float64).numpy()) if c is not None
          else np.zeros(o.shape, jax.dtypes.float0) for o, c in zip(outs, cts)]
    got = pull(type(out)(ct) if isinstance(out, (tuple, list)) else ct[0])
    grads = [None] * len(args)
    for i, g in zip(wrt, got):
        grads[i] = torch.from_numpy(np.asarray(g).copy())
    return [torch.from_numpy(np.asarray(o).copy()) for o in outs], grads


def check(path, got, exp, calib):
    """Print one comparison; return True when it holds (same rule as fuzzgrad's)."""
    if got is None and exp is None:
        return True
    exp = torch.zeros(got.shape, dtype=torch.float64) if exp is None else exp
    got = torch.zeros(exp.shape, dtype=torch.float64) if got is None else got
    if tuple(got.shape) != tuple(exp.shape):
        print(f"  {path}: shape {tuple(got.shape)} vs reference {tuple(exp.shape)}")
        return False
    if not floating(got):
        ok = bool((got.cpu() == exp.cpu().to(got.dtype)).all())
        print(f"  {path}: {'ok' if ok else 'DIFFERS'} (integer output)")
        return ok
    rtol, atol = DATA["tolerance"].get(str(got.dtype).replace("torch.", ""), (0.0, 0.0))
    a, e = got.detach().cpu().double(), exp.detach().cpu().double()
    c = calib.detach().cpu().double() if calib is not None else e
    err = (a - e).abs()
    cerr = (c - e).abs()
    worst = float(cerr[cerr.isfinite()].max()) if bool(cerr.isfinite().any()) else 0.0
    allowed = atol + rtol * e.abs() + DATA["widen"] * (cerr.nan_to_num(0.0, 0.0, 0.0) + worst)
    fmax = torch.finfo(got.dtype).max
    same = (a == e) | (a.isnan() & e.isnan()) | (a == c) | (a.isnan() & c.isnan())
    same |= (~e.isfinite() & a.isnan()) | e.isnan()
    near = e.isfinite() & (e.abs() > fmax / DATA["near_overflow"])
    same |= near & ~a.isfinite()
    same |= e.isinf() & (a.abs() > fmax / DATA["near_overflow"]) & (a.sign() == e.sign())
    if calib is not None:
        same |= ~c.isfinite() & e.isfinite()  # the reference itself breaks down at this dtype
    ok = ((err <= allowed) & e.isfinite() & a.isfinite()) | same
    if a.numel() == 0 or bool(ok.all()):
        top = float(err.nan_to_num(0).max()) if a.numel() else 0.0
        print(f"  {path}: ok (max abs err {top:.3g})")
        return True
    bad = torch.where(~ok, err.nan_to_num(float("inf")), torch.zeros_like(err)).reshape(-1)
    i = int(bad.argmax())
    idx = tuple(torch.unravel_index(torch.tensor(i), a.shape)) if a.dim() else ()
    idx = tuple(int(x) for x in idx)
    av, ev = a.reshape(-1)[i].item(), e.reshape(-1)[i].item()
    rel = abs(av - ev) / abs(ev) if ev else float("inf")
    print(f"  {path}: DIFFERS at {int((~ok).sum())} of {a.numel()} elements; worst at index "
          f"{idx}: got {av!r}, reference {ev!r} (abs err {abs(av - ev):.3g}, rel err {rel:.3g})")
    return False


def main():
    global MUTATES
    if DATA.get("threads"):
        torch.set_num_threads(DATA["threads"])
    target = load_target()
    MUTATES = bool(target.options.get("mutates_inputs", False))
    args = [decode(a) for a in DATA["args"]]
    cts = [decode(c) for c in DATA["cotangents"]]
    wrt = [i for i, (a, rg) in enumerate(zip(args, DATA["requires_grad"])) if rg and floating(a)]
    fused = DATA.get("precision") == "fused" and any(
        floating(a) and a.dtype in (torch.float16, torch.bfloat16) for a in args
    )
    if (
        DATA["property"] not in ("forward", "vjp", "requires_grad_subsets")
        or fused
        or DATA["overflow_regime"]
    ):
        # This property's check is more than a comparison (or, for a precision="fused"
        # target in half precision, a comparison with fuzzgrad's fused tolerance rule; or,
        # with inputs so large that intermediates may overflow, one that excuses inf/NaN only
        # where those inputs reach): fuzzgrad runs it on these inputs.
        from fuzzgrad.engine.replay import replay

        print(__doc__.splitlines()[0])
        return replay(target, DATA["property"], args, wrt, cts, DATA["direction_seed"])
    try:
        outs, grads = vjp(target.fn, args, wrt, cts)
    except RuntimeError as exc:
        if "leaf Variable" not in str(exc):
            raise
        MUTATES = True
        args = [decode(a) for a in DATA["args"]]
        outs, grads = vjp(target.fn, args, wrt, cts)
    low = any(floating(a) and a.dtype != torch.float64 for a in args)
    ref_fn = target.reference
    refs = []
    if ref_fn is not None:
        ref = vjp(ref_fn, args, wrt, cts, torch.float64, oracle=True)
        refs.append(("torch reference (float64)", ref))
    if target.jax_reference is not None:
        try:
            refs.append(("JAX reference (float64)", jax_vjp(target.jax_reference, args, wrt, cts)))
        except Exception as exc:  # noqa: BLE001
            print(f"(JAX reference raised {type(exc).__name__}: {exc})")
    calib = ([None] * len(outs), [None] * len(args))
    if ref_fn is not None and low:
        calib = vjp(ref_fn, args, wrt, cts, None, oracle=True)
    print(__doc__.splitlines()[0])
    for i in wrt:
        print(f"custom grad[input={i}]: {grads[i]}")
    for name, (r_outs, r_grads) in refs:
        for i in wrt:
            print(f"{name} grad[input={i}]: {r_grads[i]}")
    verdicts = []
    for name, (r_outs, r_grads) in refs:
        print(f"against the {name}:")
        pairs = enumerate(zip(outs, r_outs))
        ok = all([check(f"output[{k}]", o, r, calib[0][k]) for k, (o, r) in pairs])
        if DATA["property"] != "forward":
            for i in wrt:
                ok = check(f"grad[input={i}]", grads[i], r_grads[i], calib[1][i]) and ok
        verdicts.append(ok)
    if any(verdicts):
        print("PASS: the Function agrees with a reference on this input (bug fixed?)")
        return 0
    print("FAIL: the Function disagrees with every reference on this input")
    return 1


MUTATES = False
if __name__ == "__main__":
    sys.exit(main())
'''
