"""``events.jsonl``: a run's findings as they happen, one JSON object per line, fsync'd at once,
so that a run killed at any moment (SIGKILL included) keeps what it found."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class EventLog:
    """``events.jsonl``: one JSON object per line, flushed and fsync'd as each event happens."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def write(self, event: str, **fields: Any) -> None:
        from fuzzgrad.report.common import redact
        from fuzzgrad.report.results import now

        line = json.dumps({"event": event, "time": now(), **fields}, sort_keys=True, default=str)
        line = redact(line)  # no credential reaches the log (a database URL in a message)
        self.file.write(line + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()
