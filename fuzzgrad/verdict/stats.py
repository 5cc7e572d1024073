"""What a run explored, for reports: counts, coverage, the error distribution and the cases
that were not judged (discarded, ambiguous), with examples of them."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

#: Bucket edges (log10 of worst error / tolerance per case) of `Stats.histogram`.
RATIO_EDGES = tuple(range(-12, 4, 2))
#: Examples of each kind of unjudged case kept for the report.
KEEP_EXAMPLES = 2


@dataclass
class Stats:
    """What a run explored: counts, coverage, error distribution, unjudged cases."""

    examples: int = 0
    discards: Counter = field(default_factory=Counter)
    #: Inputs of the first discarded cases (`describe` records), for the report.
    discard_examples: list[dict[str, Any]] = field(default_factory=list)
    ambiguous: int = 0
    #: How often each excuse spoke, by rule name (`fuzzgrad.verdict.rules`).
    excused: Counter = field(default_factory=Counter)
    #: Cases on which each property was checked (a property that never ran checked nothing).
    checked: Counter = field(default_factory=Counter)
    #: Cases skipped for a property because something it needs failed already (say the
    #: Function raised in forward, reported once under ``forward``), by reason.
    skipped: Counter = field(default_factory=Counter)
    jax_runs: int = 0
    #: Seconds spent compiling (the ``compile`` property), for its time share.
    compile_seconds: float = 0.0
    coverage: dict[str, Counter] = field(
        default_factory=lambda: {
            k: Counter() for k in ("dtype", "layout", "dtype_layout", "ndim", "numel")
        }
    )
    ratio_hist: Counter = field(default_factory=Counter)
    first_failure: dict[str, float] = field(default_factory=dict)
    oracle_note: str | None = None
    #: fuzzgrad's own exceptions while checking, per raising site: the property, the message,
    #: the first traceback and how often (see `record_internal`).
    internal: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def record_case(self, case) -> None:
        from fuzzgrad.strategies import describe_layout

        self.examples += 1
        for a in case.args:
            if not isinstance(a, torch.Tensor):
                continue
            dt = str(a.dtype).replace("torch.", "")
            lay = describe_layout(a)
            self.coverage["dtype"][dt] += 1
            self.coverage["layout"][lay] += 1
            self.coverage["dtype_layout"][f"{dt}|{lay}"] += 1
            self.coverage["ndim"][str(a.dim())] += 1
            self.coverage["numel"][_numel_bucket(a.numel())] += 1

    def record_internal(self, prop: str, exc: BaseException) -> None:
        """An exception of fuzzgrad's own code while checking ``prop``: reported as an internal
        error (kept once per raising site, counted), never as the Function's failure."""
        import traceback

        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
        key = f"{type(exc).__name__} at {where}"
        entry = self.internal.get(key)
        if entry is None:
            self.internal[key] = {
                "property": prop,
                "message": f"{type(exc).__name__}: {exc}"[:500],
                "site": key,
                "count": 1,
                "traceback": "".join(traceback.format_exception(exc))[-4000:],
            }
        else:
            entry["count"] += 1

    def record_discard(self, reason: str, inputs: list[dict[str, Any]] | None) -> None:
        self.discards[reason] += 1
        if inputs is not None and len(self.discard_examples) < KEEP_EXAMPLES:
            self.discard_examples.append({"reason": reason, "inputs": inputs})

    def record_ratio(self, ratio: float) -> None:
        """One case's worst error / tolerance over its comparisons (after every widening), in
        the bucket ``(10**e, 10**(e + 2)]`` of its edge ``e``: a case within tolerance (ratio at
        most 1) is always below edge 0."""
        if ratio <= 0:
            b = RATIO_EDGES[0]
        elif not math.isfinite(ratio):
            b = RATIO_EDGES[-2]
        else:
            b = 2 * math.ceil(math.log10(ratio) / 2) - 2
            b = max(RATIO_EDGES[0], min(RATIO_EDGES[-2], b))
        self.ratio_hist[b] += 1

    def histogram(self) -> dict[str, list]:
        edges = list(RATIO_EDGES)
        return {"edges": edges, "counts": [self.ratio_hist.get(e, 0) for e in edges[:-1]]}

    def merge(self, other: Stats) -> None:
        """Add another run's counts (rounds of one target)."""
        self.examples += other.examples
        self.discards.update(other.discards)
        room = KEEP_EXAMPLES - len(self.discard_examples)
        self.discard_examples.extend(other.discard_examples[: max(0, room)])
        self.ambiguous += other.ambiguous
        self.excused.update(other.excused)
        self.checked.update(other.checked)
        self.skipped.update(other.skipped)
        self.jax_runs += other.jax_runs
        self.compile_seconds += other.compile_seconds
        for key, counter in other.coverage.items():
            self.coverage.setdefault(key, Counter()).update(counter)
        self.ratio_hist.update(other.ratio_hist)
        for prop, seconds in other.first_failure.items():
            self.first_failure.setdefault(prop, seconds)
        self.oracle_note = self.oracle_note or other.oracle_note
        for key, entry in other.internal.items():
            if key in self.internal:
                self.internal[key]["count"] += entry["count"]
            else:
                self.internal[key] = dict(entry)


def _numel_bucket(n: int) -> str:
    if n <= 1:
        return str(n)
    return "2-8" if n <= 8 else "9-64" if n <= 64 else ">64"
