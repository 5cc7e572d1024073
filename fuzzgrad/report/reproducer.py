"""Reproducers: standalone Python files that rebuild a shrunk failing case bit for bit.

A reproducer is one readable file: a docstring that says what failed on which inputs (their
values, when small), the case itself as a JSON data block (each tensor's whole storage, so
strides, storage offset and the NaN garbage around a view are exact; never a pickle), and a few
lines that hand both to `fuzzgrad.engine.replay`, which checks the property through the same
code the run used, so the verdict is the run's. It exits 1 while the bug is there and 0 once it
is fixed, with a one-line message; 2 when it cannot run at all (the target is gone).

One file per failure signature (`fuzzgrad.report.common.failure_signature`): two bugs of one
property of one target get two files. The file is put together by concatenation, never by
substituting placeholders, and every piece of user text in it (target names, messages,
diagnoses) is escaped for the place it goes, so none of it can end the docstring or the data
block, or become code.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import zlib
from pathlib import Path
from typing import Any

import torch

from fuzzgrad.errors import ReproducerError
from fuzzgrad.properties.checker import describe_cotangents, describe_inputs
from fuzzgrad.registry.target import file_safe
from fuzzgrad.report.common import (
    describe_cotangent,
    describe_input,
    failure_signature,
    write_atomically,
)

#: The version of the data block written (and the newest `read_reproducer` reads). Version 1
#: reproducers carried their own copy of the comparison rules; they still run as they are.
FORMAT_VERSION = 2
#: Properties of reproducers that replay an error of the run rather than a property: the worker
#: process died (``crash``), an example ran past ``--example-timeout`` (``timeout``), or
#: fuzzgrad itself raised on an example (``exception``).
ERROR_KINDS = ("crash", "timeout", "exception")


def storage_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a tensor's whole storage (what a view is cut from)."""
    storage = t.untyped_storage()
    if storage.device.type != "cpu":
        storage = storage.cpu()
    if storage.nbytes() == 0:
        return b""
    return torch.empty(0, dtype=torch.uint8).set_(storage).numpy().tobytes()


def encode_tensor(t: torch.Tensor, level: int = 9) -> dict[str, Any]:
    """A JSON-safe description from which `decode_tensor` rebuilds ``t`` bit for bit
    (``level``: zlib's, 1 where speed matters more than size). A lazy conjugate view keeps its
    storage as it is and says ``"conj": true``."""
    spec = {
        "dtype": str(t.dtype).replace("torch.", ""),
        "size": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "device": str(t.device),
        "data": base64.b64encode(zlib.compress(storage_bytes(t), level)).decode("ascii"),
    }
    if t.is_conj():
        spec["conj"] = True
    return spec


def decode_tensor(spec: dict[str, Any]) -> torch.Tensor:
    """Inverse of `encode_tensor`."""
    dtype = getattr(torch, spec["dtype"])
    raw = zlib.decompress(base64.b64decode(spec["data"], validate=True))
    base = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
    base = base.to(spec["device"])
    view = base.as_strided(spec["size"], spec["stride"], spec["storage_offset"])
    return view.conj() if spec.get("conj") else view


def encode_value(x: Any, level: int = 9) -> Any:
    if isinstance(x, torch.Tensor):
        return {"tensor": encode_tensor(x, level)}
    if x is None or isinstance(x, (bool, int, float, str)):
        return {"literal": x}
    if isinstance(x, (tuple, list)):
        return {"sequence": [encode_value(v, level) for v in x], "tuple": isinstance(x, tuple)}
    raise ReproducerError(
        f"cannot write a reproducer for an argument of type {type(x).__name__}; reproducers hold "
        "tensors, numbers, strings, None and tuples/lists of them."
    )


def decode_value(v: Any) -> Any:
    """Inverse of `encode_value`."""
    if "literal" in v:
        return v["literal"]
    if "sequence" in v:
        seq = [decode_value(x) for x in v["sequence"]]
        return tuple(seq) if v["tuple"] else seq
    return decode_tensor(v["tensor"])


def encode_recipes(recipes) -> list[dict[str, Any]]:
    """A case's cotangent recipes (values and layout) as JSON, for `decode_recipes`."""
    return [dataclasses.asdict(r) for r in recipes]


def decode_recipes(data: list[dict[str, Any]]) -> tuple:
    """Inverse of `encode_recipes`: the recipes that rebuild the case's cotangents."""
    from fuzzgrad.strategies import CotangentRecipe, Layout, Values

    out = []
    for r in data:
        values = dict(r["values"])
        values["injections"] = tuple(tuple(i) for i in values.get("injections", ()))
        out.append(CotangentRecipe(Values(**values), Layout(**r["layout"]), r.get("unused", 0)))
    return tuple(out)


def unshrunk_path(directory: Path, name: str, prop: str) -> Path:
    """Where the reproducer of a finding of target ``name`` not shrunk yet is written."""
    return directory / f"repro_{file_safe(name)}_{file_safe(prop)}_unshrunk.py"


def drop_unshrunk(report_dir: Path | str | None, name: str, prop: str, reproducer: str | None):
    """A shrunk failure's reproducer replaces the one written when it was found (in
    ``report_dir``), once the failure is logged (`Recorder.failure`)."""
    if report_dir is None or not reproducer:
        return
    early = unshrunk_path(Path(report_dir), name, prop)
    if early.is_file() and early.resolve() != Path(reproducer).resolve():
        early.unlink()


def write_reproducer(
    directory: Path,
    target,
    prop: str,
    case,
    *,
    message: str,
    diagnosis: str,
    found_after: str = "",
    example_timeout: float | None = None,
    properties: list[str] | tuple[str, ...] | None = None,
    unshrunk: bool = False,
    kind: str | None = None,
    root: str | None = None,
) -> Path:
    """Write the reproducer for ``case`` under ``directory`` and return its path.

    ``unshrunk``: the example as first found, before shrinking (`unshrunk_path`, which the
    shrunk reproducer replaces).

    ``prop`` is the failing property, or one of `ERROR_KINDS`; for those, ``properties`` are the
    properties the run checked on the example (None: the target's defaults) and
    ``example_timeout`` how long it may run (the run's ``--example-timeout``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    sig = failure_signature(target.name, {"property": prop, "diagnosis": diagnosis, "kind": kind})
    path = directory / f"repro_{file_safe(target.name)}_{file_safe(prop)}_{sig}.py"
    if unshrunk:
        path = unshrunk_path(directory, target.name, prop)
    module_file = target.source_file
    data = {
        "format_version": FORMAT_VERSION,
        "target": target.name,
        "module": target.module,
        "module_file": str(Path(module_file).resolve()) if module_file else None,
        "property": prop,
        "properties": list(properties) if properties is not None else None,
        "diagnosis": diagnosis,
        "signature": sig,
        "kind": kind,
        "root": root,
        "args": [encode_value(a) for a in case.args],
        "requires_grad": [bool(r) for r in case.requires_grad],
        "cotangents": [encode_value(c) for c in case.notes.get("cotangents", [])],
        "cotangent_recipes": encode_recipes(case.cotangents),
        "direction_seed": case.direction_seed,
        # Some CPU kernels (oneDNN's bf16 matmul among them) pick their blocking, and so what
        # they compute, by thread count: the replay runs with the count the failure was found at.
        "threads": torch.get_num_threads(),
        "example_timeout": example_timeout,
    }
    header = _describe(target, prop, case, message, diagnosis, found_after, example_timeout)
    parts = (_HEAD, _docstring(header), _IMPORTS, _DATA_START, _block(data), _DATA_END, _MAIN)
    text = "".join(parts)
    write_atomically(path, text)  # a full disk leaves no empty reproducer
    return path


def _block(data: dict[str, Any]) -> str:
    # ensure_ascii: the block is plain ASCII, and every quote in it is escaped, so no `"""`
    # can occur inside it, whatever the names and messages hold.
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=True)


def replace_data(text: str, data: dict[str, Any]) -> str:
    """A reproducer's text with its data block replaced by ``data`` (the rest kept as is)."""
    m = _DATA_BLOCK.search(text)
    if m is None:
        raise ReproducerError("not a fuzzgrad reproducer (no DATA block).")
    return text[: m.start(1)] + _block(data) + text[m.end(1) :]


def _describe(target, prop, case, message, diagnosis, found_after, timeout) -> str:
    what = f"property {prop!r}" if prop not in ERROR_KINDS else f"{prop} (an error of the run)"
    lines = [
        f"fuzzgrad reproducer: target {target.name!r} ({target.display_module}), {what}.",
        "",
        f"Failure: {message}",
        f"Diagnosis: {diagnosis}",
    ]
    if found_after:
        lines.append(found_after)
    lines += ["", "Inputs (shrunk):"]
    for arg, a in zip(describe_inputs(case, target), case.args):
        line = f"  {describe_input(arg)}"
        if isinstance(a, torch.Tensor) and "values" not in arg and a.numel():
            line += f" first values {a.detach().cpu().reshape(-1)[:8].tolist()} ..."
        lines.append(line)
    lines += [f"  {describe_cotangent(c)}" for c in describe_cotangents(case)]
    lines += ["", f"Runs with torch.set_num_threads({torch.get_num_threads()}), as the run did."]
    if prop in ("crash", "timeout"):
        limit = f"{timeout:g}s" if timeout else "no limit"
        lines.append(f"Runs the example in a child process (time limit {limit}, the run's).")
    lines += [
        "Run: python THIS_FILE  (exit 1 while the bug is there, 0 once it is fixed)",
        "Explore: python -i THIS_FILE --load  (then look at target, case.args, case.notes)",
    ]
    return "\n".join(lines)


def _docstring(text: str) -> str:
    """``text`` as the body of a ``\"\"\"`` docstring that nothing in it can end: backslashes and
    quotes are escaped, and any character a terminal or an editor could act on (controls,
    ANSI escapes, line separators, bidirectional overrides, lone surrogates) is written as an
    escape that shows as text."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" or ch == " " or ch.isprintable():
            out.append(ch)
        else:
            out.append("\\\\" + ch.encode("unicode_escape").decode("ascii").lstrip("\\"))
    return "".join(out)


_HEAD = '#!/usr/bin/env python\n"""'
_IMPORTS = '\n"""\nimport json\nimport sys\n\n'
_DATA_START = (
    "# The shrunk case, exactly: each tensor's whole storage (zlib, base64), shape, stride and\n"
    "# offset; the cotangents (grad_output); the property; the run's thread count.\n"
    'DATA = json.loads(r"""'
)
_DATA_END = '""")\n'
_MAIN = '''

def main(argv):
    """Rebuild the case and check it through fuzzgrad's own replay, so the verdict is the
    run's: exit 1 while the bug is there, 0 once it is fixed."""
    from fuzzgrad.engine.replay import run_reproducer

    return run_reproducer(DATA, __file__, argv)


if __name__ == "__main__":
    if sys.argv[1:] == ["--load"]:  # python -i THIS_FILE --load: the case, to explore
        from fuzzgrad.engine.replay import load_case

        target, case = load_case(DATA, __file__)
    else:
        sys.exit(main(sys.argv[1:]))
'''

_DATA_BLOCK = re.compile(r'^DATA = json\.loads\(r"""(.*?)"""\)', re.S | re.M)


def read_reproducer(path: str | Path) -> dict[str, Any]:
    """The data block of a reproducer file (target, property, args...), checked: a file that is
    not UTF-8, has no data block, or whose block is malformed raises `ReproducerError` with one
    line saying so."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ReproducerError(f"fuzzgrad: cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ReproducerError(
            f"fuzzgrad: {path} is not a fuzzgrad reproducer (not UTF-8 text: byte {exc.start})."
        ) from exc
    m = _DATA_BLOCK.search(text)
    if m is None:
        raise ReproducerError(f"fuzzgrad: {path} is not a fuzzgrad reproducer (no DATA block).")
    try:
        data = json.loads(m.group(1))
    except json.JSONDecodeError as exc:
        raise ReproducerError(
            f"fuzzgrad: the DATA block of {path} is not valid JSON ({exc.msg}, line {exc.lineno})."
        ) from exc
    problem = _check_data(data)
    if problem:
        raise ReproducerError(f"fuzzgrad: the DATA block of {path} is malformed: {problem}.")
    return data


def _check_data(data: Any) -> str | None:
    """What is wrong with a reproducer's data block, or None."""
    if not isinstance(data, dict):
        return f"expected an object, got {type(data).__name__}"
    version = data.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        return (
            f"format_version {version!r} is not one this fuzzgrad reads (1 to {FORMAT_VERSION}); "
            "upgrade fuzzgrad, or re-run the fuzzing that wrote it"
        )
    fields: dict[str, Any] = {
        "target": str,
        "module": str,
        "module_file": (str, type(None)),
        "property": str,
        "args": list,
        "requires_grad": list,
        "cotangents": list,
    }
    if version >= 2:
        fields.update(
            cotangent_recipes=list,
            direction_seed=int,
            threads=(int, type(None)),
            example_timeout=(int, float, type(None)),
            properties=(list, type(None)),
        )
    for key, kind in fields.items():
        if key not in data:
            return f"{key!r} is missing"
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            return f"{key!r} is {type(data[key]).__name__}, not {_kind_name(kind)}"
    if not all(isinstance(r, bool) for r in data["requires_grad"]):
        return "'requires_grad' must be a list of true/false"
    if len(data["requires_grad"]) != len(data["args"]):
        return "'requires_grad' and 'args' differ in length"
    if data.get("properties") is not None and not all(
        isinstance(p, str) for p in data["properties"]
    ):
        return "'properties' must be a list of names"
    for key in ("args", "cotangents"):
        for i, value in enumerate(data[key]):
            try:
                decode_value(value)
            except Exception as exc:  # noqa: BLE001 - whatever is wrong, say where
                return f"{key}[{i}] cannot be decoded ({_decode_error(exc)})"
    if version >= 2:
        try:
            decode_recipes(data["cotangent_recipes"])
        except Exception as exc:  # noqa: BLE001
            return f"'cotangent_recipes' cannot be decoded ({_decode_error(exc)})"
    return None


def _decode_error(exc: Exception) -> str:
    if isinstance(exc, (KeyError, TypeError, AttributeError)):
        return f"missing or mistyped field: {exc}"
    if isinstance(exc, (binascii.Error, zlib.error)):
        return f"tensor data is not base64 of zlib: {exc}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", list: "a list", int: "an integer", float: "a number"}
    return " or ".join(names.get(k, "null") for k in kinds)
