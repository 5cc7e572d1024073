"""What a run is asked to do, fixed before it starts: `Plan`, and the option parsing behind it."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Plan:
    """Everything a run needs to know, fixed before it starts."""

    specs: list[str]  # what to import, resolved by the parent: workers import the same
    targets: list[Any]
    report_dir: Path
    max_examples: int = 200
    seed: int | None = None
    properties: list[str] | None = None
    database: str | None = None
    budget: float | None = None
    jobs: int = 1
    isolate: bool = True
    example_timeout: float | None = 30.0
    max_memory: int | None = None
    started: float = field(default_factory=time.monotonic)
    #: Folders the parent put on sys.path to find the specs (module names); workers add them too.
    sys_path: list[str] = field(default_factory=list)

    @property
    def end(self) -> float | None:
        return None if self.budget is None else self.started + self.budget

    def hard_limit(self) -> float:
        """How long one example may run before the parent kills its worker."""
        return 2 * (self.example_timeout or 30.0) + 3.0


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1h30m`` or plain seconds, as seconds."""
    import re

    number = r"(\d+(?:\.\d+)?)"
    parts = re.fullmatch(rf"\s*(?:{number}h)?\s*(?:{number}m)?\s*(?:{number}s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h)")
    h, m, s = (float(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def parse_options(args) -> dict[str, Any]:
    """Parse the nightly options; a ValueError says what is wrong."""
    out: dict[str, Any] = {"budget": None, "shard": None, "max_memory": None}
    if args.budget is not None:
        out["budget"] = parse_duration(args.budget)
    timeout = parse_duration(args.example_timeout)
    out["example_timeout"] = timeout or None
    if args.jobs == "auto":
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        out["jobs"] = len(cpus) if cpus else (os.cpu_count() or 1)
    elif args.jobs.isdigit() and int(args.jobs) > 0:
        out["jobs"] = int(args.jobs)
    else:
        raise ValueError(f"--jobs takes a positive number or 'auto', not {args.jobs!r}")
    if args.shard is not None:
        i, _, n = args.shard.partition("/")
        if not (i.isdigit() and n.isdigit() and 1 <= int(i) <= int(n)):
            raise ValueError(f"--shard takes I/N with 1 <= I <= N (e.g. 2/4), not {args.shard!r}")
        out["shard"] = (int(i), int(n))
    if args.max_memory is not None:
        out["max_memory"] = parse_memory(args.max_memory)
    return out


#: The smallest ``--max-memory``: a worker needs about 2 GiB of address space to import torch
#: and JAX (VmPeak 1.9 GiB measured on CPU), so less would end every target as a crash.
MIN_MEMORY = 2 * 2**30
#: The largest address-space limit ``setrlimit`` takes (a signed 64-bit count of bytes).
MAX_MEMORY = 2**63 - 1


def parse_memory(text: str) -> int:
    """``--max-memory``: ``16G``, ``512M``, ``1.5T``, ``16GB``, ``16GiB`` or plain bytes, from
    2 GiB (what a worker needs) up; a ValueError says what is wrong."""
    import re
    from fractions import Fraction

    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTP]?)(?:I?B)?\s*", text.upper())
    if found is None:
        raise ValueError(f"--max-memory takes a size like 16G or 512M, not {text!r}")
    size = int(Fraction(found.group(1)) * units[found.group(2)])  # exact: no float overflow
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise ValueError(
            f"--max-memory {text.strip()!r} is out of range: give at least 2G (what a worker "
            "needs to import torch and JAX) and at most 8E"
        )
    return size


def shard(targets: list[Any], index: int, count: int) -> list[Any]:
    """The targets of shard ``index`` (1-based) of ``count``: by a stable hash of the name, so a
    target stays in its shard when others are added (and keeps its cached example database)."""

    def bucket(name: str) -> int:
        return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % count

    return [t for t in targets if bucket(t.name) == index - 1]
