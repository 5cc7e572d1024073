"""What a worker that died or was killed leaves behind: the ``error`` of the slice it was
running, with the example (from its scratch file), a reproducer of it, the faulthandler trace,
and a signature that tells one crash site from another."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from fuzzgrad.nightly.plan import Plan, hung


def fault_trace(scratch: Path, pid: int | None) -> str:
    fault = scratch / f"fault-{pid}.txt"
    return fault.read_text(errors="replace")[-4000:] if fault.exists() else ""


def crash_error(worker, plan: Plan, target, shrinking: bool) -> dict[str, Any] | None:
    """The ``error`` of a slice whose worker died or was killed, with the example it was running
    and a reproducer of it; None when the slice's time ran out while it was shrinking a finding
    (``shrinking``), or during an example that had not run long enough to count as hung (see
    `hung`): no fault of the target's."""
    return facts_error(worker_facts(worker), plan, target, shrinking)


def worker_facts(worker) -> dict[str, Any]:
    """What is known of a worker that died or was killed, as JSON (a Ray task sends it to the
    run's driver, which writes the report): its exit status, why it was killed and how long
    its example had run then, its slice, its faulthandler trace and the example it was running
    (from its scratch file)."""
    pid = worker.proc.pid
    from fuzzgrad.nightly.worker import read_case

    case = read_case(worker.scratch / f"case-{pid}.json")
    ran = worker.killed_at - worker.example_started if worker.example_started else 0.0
    return {
        "exitcode": worker.proc.exitcode,
        "killed_for": worker.killed_for,
        "ran": ran,
        "examples": worker.examples,
        "slice_seconds": (worker.task or {}).get("seconds"),
        "trace": fault_trace(worker.scratch, pid),
        "case": case,
    }


def facts_error(
    facts: dict[str, Any], plan: Plan, target, shrinking: bool
) -> dict[str, Any] | None:
    """`crash_error` from `worker_facts`, with the reproducer written under ``plan.report_dir``."""
    trace = facts.get("trace") or ""
    n = int(facts.get("examples") or 0)
    reason = facts.get("killed_for")
    if reason == "slice":
        if shrinking or not hung(facts.get("ran") or 0.0, plan.example_timeout,
                                 facts.get("slice_seconds")):  # fmt: skip
            return None
    if reason in ("timeout", "slice", "interrupted"):
        kind = "timeout"
        why = {
            "timeout": f"ran longer than {plan.hard_limit():g}s (hung outside Python?)",
            "slice": "was still running when the target's time ran out (hung outside Python?)",
            "interrupted": "was running when the run was stopped",
        }[reason]
        message = f"example {n} {why}; its worker was killed"
        signature = "timeout"
    else:
        code = facts.get("exitcode")
        signame = signal.Signals(-code).name if code and code < 0 else f"exit status {code}"
        message = f"the worker process died ({signame}) while running example {n}"
        kind = "crash"
        signature = f"{signame} {_top_frame(trace)}".strip()
    error: dict[str, Any] = {
        "kind": kind,
        "message": message,
        "traceback": trace,
        "example": n,
        "signature": signature,
    }
    data = facts.get("case")
    if isinstance(data, dict) and n and data.get("target") == target.name:
        error["example"] = data.get("example", n)
        error["inputs"] = data.get("inputs")
        error["reproducer"] = _rebuild_reproducer(plan, target, kind, data, message)
    return error


def lost_record(
    target, error: dict[str, Any] | None, examples: int, seconds: float, failures: list
) -> dict[str, Any]:
    """The record of a slice whose worker died or was killed: its ``error`` (None: no fault of
    the target's), examples run, and what it found before."""
    from fuzzgrad.engine.records import xfail_info
    from fuzzgrad.report.events import record_status

    record = {
        "name": target.name,
        "module": target.display_module,
        "error": error,
        "examples": examples,
        "seconds": round(seconds, 3),
        "failures": failures,
        **xfail_info(target),
    }
    record["status"] = record_status(record)
    return record


def stopped(error: dict[str, Any], count: int) -> None:
    """Say in ``error`` that the target stopped after dying ``count`` times at one place."""
    if count > 1:
        error["message"] += f" ({count} times at the same place; the target stopped)"


def _top_frame(trace: str) -> str:
    """Where a faulthandler trace says the crashing thread was: its innermost frame."""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', trace.split("\n\n")[0])
    if not frames:
        return ""
    path, line, function = frames[0]  # faulthandler lists the innermost frame first
    return f"{Path(path).name}:{line} {function}"


def _rebuild_reproducer(plan: Plan, target, kind: str, data: dict, message: str) -> str | None:
    """A reproducer of the example a dead worker was running: its inputs and cotangent recipes
    (the cotangents themselves are made from them when the example runs)."""
    from fuzzgrad.report.reproducer import decode_recipes, decode_value, write_reproducer
    from fuzzgrad.strategies import Case

    if "args" not in data:
        return None
    try:
        grad = tuple(data["requires_grad"])
        case = Case(
            tuple(decode_value(a) for a in data["args"]),
            grad,
            decode_recipes(data.get("cotangent_recipes") or []),
            notes={"wrt": [i for i, g in enumerate(grad) if g]},
        )
        diagnosis = "crashes the process" if kind == "crash" else "hangs"
        path = write_reproducer(
            plan.report_dir, target, kind, case, message=message, diagnosis=diagnosis,
            example_timeout=plan.example_timeout, properties=plan.properties,
        )  # fmt: skip
        return str(path)
    except Exception:  # noqa: BLE001 - the error record matters more than its reproducer
        return None
