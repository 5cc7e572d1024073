"""Reports: the event log and ``results.json`` a run writes, what people read of them (JUnit
XML, Markdown, HTML), run-to-run diffs, and reproducers.

Everything here but `fuzzgrad.report.reproducer` is standard library (plus Jinja2 for HTML): a
report renders in milliseconds on a machine without torch or JAX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render_all(report_dir: Path, baseline: Path | None = None) -> dict[str, Any] | None:
    """(Re)write junit.xml, summary.md and index.html of a report from its results.json, diffed
    against ``baseline`` (a previous report) when it has one; return that comparison."""
    from fuzzgrad.report.compare import compare
    from fuzzgrad.report.html import write_html
    from fuzzgrad.report.junit import write_junit
    from fuzzgrad.report.markdown import write_summary
    from fuzzgrad.report.results import load_results

    results = load_results(report_dir)
    comparison = None
    if baseline is not None and (baseline / "results.json").is_file():
        comparison = compare(load_results(baseline), results)
    write_junit(results, report_dir / "junit.xml")
    write_summary(results, report_dir / "summary.md", comparison)
    write_html(results, report_dir / "index.html", comparison)
    return comparison
