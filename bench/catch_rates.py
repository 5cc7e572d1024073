"""How often each planted bug is caught at the meta-tests' budget, over many seeds.

`tests/test_meta.py` runs each planted bug once, derandomized: one fixed draw of cases. A pass
there can be luck. This runs every planted bug of tests/corpus with ``--seeds`` different seeds at
``--examples`` examples (the meta-test's 150 by default) and prints, per bug, how many seeds
caught it by its intended property, the median seconds to the first failure and the seeds that
missed (``fuzz_target(seed=...)`` repeats any of them).

    python bench/catch_rates.py --seeds 20 --jobs 2
    python bench/catch_rates.py -k LogCoshNaiveTanh --seeds 100
    python bench/catch_rates.py -k BlockedLogSumExpStaleScale --seeds 50 --first-seed 50
    python bench/catch_rates.py --pairs --seeds 20

``--pairs`` runs the planted pairs instead (tests/corpus/twobugs.py: two independent bugs of one
property each): a seed catches a pair when each planted bug is matched by exactly one finding of
its own. It also prints each pair's findings per run (more than its bugs: a duplicate) and the
median seconds a run took.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from meta_corpus import corpus_targets  # noqa: E402


def one_bug(name: str, seeds: range, examples: int, threads: int) -> dict:
    """Run one planted bug with each seed; all properties run, as in the meta-test."""
    import torch

    from fuzzgrad.engine.runner import fuzz_target

    torch.set_num_threads(threads)
    (target,) = [t for t in corpus_targets("buggy") if t.name == name]
    wanted = target.options["planted"]["property"]
    missed, found_at = [], []
    start = time.perf_counter()
    for seed in seeds:
        with tempfile.TemporaryDirectory() as report:
            result = fuzz_target(target, max_examples=examples, seed=seed, report_dir=report)
        hit = [f for f in result.failures if f.property == wanted]
        if hit:
            found_at.append(hit[0].seconds_to_find or 0.0)
        else:
            missed.append(seed)
    return {
        "name": name,
        "property": wanted,
        "caught": len(seeds) - len(missed),
        "missed": missed,
        "median_find": statistics.median(found_at) if found_at else None,
        "seconds": time.perf_counter() - start,
    }


def one_pair(name: str, seeds: range, examples: int, threads: int) -> dict:
    """Run one planted pair with each seed: how many seeds found each of its bugs as a finding
    of its own, and how many findings the runs had."""
    import torch

    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.verdict.identity import kind_has

    torch.set_num_threads(threads)
    (target,) = [t for t in corpus_targets("twobugs") if t.name == name]
    planted = target.options["planted_pair"]
    missed, findings, seconds = [], [], []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as report:
            start = time.perf_counter()
            result = fuzz_target(target, max_examples=examples, seed=seed, report_dir=report)
            seconds.append(time.perf_counter() - start)
        hits = [sum(kind_has(f.kind, p) for f in result.failures) for p in planted]
        if hits != [1] * len(planted):
            missed.append(seed)
        findings.append(len(result.failures))
    return {
        "name": name,
        "property": f"{len(planted)} bug(s)",
        "caught": len(seeds) - len(missed),
        "missed": missed,
        "median_find": statistics.median(seconds),
        "findings": f"{min(findings)}-{max(findings)}",
        "seconds": sum(seconds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per bug (default: 20)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the seeds are this one on (default: 0)"
    )
    parser.add_argument(
        "--examples", type=int, default=150, help="examples per run (default: 150, the meta-test's)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="bugs run in parallel (default: 1)")
    parser.add_argument("-k", "--target", action="append", help="only this planted bug")
    parser.add_argument(
        "--pairs", action="store_true", help="the planted pairs (tests/corpus/twobugs.py)"
    )
    args = parser.parse_args(argv)
    names = [t.name for t in corpus_targets("twobugs" if args.pairs else "buggy")]
    if args.target:
        unknown = sorted(set(args.target) - set(names))
        if unknown:
            parser.error(f"no planted bug named {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.target]
    start = time.perf_counter()
    threads = max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        run = one_pair if args.pairs else one_bug
        futures = [pool.submit(run, n, seeds, args.examples, threads) for n in names]
        rows = [f.result() for f in futures]
    timing = "median run" if args.pairs else "median find"
    extra = f" {'findings':>9s}" if args.pairs else ""
    print(f"{'planted bug':40s} {'property':22s} {'caught':>8s} {timing:>12s}{extra}  missed seeds")
    for r in rows:
        find = f"{r['median_find']:.2f} s" if r["median_find"] is not None else "-"
        caught = f"{r['caught']}/{args.seeds}"
        missed = ", ".join(map(str, r["missed"][:10])) + (" ..." if len(r["missed"]) > 10 else "")
        extra = f" {r['findings']:>9s}" if args.pairs else ""
        print(f"{r['name']:40s} {r['property']:22s} {caught:>8s} {find:>12s}{extra}  {missed}")
    total = sum(r["caught"] for r in rows)
    always = sum(r["caught"] == args.seeds for r in rows)
    print(
        f"\n{total}/{len(rows) * args.seeds} runs caught their bug; {always} of {len(rows)} bugs "
        f"caught by every seed ({args.examples} examples each, {time.perf_counter() - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
