"""Turning the benchmark's outcomes into its tables (markdown, so they paste into benchmarks.md).

Scoring rules, applied per tool:
- a tool's *false alarm* is a failure on an unmutated target; its kills on that target's
  mutants are not scored (a user could not tell them from the false alarm);
- an *equivalent* mutant (no tool kills it, not even fuzzgrad with the longer confirm budget,
  kills by a tool on a target it false-alarms on aside, and `equivalent.py` gives the
  hand-checked reason) is listed, not counted;
- a survivor with no recorded reason is listed as *unexplained* and counted as missed;
- kills by a tool on a target it false-alarms on count for nothing, except that they do not
  make a mutant an unexplained survivor (the failure message shows it was the mutant).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from bench.mutants.equivalent import EQUIVALENT


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.2f}" if values else "-"


def _median_int(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):g}" if values else "-"


def classify(outcomes, chosen, tools):
    """(main outcomes by (tool, subject), false alarms by tool, equivalent ids, unexplained)."""
    main = {(o["tool"], o["subject"]): o for o in outcomes if o["phase"] == "main"}
    confirm = {o["subject"]: o for o in outcomes if o["phase"] == "confirm"}
    alarms = {
        t: sorted(
            {
                o["subject"]
                for o in outcomes
                if o["phase"] == "main" and o["mutant"] is None and o["tool"] == t and o["killed"]
            }
        )
        for t in tools
    }
    equivalent, unexplained = [], []
    for m in chosen:
        killers = [t for t in tools if main.get((t, m.id), {}).get("killed")]
        if confirm.get(m.id, {}).get("killed"):
            killers.append("fuzzgrad")
        if not killers:
            (equivalent if m.id in EQUIVALENT else unexplained).append(m)
        elif m.id in EQUIVALENT and all(m.target in alarms[t] for t in killers):
            equivalent.append(m)  # killed only by tools that also fail the unmutated target
    return main, confirm, alarms, equivalent, unexplained


def summarise(outcomes, generated, chosen, names, tools, budget, confirm_budget, seconds) -> str:
    main, confirm, alarms, equivalent, unexplained = classify(outcomes, chosen, tools)
    equivalent_ids = {m.id for m in equivalent}
    counted = [m for m in chosen if m.id not in equivalent_ids]
    common = [m for m in counted if not any(m.target in alarms[t] for t in tools)]
    lines = [
        f"## Mutant kills: {len(counted)} mutants counted ({len(chosen)} run, "
        f"{len(equivalent)} equivalent) on {len(names)} targets; budget {budget:g}s per tool "
        f"and subject; {seconds / 60:.1f} min wall",
        "",
        "| tool | killed / scored | killed on common set | median s to kill | "
        "median elements (max) | false alarms |",
        "|---|---|---|---|---|---|",
    ]
    for t in tools:
        scored = [m for m in counted if m.target not in alarms[t]]
        hits = [main[(t, m.id)] for m in scored if main.get((t, m.id), {}).get("killed")]
        on_common = sum(bool(main.get((t, m.id), {}).get("killed")) for m in common)
        sizes = [h["size"] for h in hits if h["size"] is not None]
        alarm = ", ".join(alarms[t]) or "none"
        lines.append(
            f"| {t} | {len(hits)} / {len(scored)} | {on_common} / {len(common)} | "
            f"{_median(h['seconds'] for h in hits)} | {_median_int(sizes)} "
            f"({max(sizes) if sizes else '-'}) | {len(alarms[t])} ({alarm}) |"
        )
    lines += ["", _operator_table(generated, chosen, counted, main, alarms, tools)]
    lines += ["", _misses(counted, main, confirm, alarms, tools, confirm_budget)]
    lines += ["", f"### Equivalent mutants (listed, not counted): {len(equivalent)}", ""]
    lines += [f"- `{m.id}` {m.change}: {EQUIVALENT[m.id]}" for m in equivalent] or ["- none"]
    if unexplained:
        lines += [
            "",
            f"### Survivors with no recorded reason (counted as missed): {len(unexplained)}",
            "",
        ]
        lines += [f"- `{m.id}` {m.change}" for m in unexplained]
    chosen_ids = {m.id for m in chosen}
    listed_but_killed = sorted(i for i in EQUIVALENT if i in chosen_ids and i not in equivalent_ids)
    if listed_but_killed:
        lines += [
            "",
            "Listed as equivalent but killed this run (the list is stale): "
            + ", ".join(f"`{i}`" for i in listed_but_killed),
        ]
    return "\n".join(lines)


def _operator_table(generated, chosen, counted, main, alarms, tools) -> str:
    from bench.mutants.operators import OPERATORS

    gen = defaultdict(int)
    for m in generated:
        gen[m.operator] += 1
    run = defaultdict(int)
    for m in chosen:
        run[m.operator] += 1
    head = (
        "| operator | generated | run | equivalent | "
        + " | ".join(f"{t} killed" for t in tools)
        + " |"
    )
    lines = [head, "|" + "---|" * (4 + len(tools))]
    for op in OPERATORS:
        ms = [m for m in counted if m.operator == op]
        cells = []
        for t in tools:
            scored = [m for m in ms if m.target not in alarms[t]]
            k = sum(bool(main.get((t, m.id), {}).get("killed")) for m in scored)
            cells.append(f"{k} / {len(scored)}")
        lines.append(
            f"| {op} | {gen[op]} | {run[op]} | {run[op] - len(ms)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def _misses(counted, main, confirm, alarms, tools, confirm_budget) -> str:
    """Every scored mutant some tool missed, with who killed it, to explain in the notes."""
    lines = [
        "### Missed mutants (scored for the tool that missed them)",
        "",
        "| mutant | change | missed by | killed by (property / error) | fuzzgrad at "
        f"{confirm_budget:g}s |",
        "|---|---|---|---|---|",
    ]
    for m in counted:
        missed = [
            t
            for t in tools
            if m.target not in alarms[t] and not main.get((t, m.id), {}).get("killed")
        ]
        if not missed:
            continue
        by = [
            f"{t} ({main[(t, m.id)]['detail'][:60]})"
            for t in tools
            if main.get((t, m.id), {}).get("killed")
        ]
        late = confirm.get(m.id)
        late_text = (
            "-"
            if late is None
            else (
                f"killed at {late['seconds']:.1f}s ({late['detail'][:50]})"
                if late["killed"]
                else "survives"
            )
        )
        change = m.change.replace("|", "\\|")
        lines.append(
            f"| `{m.id}` | {change} | {', '.join(missed)} | "
            f"{'; '.join(by).replace('|', '/') or '-'} | {late_text} |"
        )
    return "\n".join(lines)
