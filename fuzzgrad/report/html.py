"""The static HTML report: one self-contained ``index.html`` with inline CSS and SVG charts.

No scripts and no external URLs, so it opens from a CI artefact, a file share or an e-mail
attachment alike. Every piece of text from the results is escaped; nothing in it is trusted.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fuzzgrad.report.common import (
    error_line,
    failures_of,
    fmt_seconds,
    fmt_tuple,
    grouped_failures,
    ordered_targets,
    repro_command,
    status_counts,
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

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:#1f2937;
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 12px;padding-bottom:6px;border-bottom:1px solid #d1d5db}
h3{font-size:15px;margin:0 0 8px}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f3f4f6;border-radius:6px;padding:8px 10px;margin:6px 0;white-space:pre-wrap;
  word-break:break-word}
a{color:#1d4ed8}.muted{color:#6b7280}
header{background:#111827;color:#f9fafb;border-radius:10px;padding:20px 24px}
header .muted{color:#9ca3af}
.pills{margin:12px 0 14px}
.pill{display:inline-block;border-radius:999px;padding:3px 12px;margin:0 6px 6px 0;font-weight:600}
.runinfo{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:6px 18px;
  margin:0}
.runinfo div{min-width:0}.runinfo dd{margin:0;overflow-wrap:anywhere}
.runinfo dt{color:#9ca3af;font-size:11.5px;text-transform:uppercase;letter-spacing:.04em}
table{border-collapse:collapse;background:#fff;border-radius:8px;overflow:hidden;
  box-shadow:0 1px 2px rgba(0,0,0,.06)}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid #eceef1;vertical-align:top}
th{background:#f9fafb;font-size:12px;color:#4b5563;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.verdicts{width:100%}table.verdicts td:first-child{border-left:4px solid transparent}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600}
.tag{display:inline-block;border-radius:4px;padding:0 6px;font-size:12px;background:#e5e7eb;
  margin-left:6px;font-weight:500}
.tag.new{background:#dc2626;color:#fff}
.card{background:#fff;border-radius:8px;padding:14px 16px;margin:0 0 12px;min-width:0;
  box-shadow:0 1px 2px rgba(0,0,0,.08);border-left:4px solid #d1d5db}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px;
  align-items:start}
.grid .card{margin:0}
h3 code{font-size:13.5px}
.diag{font-size:15px;font-weight:600;margin:2px 0 6px}
.kv{margin:6px 0 0;color:#374151}.kv b{color:#6b7280;font-weight:500}
table.inputs{box-shadow:none;margin:6px 0;font-size:12.5px}
table.inputs th,table.inputs td{padding:3px 8px}
.charts{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.chart h3{font-size:13px;color:#374151;margin:8px 0 2px}
.note{font-size:11.5px}
table.heat td{text-align:center;min-width:64px;font-variant-numeric:tabular-nums}
table.heat th[scope=row]{text-transform:none;font-size:12.5px}
.cmp{display:grid;grid-template-columns:repeat(3,1fr);gap:12px}.cmp ul{margin:0;padding-left:18px}
.cmp .big{font-size:28px;font-weight:700}
details summary{cursor:pointer;color:#374151}
footer{margin-top:36px;color:#6b7280;font-size:12px}
"""


def write_html(
    results: Mapping[str, Any],
    path: str | os.PathLike[str],
    comparison: Mapping[str, Any] | None = None,
) -> None:
    """Write the report; reproducer links are relative when the file lives under the report dir."""
    path = Path(path)
    path.write_text(render_html(results, path.parent, comparison), encoding="utf-8")


def render_html(
    results: Mapping[str, Any],
    report_dir: str | os.PathLike[str] = ".",
    comparison: Mapping[str, Any] | None = None,
) -> str:
    """The report page as a string; ``report_dir`` is where it will live (for relative links)."""
    records = ordered_targets(results)
    new_sigs = {e.get("signature") for e in (comparison or {}).get("new", [])}
    body = [_header(results, records)]
    if comparison is not None:
        body.append(_comparison(comparison))
    body.append(_verdicts(records))
    for title, anchor, known in (
        ("Failures", "failures", False),
        ("Known bugs (xfailed)", "known-bugs", True),
    ):
        cards = [
            _failure_card(r, g, Path(report_dir), g[0] in new_sigs)
            for r, g in failures_of(records, known=known)
        ]
        if cards:
            body.append(f'<h2 id="{anchor}">{title} ({len(cards)})</h2>{"".join(cards)}')
    errors = [_error_card(r) for r in records if r.get("status") == "error"]
    if errors:
        body.append(f'<h2 id="errors">Errors ({len(errors)})</h2>{"".join(errors)}')
    body.append(_coverage([r.get("coverage") for r in records]))
    body.append('<h2 id="per-target">Per target</h2><div class="grid">')
    body.extend(_target_card(r) for r in records)
    body.append(
        f"</div><footer>Generated by fuzzgrad {_e(results.get('fuzzgrad_version') or '')} from "
        f"results format {_e(results.get('format_version'))}. A static page: no scripts, no "
        "external resources.</footer>"
    )
    counts = ", ".join(f"{n} {s}" for s, n in status_counts(results).items()) or "no targets"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>fuzzgrad report: {_e(counts)}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _anchor(name: Any) -> str:
    return "t-" + hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:10]


def _ink(status: Any) -> str:
    return _STATUS_COLOURS.get(str(status), ("#9ca3af", ""))[0]


def _colours(status: Any) -> str:
    fg, bg = _STATUS_COLOURS.get(str(status), ("#374151", "#e5e7eb"))
    return f"color:{fg};background:{bg}"


def _badge(status: Any) -> str:
    return f'<span class="badge" style="{_colours(status)}">{_e(status)}</span>'


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _header(results: Mapping[str, Any], records: list[dict[str, Any]]) -> str:
    run = results.get("run") or {}
    pills = "".join(
        f'<span class="pill" style="{_colours(s)}">{n} {_e(s)}</span>'
        for s, n in status_counts(results).items()
    )
    examples = sum(r["examples"] for r in records if _is_num(r.get("examples")))
    seconds = f"{fmt_seconds(run['seconds'])} s" if _is_num(run.get("seconds")) else None
    budget = run.get("budget_seconds")
    argv = run.get("argv")
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
        ("command", shlex.join(map(str, argv)) if isinstance(argv, list) else argv),
    ]
    info = "".join(f"<div><dt>{k}</dt><dd>{_e(v)}</dd></div>" for k, v in facts if v is not None)
    subtitle = " &middot; ".join(
        x for x in (f"{len(records)} targets", f"{examples} examples", _e(seconds or "")) if x
    )
    return (
        f'<header><h1>fuzzgrad report</h1><div class="muted">{subtitle}</div>'
        f'<div class="pills">{pills}</div><dl class="runinfo">{info}</dl></header>'
    )


def _comparison(cmp: Mapping[str, Any]) -> str:
    cols = []
    for title, key, colour in (
        ("New", "new", "#b91c1c"),
        ("Fixed", "fixed", "#166534"),
        ("Still failing", "still_failing", "#854d0e"),
    ):
        entries = cmp.get(key) or []
        items = "".join(
            f"<li><code>{_e(e.get('target'))}</code> {_e(e.get('property'))}"
            + ("<span class=tag>xfail</span>" if e.get("status") == "xfailed" else "")
            + f'<div class="muted">{_e(e.get("diagnosis") or "")}</div></li>'
            for e in entries
        )
        cols.append(
            f'<div class="card" style="border-left-color:{colour}"><h3>{title}</h3>'
            f'<div class="big" style="color:{colour}">{len(entries)}</div><ul>{items}</ul></div>'
        )
    extra = ""
    if cmp.get("new_errors"):
        extra += (
            "<p><b>New errors:</b> "
            + "; ".join(
                f"<code>{_e(e.get('target'))}</code> ({_e(e.get('kind'))}): {_e(e.get('message'))}"
                for e in cmp["new_errors"]
            )
            + "</p>"
        )
    if cmp.get("unverified"):
        extra += (
            '<p class="muted">Not re-run, so cannot tell if fixed: '
            + ", ".join(
                f"<code>{_e(e.get('target'))}</code> {_e(e.get('property'))}"
                for e in cmp["unverified"]
            )
            + "</p>"
        )
    return (
        '<h2 id="comparison">Compared with the previous run</h2>'
        f'<div class="cmp">{"".join(cols)}</div>{extra}'
    )


def _verdicts(records: list[dict[str, Any]]) -> str:
    head = "".join(
        f"<th{' class=num' if n else ''}>{t}</th>"
        for t, n in (
            ("target", 0), ("module", 0), ("status", 0), ("examples", 1), ("seconds", 1),
            ("failures", 1), ("discards", 1), ("JAX share", 1), ("note", 0),
        )
    )  # fmt: skip
    rows = []
    for r in records:
        status = str(r.get("status"))
        groups = grouped_failures(r)
        found = sum(n for _, _, n in groups)
        more = f' <span class="muted">({found} found)</span>' if found > len(groups) else ""
        discards = r.get("discards")
        share = r.get("jax_share")
        note = {
            "error": error_line(r),
            "xfailed": f"xfail: {r.get('xfail_reason') or ''}",
            "xpassed": "known bug no longer reproduces; remove the xfail mark",
        }.get(status, "")
        cells = [
            f'<a href="#{_anchor(r.get("name"))}"><code>{_e(r.get("name"))}</code></a>',
            f'<span class="muted">{_e(r.get("module") or "")}</span>',
            _badge(status),
            _e(r.get("examples", "-")),
            fmt_seconds(r.get("seconds")),
            f"{len(groups)}{more}",
            str(sum(discards.values())) if isinstance(discards, dict) else "-",
            f"{share:.0%}" if _is_num(share) else "-",
            _e(note),
        ]
        tds = "".join(
            f"<td{' class=num' if 3 <= i <= 7 else ''}>{c}</td>" for i, c in enumerate(cells)
        )
        bg = _STATUS_COLOURS.get(status, ("", "#ffffff"))[1]
        rows.append(
            f'<tr style="background:{bg}40">'
            + tds.replace("<td>", f'<td style="border-left-color:{_ink(status)}">', 1)
            + "</tr>"
        )
    return (
        f'<h2 id="targets">Targets ({len(records)})</h2>'
        f'<table class="verdicts"><tr>{head}</tr>{"".join(rows)}</table>'
    )


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


def _failure_card(
    record: Mapping[str, Any], group: tuple[str, dict[str, Any], int], report_dir: Path, new: bool
) -> str:
    sig, f, count = group
    tag = '<span class="tag new">new</span>' if new else ""
    parts = [
        f'<div class="card" style="border-left-color:{_ink(record.get("status"))}">'
        f"<h3><code>{_e(record.get('name'))}</code> &middot; {_e(f.get('property'))}{tag}</h3>",
        f'<div class="diag">{_e(f.get("diagnosis") or "no diagnosis")}</div>',
    ]
    if f.get("message"):
        parts.append(f"<pre>{_e(f['message'])}</pre>")
    inputs = [a for a in f.get("inputs") or [] if isinstance(a, dict)]
    if inputs:
        cols = ("name", "shape", "dtype", "stride", "storage_offset", "device", "requires_grad")
        head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
        rows = "".join(
            "<tr>"
            + "".join(f"<td><code>{_e(fmt_tuple(a.get(c, '-')))}</code></td>" for c in cols)
            + "</tr>"
            for a in inputs
        )
        parts.append(f'<table class="inputs"><tr>{head}</tr>{rows}</table>')
    if f.get("reproducer"):
        reproducer = str(f["reproducer"])
        href = _repro_href(reproducer, report_dir)
        shown = f"<code>{_e(reproducer)}</code>"
        if href:
            shown = f'<a href="{_e(href)}">{shown}</a>'
        parts.append(f'<div class="kv"><b>reproducer</b> {shown}</div>')
        parts.append(f"<pre>$ {_e(repro_command(reproducer))}</pre>")
    meta = [f"signature <code>{_e(sig)}</code>"]
    if count > 1:
        meta.append(f"found {count} times")
    if _is_num(f.get("seconds_to_find")):
        meta.append(f"first found after {fmt_seconds(f['seconds_to_find'])} s")
    parts.append(f'<div class="kv muted">{" &middot; ".join(meta)}</div></div>')
    return "".join(parts)


def _error_card(record: Mapping[str, Any]) -> str:
    error = record.get("error") if isinstance(record.get("error"), dict) else {}
    tb = error.get("traceback")
    return (
        f'<div class="card" style="border-left-color:{_ink("error")}">'
        f"<h3><code>{_e(record.get('name'))}</code>"
        f"<span class=tag>{_e(error.get('kind') or 'error')}</span></h3>"
        f"<pre>{_e(error.get('message') or 'no message recorded')}</pre>"
        + (f"<details><summary>traceback</summary><pre>{_e(tb)}</pre></details>" if tb else "")
        + "</div>"
    )


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


def _coverage(coverages: list[Any]) -> str:
    """Coverage over all targets: dtype x layout heat map, then bar charts of ranks and sizes."""
    covs = [c for c in coverages if isinstance(c, dict)]
    title = "<h2 id='coverage'>Coverage, all targets</h2>"
    if not covs:
        return f"{title}<p class=muted>No coverage recorded.</p>"
    merged = {k: _merge([c.get(k) for c in covs]) for k in ("dtype_layout", "dtype", "layout")}
    charts = [_heatmap(merged["dtype_layout"])]
    if not charts[0]:  # older records: only the marginals
        charts = [
            _chart("examples by dtype", merged["dtype"], key=_dtype_key),
            _chart("examples by layout", merged["layout"]),
        ]
    for label, key in (("tensor rank (ndim)", "ndim"), ("tensor size (numel)", "numel")):
        charts.append(_chart(label, _merge([c.get(key) for c in covs]), key=_bucket_key))
    return f"{title}<div class='charts'>{''.join(charts)}</div>"


def _heatmap(cells: dict[str, float]) -> str:
    pairs = {tuple(k.split("|", 1)): v for k, v in cells.items() if "|" in k}
    if not pairs:
        return ""
    dtypes = sorted({d for d, _ in pairs}, key=_dtype_key)
    layouts = sorted({lay for _, lay in pairs}, key=lambda s: (s != "contiguous", s))
    top = max(pairs.values()) or 1
    head = "".join(f"<th>{_e(x)}</th>" for x in ["dtype \\ layout", *layouts])
    rows = []
    for d in dtypes:
        tds = []
        for lay in layouts:
            n = pairs.get((d, lay), 0)
            alpha = 0.1 + 0.85 * n / top if n > 0 else 0
            ink = "#fff" if alpha > 0.55 else "#1f2937"
            style = f"background:rgba(37,99,235,{alpha:.2f});color:{ink}" if n else "color:#c0c4cc"
            tds.append(f'<td style="{style}">{_num(n) if n else "&middot;"}</td>')
        total = sum(pairs.get((d, lay), 0) for lay in layouts)
        tds.append(f"<td class=num>{_num(total)}</td>")
        rows.append(f'<tr><th scope="row">{_e(d)}</th>{"".join(tds)}</tr>')
    table = f'<table class="heat"><tr>{head}<th class=num>total</th></tr>{"".join(rows)}</table>'
    return f'<div class="chart"><h3>examples by dtype and layout</h3>{table}</div>'


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def _chart(title: str, counts: dict[str, float], key: Any = None, width: int = 280) -> str:
    if not counts:
        return ""
    labels = sorted(counts, key=key) if key else list(counts)
    values = [counts[k] for k in labels]
    svg = _bars(values, labels=labels, colours=[_BLUE] * len(labels), width=width)
    return f'<div class="chart"><h3>{_e(title)}</h3>{svg}</div>'


def _text(x: float, y: float, text: str, anchor: str = "middle", fill: str = "#374151") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{text}</text>'


def _bars(
    values: list[float],
    *,
    labels: list[str] | None = None,
    edges: list[float] | None = None,
    colours: list[str],
    width: int = 300,
    height: int = 150,
    marker: float | None = None,
) -> str:
    """A bar chart as inline SVG: ``labels`` name bars, ``edges`` (one more) mark bin boundaries.

    ``marker`` draws a dashed line at a position in bin units (for the pass/fail line).
    """
    left, right, top, bottom = 34, 10, 18, 30
    n = max(len(values), 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    step, base = plot_w / n, top + plot_h
    peak = max(values, default=0) or 1
    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'font-family="system-ui,sans-serif" font-size="10">',
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#9ca3af"/>',
        _text(left - 5, top + 4, _num(peak), "end", "#6b7280"),
        _text(left - 5, base, "0", "end", "#6b7280"),
    ]
    every = max(1, -(-n // 12))  # thin out axis labels so they never overlap
    for i, v in enumerate(values):
        h, x, mid = plot_h * max(v, 0) / peak, left + i * step, left + (i + 0.5) * step
        tip = f"{_e(labels[i]) if labels else i}: {_num(v)}"
        out.append(
            f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{colours[i]}"><title>{tip}</title></rect>'
        )
        if v and n <= 24:
            out.append(_text(mid, base - h - 3, _num(v)))
        if labels and i % every == 0:
            out.append(_text(mid, base + 13, _e(labels[i])))
    for i, edge in enumerate(edges or []):
        if i % every == 0 or i == n:
            out.append(_text(left + i * step, base + 13, _num(edge)))
    if marker is not None:
        mx = left + marker * step
        side = ("start", mx + 4) if mx < width - 60 else ("end", mx - 4)
        out.append(
            f'<line x1="{mx:.1f}" y1="{top - 10}" x2="{mx:.1f}" y2="{base + 3}" '
            'stroke="#111827" stroke-dasharray="4 3"/>'
            + _text(side[1], top - 4, "tolerance", side[0], "#111827")
        )
    out.append("</svg>")
    return "".join(out)


def _histogram(hist: Any) -> str:
    """A target's ``error_ratio_hist``: log10(max error / tolerance), 0 is the pass/fail line."""
    if not isinstance(hist, dict):
        return '<p class="muted">No error histogram recorded.</p>'
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if len(edges) != len(counts) + 1 or not counts or not all(map(_is_num, [*edges, *counts])):
        return '<p class="muted">Error histogram malformed (need one more edge than counts).</p>'
    bins = list(pairwise(edges))
    colours = [_GREEN if hi <= 0 else _RED if lo >= 0 else _AMBER for lo, hi in bins]
    marker = next((i + -lo / (hi - lo) for i, (lo, hi) in enumerate(bins) if lo <= 0 < hi), None)
    if marker is None and edges[-1] == 0:
        marker = len(bins)
    svg = _bars(counts, edges=edges, colours=colours, width=480, marker=marker)
    return (
        '<div class="chart"><h3>worst error per example: log10(error / tolerance)</h3>'
        f'{svg}<div class="muted note">green, left of the line: within tolerance; '
        "red: beyond it</div></div>"
    )


def _target_card(record: Mapping[str, Any]) -> str:
    cov = record.get("coverage") if isinstance(record.get("coverage"), dict) else {}
    meta = [
        f"{_e(record.get('examples', '-'))} example{'' if record.get('examples') == 1 else 's'}",
        f"{fmt_seconds(record.get('seconds'))} s",
    ]
    if _is_num(record.get("jax_share")):
        meta.append(f"JAX share {record['jax_share']:.0%}")
    if record.get("ambiguous"):
        meta.append(f"{_e(record['ambiguous'])} ambiguous (references disagree)")
    for label, counts in (("discarded", record.get("discards")), ("dtypes", cov.get("dtype"))):
        if isinstance(counts, dict) and counts:
            ordered = sorted(counts.items(), key=lambda kv: _dtype_key(str(kv[0])))
            meta.append(f"{label}: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in ordered))
    minis = "".join(
        _chart(f"{key} (all inputs)", _merge([cov.get(key)]), key=_bucket_key, width=230)
        for key in ("ndim", "numel")
    )
    return (
        f'<div class="card" id="{_anchor(record.get("name"))}" '
        f'style="border-left-color:{_ink(record.get("status"))}">'
        f"<h3><code>{_e(record.get('name'))}</code> {_badge(record.get('status'))}</h3>"
        f'<div class="muted">{" &middot; ".join(meta)}</div>'
        f"{_histogram(record.get('error_ratio_hist'))}<div class='charts'>{minis}</div></div>"
    )
