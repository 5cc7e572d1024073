"""``fuzzgrad report --merge OUT DIR...``: one report from the reports of a run's shards (a CI
matrix) or hosts.

Targets keep the order they first appear in; a target several reports fuzzed (hosts that each
ran it) gets one record: examples and seconds summed, failures once per signature, the status
from the whole (`fuzzgrad.report.events.merge_records`). Reproducers are copied into OUT, so
``fuzzgrad repro ID --report OUT`` finds them wherever the reports were downloaded to. A report
whose run was killed is first rebuilt from its event log, and the merged run is then
``incomplete`` too. Standard library only.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

#: Run fields that describe how a run was asked for: kept when every merged run agrees.
COMMON = (
    "seed", "max_examples", "budget_seconds", "torch_version", "jax_version",
    "fuzzgrad_version", "hostname", "database", "executor", "isolate",
)  # fmt: skip


def merge_reports(out: Path, dirs: list[Path], *, argv: list[str] | None = None) -> dict[str, Any]:
    """Merge the reports in ``dirs`` into ``out/results.json`` (written) and return it."""
    from fuzzgrad.report.events import merge_records, recover
    from fuzzgrad.report.results import load_results, results_document, write_results

    out.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[Path, dict[str, Any]]] = []
    records: dict[str, list[dict[str, Any]]] = {}
    for folder in dirs:
        recover(folder)  # a shard killed before writing its results: rebuilt from its log
        document = load_results(folder)
        runs.append((folder, document.get("run") or {}))
        for record in document["targets"]:
            _copy_reproducers(record, folder, out)
            records.setdefault(record["name"], []).append(record)
    targets = [merge_records(group) for group in records.values()]
    document = results_document(merged_run(runs, argv), targets)
    write_results(out / "results.json", document)
    return document


def merged_run(runs: list[tuple[Path, dict[str, Any]]], argv: list[str] | None) -> dict[str, Any]:
    """The ``run`` record of a merged report: when the first started and the last finished, the
    seconds of all runs summed, what they all agree on, and ``merged``: each run's folder,
    shard, host and seconds."""
    from fuzzgrad.report.results import now

    infos = [run for _, run in runs]
    out: dict[str, Any] = {"argv": argv or [], "merged_at": now(), "shard": None}
    started = [r["started"] for r in infos if isinstance(r.get("started"), str)]
    finished = [r.get("finished") for r in infos]
    ends = [f for f in finished if isinstance(f, str)]
    out["started"] = min(started) if started else None
    out["finished"] = max(ends) if ends and len(ends) == len(finished) else None
    out["seconds"] = round(sum(_number(r.get("seconds")) for r in infos), 3)
    for key in COMMON:
        values = {repr(r.get(key)) for r in infos}
        if len(values) == 1 and infos:
            out[key] = infos[0].get(key)
    jobs = [r.get("jobs") for r in infos]
    if jobs and all(isinstance(j, int) for j in jobs):
        out["jobs"] = sum(jobs)
    incomplete = [str(folder) for folder, run in runs if run.get("incomplete")]
    if incomplete:
        out["incomplete"] = (
            f"{len(incomplete)} of the {len(runs)} merged runs did not finish "
            f"({', '.join(incomplete)}); rebuilt from their event logs"
        )
    interrupted = sorted({str(r["interrupted"]) for r in infos if r.get("interrupted")})
    if interrupted:
        out["interrupted"] = ", ".join(interrupted)
    out["merged"] = [
        {
            "report": str(folder),
            "shard": run.get("shard"),
            "hostname": run.get("hostname"),
            "started": run.get("started"),
            "seconds": run.get("seconds"),
        }
        for folder, run in runs
    ]
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _copy_reproducers(obj: Any, folder: Path, out: Path) -> None:
    """Copy every reproducer ``obj`` names into ``out`` and point it there: the path as written,
    else the file of that name in the report's ``folder`` (a report moved or downloaded)."""
    if isinstance(obj, list):
        for value in obj:
            _copy_reproducers(value, folder, out)
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if key != "reproducer" or not isinstance(value, str):
            _copy_reproducers(value, folder, out)
            continue
        for source in (folder / Path(value).name, Path(value)):
            if source.is_file():
                target = out / source.name
                if source.resolve() != target.resolve() and not target.exists():
                    shutil.copyfile(source, target)
                obj[key] = str(target)
                break
