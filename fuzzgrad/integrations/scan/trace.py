"""``fuzzgrad scan --trace "CMD"``: contracts generalised from the calls a command really makes.

The command (a test suite, an example script) runs with ``Function.apply`` instrumented through
a ``sitecustomize`` module put first on its ``PYTHONPATH``: each call of a custom Function
records, per argument, a tensor's shape and dtype or a plain value. `traced_contract` turns a
Function's calls into a contract: the same rank in every call, a dim whose size never varies kept
fixed, the others named so that dims equal in every call share a name; a plain value taken as
its first call had it. Integer tensors (indices) are not generalised: such a Function falls back
to trial.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fuzzgrad.integrations.scan.contract import Contract

#: Environment variable naming the file the instrumented process appends its calls to.
TRACE_FILE = "FUZZGRAD_TRACE_FILE"
#: Calls recorded per Function (enough to see which dims vary).
MAX_CALLS = 50

_SITECUSTOMIZE = '''
"""Written by fuzzgrad scan --trace: records the calls of custom autograd Functions."""
import atexit, json, os

def _install():
    import torch
    calls, original = {}, torch.autograd.Function.apply.__func__

    def describe(a):
        if isinstance(a, torch.Tensor):
            return {"shape": list(a.shape), "dtype": str(a.dtype).replace("torch.", "")}
        if a is None or isinstance(a, (bool, int, float, str)):
            return {"value": a}
        return {"other": type(a).__name__}

    def apply(cls, *args, **kwargs):
        key = cls.__module__ + ":" + cls.__qualname__
        seen = calls.setdefault(key, [])
        if len(seen) < %(max_calls)d and not kwargs:
            seen.append([describe(a) for a in args])
        return original(cls, *args, **kwargs)

    torch.autograd.Function.apply = classmethod(apply)

    def save():
        with open(os.environ["%(env)s"], "a") as f:
            for key, found in calls.items():
                f.write(json.dumps({"function": key, "calls": found}) + "\\n")

    atexit.register(save)

try:
    _install()
except Exception:
    pass
'''


def record(command: str) -> tuple[dict[str, list[list[dict[str, Any]]]], int]:
    """Run ``command`` (a shell command) with ``apply`` instrumented; return the calls of each
    Function (``module:qualname``) and the command's exit status."""
    folder = Path(tempfile.mkdtemp(prefix="fuzzgrad-trace-"))
    (folder / "sitecustomize.py").write_text(
        _SITECUSTOMIZE % {"max_calls": MAX_CALLS, "env": TRACE_FILE}
    )
    out = folder / "calls.jsonl"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)
    env[TRACE_FILE] = str(out)
    status = subprocess.run(command, shell=True, env=env, check=False).returncode  # noqa: S602
    calls: dict[str, list[list[dict[str, Any]]]] = {}
    if out.exists():
        for line in out.read_text().splitlines():
            entry = json.loads(line)
            calls.setdefault(entry["function"], []).extend(entry["calls"])
    sys.stdout.flush()
    return calls, status


def traced_contract(calls: list[list[dict[str, Any]]]) -> Contract | None:
    """The contract the recorded calls of one Function show (None: none can be drawn)."""
    if not calls or len({len(c) for c in calls}) != 1:
        return None
    n = len(calls[0])
    texts: list[str] = []
    names: dict[tuple[int, ...], str] = {}
    for i in range(n):
        args = [c[i] for c in calls]
        if all("value" in a for a in args):
            texts.append(repr(args[0]["value"]))
            continue
        if not all("shape" in a and a["dtype"].startswith(("float", "bfloat")) for a in args):
            return None
        if len({len(a["shape"]) for a in args}) != 1:
            return None
        dims = []
        for d in range(len(args[0]["shape"])):
            sizes = tuple(a["shape"][d] for a in args)
            if len(set(sizes)) == 1:
                dims.append(str(sizes[0]))
            else:
                dims.append(names.setdefault(sizes, f"d{len(names)}"))
        texts.append(f"fg.tensor({' '.join(dims)!r})")
    return Contract("traced", tuple(texts))
