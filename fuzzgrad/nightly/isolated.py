"""One target at a time in a worker process, for the pytest plugin: `Isolated`.

A target that segfaults or aborts while the plugin fuzzes it ends as an ``error`` of kind
``crash``, with a reproducer of the example it was running, and the test session goes on.
The worker is the nightly pool's (forked from the fork server, its own process group).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fuzzgrad.nightly.crash import crash_error, fault_trace
from fuzzgrad.nightly.plan import Plan
from fuzzgrad.nightly.pool import Worker, stop_workers


class Isolated:
    """Fuzz targets one at a time in a worker process, for the pytest plugin: a target that
    segfaults or aborts ends as an ``error`` of kind ``crash`` with a reproducer of the example
    it was running, and the test session goes on (the next target gets a fresh worker)."""

    def __init__(
        self, specs: list[str], report_dir: Path, scratch: Path, *, database: str | None,
        threads: int,
    ):  # fmt: skip
        self.plan = Plan(
            specs=list(specs), targets=[], report_dir=report_dir, database=database,
            example_timeout=None,
        )  # fmt: skip
        self.scratch, self.threads = scratch, threads
        self.worker: Worker | None = None

    def fuzz(
        self, target, *, max_examples: int, derandomize: bool, seed: int | None = None,
        properties: list[str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """``target``'s JSON result (`TargetResult.to_json`), fuzzed in the worker."""
        from fuzzgrad.engine.records import xfail_info
        from fuzzgrad.report.events import record_status, unshrunk
        from fuzzgrad.report.reproducer import drop_unshrunk

        self.plan.targets = [target]
        self.scratch.mkdir(parents=True, exist_ok=True)
        if self.worker is None:
            self.worker = Worker(self.plan, self.scratch, threads=self.threads)
        worker = self.worker
        failures: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        task = {"name": target.name, "until": None, "shrink_until": None, "seed": seed}
        task |= {"chunk": max_examples, "derandomize": derandomize, "properties": properties}
        try:
            while True:
                if worker.ready and worker.task is None:
                    worker.send(task)
                message = worker.conn.recv()
                kind = message[0]
                if kind == "ready":
                    worker.ready = True
                elif kind == "finding":
                    findings.append({"property": message[2], **message[3]})
                elif kind == "failure":
                    failures.append(message[2])
                    # the receiver removes the finding's early reproducer, as `Recorder` does
                    drop_unshrunk(self.plan.report_dir, target.name, message[2]["property"],
                                  message[2].get("reproducer"))  # fmt: skip
                elif kind == "done":
                    worker.task = None
                    return message[2]
        except (EOFError, OSError):
            worker.proc.join(5)
            worker.reap()
            self.worker = None
        if worker.task is None:  # died before it could take the target
            error: dict[str, Any] | None = {
                "kind": "crash",
                "message": f"the worker died while importing the targets "
                f"(exit status {worker.proc.exitcode})",
                "traceback": fault_trace(self.scratch, worker.proc.pid),
            }
        else:
            error = crash_error(worker, self.plan, target, shrinking=False)
        record = {
            "name": target.name,
            "module": target.display_module,
            **xfail_info(target),
            "examples": worker.examples,
            "seconds": round(
                time.monotonic() - (worker.task or {}).get("since", worker.spawned), 3
            ),
            "error": error,
            "failures": failures + unshrunk(findings, failures),
        }
        record["status"] = record_status(record)
        return record

    def close(self) -> None:
        import shutil

        if self.worker is not None:
            stop_workers([self.worker])
            self.worker = None
        shutil.rmtree(self.scratch, ignore_errors=True)
