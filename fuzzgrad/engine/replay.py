"""Replaying a saved case: what every reproducer runs (see `fuzzgrad.report.reproducer`).

A reproducer's verdict is the run's because it is reached by the same code: the case is rebuilt
bit for bit and checked by a `Checker` with the failing property alone. Reproducers of errors
of the run replay the example the run was on: ``exception`` in this process (does fuzzgrad still
raise on it?), ``crash`` and ``timeout`` in a child process, which may die or hang without taking
the reproducer with it: it reports the signal, or kills the child once it has run longer than
the run's ``--example-timeout``.

Exit status, always with a one-line verdict last: 0 once the bug is fixed, 1 while it is there,
2 when the reproducer cannot run (its target is gone, or the property cannot be judged here).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from fuzzgrad.oracles.evaluation import floating
from fuzzgrad.properties.checker import Checker, Discard, PropertyFailure
from fuzzgrad.report.common import terminal_safe
from fuzzgrad.report.reproducer import decode_recipes, decode_value
from fuzzgrad.strategies import Case, CotangentRecipe, Values

FIXED, STILL_THERE, CANNOT_RUN = 0, 1, 2
#: The example time limit of a crash reproducer whose run had none (seconds).
DEFAULT_TIMEOUT = 30.0
#: How long the child of a crash or hang reproducer may take to import torch and the target.
STARTUP_LIMIT = 180.0
#: Properties whose replay also prints the numbers behind the verdict: the Function's outputs
#: and gradients next to each reference's.
_SHOWN = ("forward", "vjp", "requires_grad_subsets")
#: What the child of a crash or hang reproducer prints around the example, for its parent.
_STARTED, _FINISHED = "fuzzgrad-replay: example started", "fuzzgrad-replay: example finished"


class ReplayError(Exception):
    """The reproducer cannot run: its target's module or the target itself is gone."""


def _say(text: str) -> None:
    print(terminal_safe(text, newlines=False), flush=True)


def load_target(data: dict[str, Any], path: str | Path | None = None):
    """Import the module that registered the target (by name, else by file) and return the
    target. A regression test (`fuzzgrad repro --pytest`) gives ``module_file`` and
    ``project_root`` relative to its own folder (``path``'s), so that it runs in any clone: the
    project root goes on ``sys.path``, where the module is found by its name."""
    from fuzzgrad.registry.discovery import _import_file
    from fuzzgrad.registry.target import MODULE_ATTR

    name, file = data["module"], data.get("module_file")
    base = Path(path).resolve().parent if path else Path.cwd()
    if isinstance(data.get("project_root"), str):
        root = str((base / data["project_root"]).resolve())
        if root not in sys.path:
            sys.path.insert(0, root)
    if file and not Path(file).is_absolute():
        file = str((base / file).resolve())
    try:
        module = importlib.import_module(name)
    except ImportError:
        if not file:
            raise ReplayError(f"cannot import the target's module {name!r}") from None
        try:
            module = _import_file(Path(file), name)
        except Exception as exc:  # noqa: BLE001 - the module's own error, in one line
            raise ReplayError(
                f"cannot import the target's module {name!r} from {file}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    targets = getattr(module, MODULE_ATTR, {})
    if data["target"] not in targets:
        raise ReplayError(f"module {name!r} no longer registers a target {data['target']!r}")
    return targets[data["target"]]


def load_case(data: dict[str, Any], path: str | Path | None = None):
    """The target and the exact case of a reproducer's data block (``path``: the reproducer's
    file, which relative paths in it are relative to)."""
    target = load_target(data, path)
    args = tuple(decode_value(a) for a in data["args"])
    cotangents = [decode_value(c) for c in data["cotangents"]]
    recipes = decode_recipes(data.get("cotangent_recipes") or []) or (
        CotangentRecipe(Values(seed=data.get("direction_seed", 0))),
    )
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    case = Case(
        args,
        tuple(data["requires_grad"]),
        recipes,
        (None,) * len(args),
        next((a.dtype for a in args if floating(a)), None),
        str(tensors[0].device) if tensors else "cpu",
        # the cotangents the run used, when it got as far as making them
        {"fixed_cotangents": cotangents} if cotangents else {},
    )
    return target, case


def run_reproducer(data: dict[str, Any], path: str, argv: list[str] | tuple[str, ...] = ()) -> int:
    """What a reproducer file runs: rebuild the case, check it, print the verdict, and return
    the exit status (see the module docstring). ``argv`` ``--child``: this is the child process
    of a crash or hang reproducer."""
    if data.get("threads"):
        torch.set_num_threads(int(data["threads"]))
    prop = data["property"]
    try:
        target, case = load_case(data, path)
    except ReplayError as exc:
        _say(f"CANNOT RUN: {exc}")
        return CANNOT_RUN
    if "--child" in argv:
        return _child(target, case, data.get("properties"))
    where = target.display_module
    _say(f"fuzzgrad reproducer: target {target.name!r} ({where}), property {prop!r}")
    if prop in ("crash", "timeout"):
        return _in_child(path, prop, data.get("example_timeout"))
    if prop == "exception":
        return _exception(target, case, data.get("properties"))
    runs = replays_asked(argv)
    fresh = (lambda: load_case(data, path)[1]) if runs > 1 else None
    return replay_case(target, prop, case, data.get("root"), runs=runs, fresh=fresh)


#: How often a reproducer checks its case by default: a nondeterministic Function may pass a
#: single replay while the bug is there.
REPLAYS = 5


def replays_asked(argv: list[str] | tuple[str, ...]) -> int:
    """``--runs N`` among a reproducer's arguments (default `REPLAYS`)."""
    argv = list(argv)
    if "--runs" in argv:
        i = argv.index("--runs")
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if value.isdigit() and int(value) >= 1:
            return int(value)
        raise SystemExit(f"--runs takes a number >= 1, not {value!r}")
    return REPLAYS


def replay_case(
    target, prop: str, case, root: str | None = None, *, runs: int = 1, fresh=None
) -> int:
    """Check ``prop`` on exactly this case, ``runs`` times (each on a case from ``fresh``, when
    given, after the first); print the verdict; 1 if it fails (with ``root``, when given: the
    reproducer's own finding, not another), else 0. A case that fails some of the runs and
    passes others is ``FLAKY: failed k of N``, still a bug (1): a nondeterministic Function
    that passes one replay has not been fixed."""
    outcomes = []
    for n in range(runs):
        checker = Checker(target, properties=[prop], jax_share=1.0)
        if not checker.selected:
            _say(f"CANNOT RUN: property {prop!r} does not apply to {target.name!r} here")
            return CANNOT_RUN
        this = case if n == 0 or fresh is None else fresh()
        outcomes.append((*_check_once(checker, prop, this, root), checker, this))
        if outcomes[-1][0] == CANNOT_RUN:
            break
    failed = [o for o in outcomes if o[0] == STILL_THERE]
    code, verdict, checker, shown = failed[0] if failed else outcomes[0]
    if failed and len(failed) < len(outcomes):
        verdict = f"FLAKY: failed {len(failed)} of {len(outcomes)} replays; {verdict}"
    if prop in _SHOWN:
        _show(checker, shown)
    _say(verdict)
    return code


def _check_once(checker: Checker, prop: str, case, root: str | None) -> tuple[int, str]:
    """One check of the case: the exit status and the verdict's line."""
    code, verdict = FIXED, f"PASS: property {prop!r} holds on this input (bug fixed?)"
    try:
        checker.check(case)
    except PropertyFailure as exc:
        from fuzzgrad.verdict.identity import root_of

        code, verdict = STILL_THERE, f"FAIL ({exc.property}): {exc.message}"
        if root is not None and root_of(exc) != root:
            code = FIXED
            verdict = (
                f"PASS for this finding ({root}): {prop!r} fails here with another one "
                f"instead: {exc.message}"
            )
    except Discard as exc:
        verdict = f"DISCARDED: {exc} (outside the math's domain: the bug no longer shows)"
    except Exception as exc:  # noqa: BLE001 - fuzzgrad itself raised on this input
        code = STILL_THERE
        verdict = f"FAIL: fuzzgrad raised {type(exc).__name__} checking {prop!r}: {exc}"
    else:
        if not checker.stats.checked.get(prop):
            why = "; ".join(checker.stats.skipped) or "skipped"
            code, verdict = CANNOT_RUN, f"CANNOT JUDGE: {why}"
    return code, verdict


def replay(
    target, prop: str, args: list[Any], wrt: list[int], cotangents: list[Any], direction_seed=0
) -> int:
    """`replay_case` on a case given by parts (what format-1 reproducers call)."""
    rg = tuple(i in wrt for i in range(len(args)))
    case = Case(
        tuple(args),
        rg,
        (CotangentRecipe(Values(seed=direction_seed)),),
        (None,) * len(args),
        next((a.dtype for a in args if floating(a)), None),
        next((str(a.device) for a in args if isinstance(a, torch.Tensor)), "cpu"),
        {"fixed_cotangents": list(cotangents)},
    )
    return replay_case(target, prop, case)


def _show(checker: Checker, case) -> None:
    """Print the Function's outputs and gradients next to each reference's."""
    from fuzzgrad.oracles.case_dtype import case_dtype, with_case_dtype
    from fuzzgrad.oracles.torch_ref import torch_oracle, torch_vjp

    target = checker.target
    args, wrt = list(case.args), list(case.notes.get("wrt", []))
    cts = case.notes.get("cotangents")
    reference = with_case_dtype(checker.judge.base_reference, case_dtype(case))
    jax_reference = with_case_dtype(target.jax_reference, case_dtype(case))

    def custom():
        try:
            return torch_vjp(target.fn, args, wrt, cts)
        except RuntimeError:  # it writes into its inputs: call it on copies, as the run does
            copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
            return torch_vjp(target.fn, copies, wrt, cts)

    evaluations = [("custom", custom)]
    if reference is not None:
        evaluations.append(
            ("torch reference (float64)", lambda: torch_oracle(reference, args, wrt, cts))
        )
    if jax_reference is not None:
        from fuzzgrad.oracles.jax_ref import shared_jax

        evaluations.append(
            (
                "JAX reference (float64)",
                lambda: shared_jax()(jax_reference, args, wrt, cts),
            )
        )
    for label, evaluate in evaluations:
        try:
            result = evaluate()
        except Exception as exc:  # noqa: BLE001 - shown, not judged
            print(terminal_safe(f"{label}: raised {type(exc).__name__}: {exc}"))
            continue
        for k, out in enumerate(result.outputs):
            print(f"{label} output[{k}]: {out}")
        for i in wrt:
            print(f"{label} grad[input={i}]: {result.grads[i]}")


def _check_all(checker: Checker, case) -> BaseException | None:
    """Check the properties the run checked on this example (printing their failures); what
    fuzzgrad raised doing so, or None."""
    try:
        for prop, failure in checker.run(case).items():
            _say(f"({prop} fails here: {failure.message})")
    except Discard as exc:
        _say(f"(discarded: {exc})")
    except Exception as exc:  # noqa: BLE001 - what an ``exception`` reproducer looks for
        return exc
    return None


def _exception(target, case, properties) -> int:
    error = _check_all(Checker(target, properties, jax_share=1.0), case)
    if error is None:
        _say("PASS: fuzzgrad no longer raises on this example (bug fixed?)")
        return FIXED
    _say(f"FAIL: fuzzgrad still raises {type(error).__name__} on this example: {error}")
    return STILL_THERE


def _child(target, case, properties) -> int:
    """The child of a crash or hang reproducer: run the example between two marker lines
    (the checker is made first, so importing what it needs is not timed)."""
    import faulthandler

    faulthandler.enable()  # a crash prints where it happened
    checker = Checker(target, properties, jax_share=1.0)
    print(_STARTED, flush=True)
    error = _check_all(checker, case)
    if error is not None:
        _say(f"(fuzzgrad raised {type(error).__name__}: {error})")
    print(_FINISHED, flush=True)
    return FIXED


def _in_child(path: str, prop: str, timeout: float | None) -> int:
    """Run this reproducer's example in a child process; report a crash by its signal and
    a hang once the example has run ``timeout`` seconds."""
    limit = float(timeout or DEFAULT_TIMEOUT)
    proc = subprocess.Popen(
        [sys.executable, path, "--child"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: a hang is killed with its children
    )
    started, finished = threading.Event(), threading.Event()
    began: list[float] = []

    def pump() -> None:
        for line in proc.stdout or ():
            if line.startswith(_STARTED):
                began.append(time.monotonic())
                started.set()
            elif line.startswith(_FINISHED):
                finished.set()
            else:
                sys.stdout.write(terminal_safe(line))
                sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    startup_deadline = time.monotonic() + STARTUP_LIMIT
    while not finished.wait(0.05):
        if proc.poll() is not None:
            reader.join(5)  # what it printed last, the finished marker included
            break
        if started.is_set() and time.monotonic() - began[0] > limit:
            _kill(proc)
            what = "hangs" if prop == "timeout" else "no longer crashes the process, but hangs"
            _say(
                f"FAIL: the example {what}: still running after {limit:g}s (the run's "
                "--example-timeout); killed"
            )
            return STILL_THERE
        if not started.is_set() and time.monotonic() > startup_deadline:
            _kill(proc)
            _say(f"CANNOT RUN: the child process did not start the example in {STARTUP_LIMIT:g}s")
            return CANNOT_RUN
    if finished.is_set():
        seconds = time.monotonic() - began[0]
        try:
            proc.wait(60)  # the interpreter's own shutdown, not the example
        except subprocess.TimeoutExpired:
            _kill(proc)
        _say(
            f"PASS: the example ran to the end in {seconds:.1f}s (limit {limit:g}s) without "
            "crashing or hanging (bug fixed?)"
        )
        return FIXED
    how = _how(proc.returncode)
    if not started.is_set():
        _say(f"CANNOT RUN: the child process died ({how}) before the example started")
        return CANNOT_RUN
    what = "crashes" if prop == "crash" else "no longer hangs, but crashes"
    _say(f"FAIL: the example {what} the process ({how})")
    return STILL_THERE


def _how(code: int) -> str:
    """How a process ended: ``signal SIGSEGV`` or ``exit status 3``."""
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
