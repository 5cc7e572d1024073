"""The static HTML report: one self-contained ``index.html`` with inline CSS and SVG charts.

No scripts and no external URLs, so it opens from a CI artefact, a file share or an e-mail
attachment alike. The page is a Jinja2 template (``templates/index.html.j2``) rendered with
autoescape on: every piece of text from the results is escaped by Jinja2, none by hand. This
module only turns a results document into what the template shows (rows, cards, chart
geometry).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fuzzgrad.report.common import (
    INTERNAL_ADVICE,
    arg_name,
    error_line,
    excused_line,
    failure_title,
    failures_of,
    fmt_seconds,
    fmt_tuple,
    fmt_values,
    grouped_failures,
    ordered_targets,
    redact,
    repro_command,
    status_counts,
    terminal_safe,
    write_atomically,
)

_STATUS_COLOURS = {  # (text, background)
    "passed": ("#166534", "#dcfce7"),
    "failed": ("#b91c1c", "#fee2e2"),
    "error": ("#9a3412", "#ffedd5"),
    "xfailed": ("#854d0e", "#fef9c3"),
    "xpassed": ("#6d28d9", "#ede9fe"),
}
_GREEN, _RED, _AMBER, _BLUE = "#22c55e", "#ef4444", "#f59e0b", "#3b82f6"
_DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16", "complex128", "complex64")


@functools.cache
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("fuzzgrad.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_html(
    results: Mapping[str, Any],
    path: str | os.PathLike[str],
    comparison: Mapping[str, Any] | None = None,
) -> None:
    """Write the report; reproducer links are relative when the file lives under the report dir."""
    path = Path(path)
    write_atomically(path, render_html(results, path.parent, comparison))


def render_html(
    results: Mapping[str, Any],
    report_dir: str | os.PathLike[str] = ".",
    comparison: Mapping[str, Any] | None = None,
) -> str:
    """The report page as a string; ``report_dir`` is where it will live (for relative links)."""
    records = ordered_targets(results)
    new_sigs = {e.get("signature") for e in (comparison or {}).get("new", [])}
    report_dir = Path(report_dir)
    sections = []
    for title, anchor, known in (
        ("Failures", "failures", False),
        ("Known bugs (xfailed)", "known-bugs", True),
    ):
        cards = [
            _failure_card(r, g, report_dir, g[0] in new_sigs)
            for r, g in failures_of(records, known=known)
        ]
        if cards:
            sections.append({"title": title, "anchor": anchor, "cards": cards})
    counts = ", ".join(f"{n} {s}" for s, n in status_counts(results).items()) or "no targets"
    page = {
        "counts": counts,
        "header": _header(results, records),
        "comparison": None if comparison is None else _comparison(comparison),
        "verdicts": [_verdict_row(r) for r in records],
        "sections": sections,
        "errors": [_error_card(r, report_dir) for r in records if r.get("status") == "error"],
        "internal": [
            {"name": r.get("name"), **e}
            for r in records
            for e in r.get("internal_errors") or []
            if isinstance(e, dict)
        ],
        "internal_advice": INTERNAL_ADVICE,
        "coverage": _coverage([r.get("coverage") for r in records]),
        "targets": [_target_card(r) for r in records],
        "fuzzgrad_version": results.get("fuzzgrad_version") or "",
        "format_version": results.get("format_version"),
    }
    # Autoescaping leaves control characters and bidi overrides (U+202E) in the page: a name or
    # message carrying one is shown as its escape, as on the terminal (the templates have none).
    return terminal_safe(_environment().get_template("index.html.j2").render(page))


def _anchor(name: Any) -> str:
    return "t-" + hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:10]


def _ink(status: Any) -> str:
    return _STATUS_COLOURS.get(str(status), ("#9ca3af", ""))[0]


def _colours(status: Any) -> str:
    fg, bg = _STATUS_COLOURS.get(str(status), ("#374151", "#e5e7eb"))
    return f"color:{fg};background:{bg}"


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _header(results: Mapping[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    run = results.get("run")
    run = run if isinstance(run, dict) else {}
    examples = sum(r["examples"] for r in records if _is_num(r.get("examples")))
    seconds = f"{fmt_seconds(run['seconds'])} s" if _is_num(run.get("seconds")) else None
    budget = run.get("budget_seconds")
    argv = run.get("argv")
    command = shlex.join(map(str, argv)) if isinstance(argv, list) else argv
    facts = [
        ("started", run.get("started")),
        ("finished", run.get("finished")),
        ("duration", seconds),
        ("seed", run.get("seed")),
        ("max examples", run.get("max_examples")),
        ("budget", f"{budget} s" if budget is not None else None),
        ("shard", run.get("shard")),
        ("fuzzgrad", results.get("fuzzgrad_version")),
        ("torch", run.get("torch_version")),
        ("jax", run.get("jax_version")),
        ("host", run.get("hostname")),
        ("database", redact(str(run["database"])) if run.get("database") else None),
        ("command", redact(str(command)) if command is not None else None),
    ]
    return {
        "subtitle": [x for x in (f"{len(records)} targets", f"{examples} examples", seconds) if x],
        "pills": [(n, s, _colours(s)) for s, n in status_counts(results).items()],
        "facts": [(k, v) for k, v in facts if v is not None],
        "incomplete": run.get("incomplete"),
    }


def _comparison(cmp: Mapping[str, Any]) -> dict[str, Any]:
    columns = [
        {"title": title, "colour": colour, "entries": list(cmp.get(key) or [])}
        for title, key, colour in (
            ("New", "new", "#b91c1c"),
            ("Fixed", "fixed", "#166534"),
            ("Still failing", "still_failing", "#854d0e"),
        )
    ]
    return {
        "columns": columns,
        "new_errors": list(cmp.get("new_errors") or []),
        "unverified": list(cmp.get("unverified") or []),
    }


def _verdict_row(r: Mapping[str, Any]) -> dict[str, Any]:
    status = str(r.get("status"))
    groups = grouped_failures(r)
    found = sum(n for _, _, n in groups)
    discards = r.get("discards")
    share = r.get("jax_share")
    note = {
        "error": error_line(r),
        "xfailed": f"xfail: {r.get('xfail_reason') or ''}",
        "xpassed": "known bug no longer reproduces; remove the xfail mark",
    }.get(status, "")
    return {
        "anchor": _anchor(r.get("name")),
        "name": r.get("name"),
        "module": r.get("module") or "",
        "status": status,
        "colours": _colours(status),
        "ink": _ink(status),
        "background": _STATUS_COLOURS.get(status, ("", "#ffffff"))[1],
        "examples": r.get("examples", "-"),
        "seconds": fmt_seconds(r.get("seconds")),
        "failures": len(groups),
        "found": found if found > len(groups) else None,
        "discards": str(sum(discards.values())) if isinstance(discards, dict) else "-",
        "share": f"{share:.0%}" if _is_num(share) else "-",
        "note": note,
    }


def _repro_href(reproducer: str, report_dir: Path) -> str | None:
    """A relative link to a reproducer under the report dir, or None (it would not travel along)."""
    root = report_dir.resolve()
    path = Path(reproducer)
    found = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not found.is_relative_to(root) and not path.is_absolute():
        # rendered from another directory than the run: find a tail of the path under the report
        tails = (root / Path(*path.parts[i:]) for i in range(len(path.parts)))
        found = next((t.resolve() for t in tails if t.is_file()), found)
    if not found.is_relative_to(root):
        return None
    return "./" + quote(found.relative_to(root).as_posix())


def _reproducer(value: Any, report_dir: Path, missing: Any = None) -> dict[str, Any] | None:
    if missing and not value:
        return {"missing": str(missing)}
    if not value or not isinstance(value, str):
        return None
    return {
        "missing": None,
        "path": value,
        "href": _repro_href(value, report_dir),
        "command": repro_command(value),
    }


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _argument_rows(record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The rows of a card's inputs table: each argument, then each cotangent (grad_output)."""
    rows = []
    for arg in record.get("inputs") or []:
        if not isinstance(arg, dict):
            continue
        if "shape" not in arg and "value" in arg:  # a non-tensor argument
            rows.append({"name": arg_name(arg), "values": str(arg["value"])})
            continue
        grad = arg.get("requires_grad")
        rows.append(_tensor_row(arg_name(arg), arg, "-" if grad is None else str(grad)))
    for cot in record.get("cotangents") or []:
        if isinstance(cot, dict):
            rows.append(_tensor_row(f"grad_output[{cot.get('output', '?')}]", cot, ""))
    return rows


def _tensor_row(name: str, t: Mapping[str, Any], grad: str) -> dict[str, str]:
    return {
        "name": name,
        "dtype": _cell(t.get("dtype")),
        "shape": fmt_tuple(t["shape"]) if "shape" in t else "-",
        "stride": fmt_tuple(t["stride"]) if "stride" in t else "-",
        "offset": _cell(t.get("storage_offset")),
        "layout": _cell(t.get("layout")),
        "device": _cell(t.get("device")),
        "grad": grad,
        "values": fmt_values(t) if "values" in t else "",
    }


def _failure_card(
    record: Mapping[str, Any], group: tuple[str, dict[str, Any], int], report_dir: Path, new: bool
) -> dict[str, Any]:
    sig, f, count = group
    return {
        "name": record.get("name"),
        "ink": _ink(record.get("status")),
        "property": failure_title(f),
        "new": new,
        "diagnosis": f.get("diagnosis") or "no diagnosis",
        "message": f.get("message"),
        "rows": _argument_rows(f),
        "reproducer": _reproducer(f.get("reproducer"), report_dir, f.get("no_reproducer")),
        "signature": sig,
        "count": count,
        "seconds_to_find": (
            fmt_seconds(f["seconds_to_find"]) if _is_num(f.get("seconds_to_find")) else None
        ),
    }


def _error_card(record: Mapping[str, Any], report_dir: Path) -> dict[str, Any]:
    error = record.get("error")
    error = error if isinstance(error, dict) else {}
    example = error.get("example")
    return {
        "name": record.get("name"),
        "ink": _ink("error"),
        "kind": error.get("kind") or "error",
        "message": error.get("message") or "no message recorded",
        "example": example if _is_num(example) else None,
        "rows": _argument_rows(error),
        "reproducer": _reproducer(error.get("reproducer"), report_dir, error.get("no_reproducer")),
        "traceback": error.get("traceback"),
    }


# --- charts --------------------------------------------------------------------------------------


def _merge(maps: list[Any]) -> dict[str, float]:
    """Sum count maps ({label: count}) across targets, skipping anything that is not one."""
    total: dict[str, float] = {}
    for m in maps:
        for k, v in m.items() if isinstance(m, dict) else ():
            if _is_num(v):
                total[str(k)] = total.get(str(k), 0) + v
    return total


def _bucket_key(label: str) -> tuple[float, str]:
    """Order "0", "1", "2-8", "9-64", ">64" by their lower bound, not alphabetically."""
    digits = "".join(c if c.isdigit() else " " for c in label).split()
    low = float(digits[0]) + (0.5 if label.startswith(">") else 0) if digits else float("inf")
    return (low, label)


def _dtype_key(name: str) -> tuple[int, str]:
    return (_DTYPE_ORDER.index(name) if name in _DTYPE_ORDER else len(_DTYPE_ORDER), name)


def _coverage(coverages: list[Any]) -> dict[str, Any] | None:
    """Coverage over all targets: dtype x layout heat map, then bar charts of ranks and sizes."""
    covs = [c for c in coverages if isinstance(c, dict)]
    if not covs:
        return None
    merged = {k: _merge([c.get(k) for c in covs]) for k in ("dtype_layout", "dtype", "layout")}
    heatmap = _heatmap(merged["dtype_layout"])
    charts = []
    if heatmap is None:  # older records: only the marginals
        charts += [
            _chart("examples by dtype", merged["dtype"], key=_dtype_key),
            _chart("examples by layout", merged["layout"]),
        ]
    for label, key in (("tensor rank (ndim)", "ndim"), ("tensor size (numel)", "numel")):
        charts.append(_chart(label, _merge([c.get(key) for c in covs]), key=_bucket_key))
    return {"heatmap": heatmap, "charts": [c for c in charts if c is not None]}


def _heatmap(cells: dict[str, float]) -> dict[str, Any] | None:
    pairs = {tuple(k.split("|", 1)): v for k, v in cells.items() if "|" in k}
    if not pairs:
        return None
    dtypes = sorted({d for d, _ in pairs}, key=_dtype_key)
    layouts = sorted({lay for _, lay in pairs}, key=lambda s: (s != "contiguous", s))
    top = max(pairs.values()) or 1
    rows = []
    for d in dtypes:
        cells_out = []
        for lay in layouts:
            n = pairs.get((d, lay), 0)
            alpha = 0.1 + 0.85 * n / top if n > 0 else 0
            ink = "#fff" if alpha > 0.55 else "#1f2937"
            style = f"background:rgba(37,99,235,{alpha:.2f});color:{ink}" if n else "color:#c0c4cc"
            cells_out.append({"text": _num(n) if n else "\u00b7", "style": style})
        total = sum(pairs.get((d, lay), 0) for lay in layouts)
        rows.append({"dtype": d, "cells": cells_out, "total": _num(total)})
    return {"layouts": layouts, "rows": rows}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _chart(
    title: str, counts: dict[str, float], key: Any = None, width: int = 280
) -> dict[str, Any] | None:
    if not counts:
        return None
    labels = sorted(counts, key=key) if key else list(counts)
    values = [counts[k] for k in labels]
    return {
        "title": title,
        "svg": _bars(values, labels=labels, colours=[_BLUE] * len(labels), width=width),
    }


def _bars(
    values: list[float],
    *,
    labels: list[str] | None = None,
    edges: list[float] | None = None,
    colours: list[str],
    width: int = 300,
    height: int = 150,
    marker: float | None = None,
) -> dict[str, Any]:
    """The geometry of a bar chart (the template draws it as inline SVG): ``labels`` name bars,
    ``edges`` (one more) mark bin boundaries; ``marker`` is a dashed line at a position in bin
    units (for the pass/fail line)."""
    left, right, top, bottom = 34, 10, 18, 30
    n = max(len(values), 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    step, base = plot_w / n, top + plot_h
    peak = max(values, default=0) or 1
    every = max(1, -(-n // 12))  # thin out axis labels so they never overlap
    bars, texts = [], []
    for i, v in enumerate(values):
        h, x, mid = plot_h * max(v, 0) / peak, left + i * step, left + (i + 0.5) * step
        tip = f"{labels[i] if labels else i}: {_num(v)}"
        bars.append(
            {
                "x": f"{x + 1:.1f}",
                "y": f"{base - h:.1f}",
                "w": f"{max(step - 2, 1):.1f}",
                "h": f"{h:.1f}",
                "fill": colours[i],
                "tip": tip,
            }
        )
        if v and n <= 24:
            texts.append(_text(mid, base - h - 3, _num(v)))
        if labels and i % every == 0:
            texts.append(_text(mid, base + 13, labels[i]))
    for i, edge in enumerate(edges or []):
        if i % every == 0 or i == n:
            texts.append(_text(left + i * step, base + 13, _num(edge)))
    line = None
    if marker is not None:
        mx = left + marker * step
        anchor, tx = ("start", mx + 4) if mx < width - 60 else ("end", mx - 4)
        line = {"x": f"{mx:.1f}", "y1": top - 10, "y2": base + 3}
        texts.append(_text(tx, top - 4, "tolerance", anchor, "#111827"))
    return {
        "width": width,
        "height": height,
        "axis": {"x1": left, "x2": width - right, "y": base},
        "ticks": [
            _text(left - 5, top + 4, _num(peak), "end", "#6b7280"),
            _text(left - 5, base, "0", "end", "#6b7280"),
        ],  # fmt: skip
        "bars": bars,
        "texts": texts,
        "marker": line,
    }


def _text(x: float, y: float, text: str, anchor: str = "middle", fill: str = "#374151") -> dict:
    return {"x": f"{x:.1f}", "y": f"{y:.1f}", "text": text, "anchor": anchor, "fill": fill}


def _histogram(hist: Any) -> dict[str, Any]:
    """A target's ``error_ratio_hist``: log10(max error / tolerance), 0 is the pass/fail line."""
    if not isinstance(hist, dict):
        return {"svg": None, "problem": "No error histogram recorded."}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if len(edges) != len(counts) + 1 or not counts or not all(map(_is_num, [*edges, *counts])):
        return {
            "svg": None,
            "problem": "Error histogram malformed (need one more edge than counts).",
        }
    bins = list(pairwise(edges))
    colours = [_GREEN if hi <= 0 else _RED if lo >= 0 else _AMBER for lo, hi in bins]
    marker = next((i + -lo / (hi - lo) for i, (lo, hi) in enumerate(bins) if lo <= 0 < hi), None)
    if marker is None and edges[-1] == 0:
        marker = len(bins)
    svg = _bars(counts, edges=edges, colours=colours, width=480, marker=marker)
    return {"svg": svg, "problem": None}


def _target_card(record: Mapping[str, Any]) -> dict[str, Any]:
    cov = record.get("coverage")
    cov = cov if isinstance(cov, dict) else {}
    examples = record.get("examples", "-")
    meta = [
        f"{examples} example{'' if examples == 1 else 's'}",
        f"{fmt_seconds(record.get('seconds'))} s",
    ]
    if _is_num(record.get("jax_share")):
        meta.append(f"JAX share {record['jax_share']:.0%}")
    if record.get("ambiguous"):
        meta.append(f"{record['ambiguous']} ambiguous (references disagree)")
    if excused_line(record):
        meta.append(f"excused: {excused_line(record)}")
    scan = record.get("scan")
    if isinstance(scan, dict) and scan.get("contract"):  # `fuzzgrad scan`: inferred, a guess
        inputs = ", ".join(str(i) for i in scan.get("inputs") or [])
        meta.append(f"scan contract (inferred): {scan['contract']} [{inputs}]")
    for label, counts in (("discarded", record.get("discards")), ("dtypes", cov.get("dtype"))):
        if isinstance(counts, dict) and counts:
            ordered = sorted(counts.items(), key=lambda kv: _dtype_key(str(kv[0])))
            meta.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in ordered))
    minis = [
        _chart(f"{key} (all inputs)", _merge([cov.get(key)]), key=_bucket_key, width=230)
        for key in ("ndim", "numel")
    ]
    return {
        "anchor": _anchor(record.get("name")),
        "name": record.get("name"),
        "status": record.get("status"),
        "colours": _colours(record.get("status")),
        "ink": _ink(record.get("status")),
        "meta": meta,
        "histogram": _histogram(record.get("error_ratio_hist")),
        "charts": [c for c in minis if c is not None],
    }
