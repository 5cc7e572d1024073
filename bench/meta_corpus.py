"""Detection and false-alarm counts on the meta-test corpus (tests/corpus).

For every planted bug: was it caught, by the intended property, how fast, how small is the shrunk
case, and does the diagnosis name the factor the bug needs. For every correct Function: how many
failures (false alarms) over N examples.

    python bench/meta_corpus.py --buggy-examples 300 --correct-examples 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

#: A planted bug's ``needs`` -> the word its diagnosis must name (None: no factor to name).
FACTOR_WORDS = {
    "layout": "layout",
    "stride0": "layout",
    "cotangent_layout": "cotangent_layout",
    "broadcast": None,
    "zero_size": None,
    "0d": None,
    "values": None,
    "none": None,
    "requires_grad": None,
    "low_precision": "dtype",
    "conj_view": "conj_view",
}


def names_factor(needs: str | None, diagnosis: str) -> str:
    """``yes``/``NO`` for whether the diagnosis names the factor the bug needs; ``-`` where
    there is none to name (or the corpus says a need this table does not know)."""
    word = FACTOR_WORDS.get(needs or "none")
    return "-" if word is None else ("yes" if word in diagnosis else "NO")


def corpus_targets(kind: str):
    from fuzzgrad.registry.discovery import load_targets

    files = sorted((ROOT / "tests" / "corpus").glob(f"{kind}*.py"))
    return [t for f in files for t in load_targets([str(f)])]


def shrunk_size(failure) -> int:
    return sum(max(1, int(x.numel())) for x in failure.case.args if hasattr(x, "numel"))


def run(buggy_examples: int, correct_examples: int, seed: int, report: Path | None) -> int:
    from fuzzgrad.engine.runner import fuzz_target

    rows = []
    missed = 0
    for t in corpus_targets("buggy"):
        planted = t.options.get("planted") or {}
        start = time.perf_counter()
        r = fuzz_target(t, max_examples=buggy_examples, seed=seed, report_dir=report)
        props = sorted({f.property for f in r.failures})
        hit = [f for f in r.failures if f.property == planted.get("property")]
        ok = bool(hit)
        missed += not ok
        size = shrunk_size(hit[0]) if hit else None
        first = hit[0].seconds_to_find if hit else None
        diag = hit[0].diagnosis if hit else (r.error or {}).get("message", "")
        rows.append(
            (
                t.name,
                planted.get("property"),
                planted.get("needs"),
                "caught" if ok else "MISSED",
                ",".join(props),
                size,
                first,
                time.perf_counter() - start,
                diag,
            )
        )
    print(
        f"{'target':28s} {'planted':22s} {'needs':14s} {'verdict':7s} {'found by':30s} "
        f"{'elems':>5s} {'t_find':>7s} {'t_all':>6s} {'named':5s}  diagnosis"
    )
    unnamed = 0
    for name, prop, needs, verdict, found, size, first, total, diag in rows:
        named = names_factor(needs, diag) if verdict == "caught" else "-"
        unnamed += named == "NO"
        print(
            f"{name:28s} {prop or '-':22s} {needs or '-':14s} {verdict:7s} {found:30s} "
            f"{size if size is not None else '-':>5} "
            f"{(f'{first:.2f}' if first is not None else '-'):>7s} {total:6.1f} {named:5s}  "
            f"{diag[:90]}"
        )
    false_alarms = 0
    print(
        f"\n{'correct target':28s} {'examples':>8s} {'failures':>8s} {'ambig':>6s} {'discard':>7s}"
    )
    for t in corpus_targets("correct"):
        r = fuzz_target(t, max_examples=correct_examples, seed=seed, report_dir=report)
        bad = [f"{f.property}: {f.message[:120]}" for f in r.failures]
        if r.error:
            bad.append(f"error: {r.error['message'][:120]}")
        false_alarms += len(bad)
        discards = sum(r.stats.discards.values()) if r.stats else 0
        amb = r.stats.ambiguous if r.stats else 0
        print(
            f"{t.name:28s} {r.examples:8d} {len(bad):8d} {amb:6d} {discards:7d}  {'; '.join(bad)}"
        )
    caught = len(rows) - missed
    print(
        f"\nplanted bugs caught by the intended property: {caught}/{len(rows)}; diagnoses "
        f"that do not name the factor the bug needs: {unnamed}; false alarms on correct "
        f"Functions: {false_alarms}"
    )
    return 1 if missed or false_alarms else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--buggy-examples", type=int, default=300)
    p.add_argument("--correct-examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=Path, default=None)
    a = p.parse_args()
    return run(a.buggy_examples, a.correct_examples, a.seed, a.report)


if __name__ == "__main__":
    sys.exit(main())
