"""What a run of failing targets costs: seconds, examples and findings per target.

Runs every planted bug of tests/corpus (``buggy*`` and the planted pairs of ``twobugs``) with
``--seeds`` seeds at ``--examples`` examples and prints, per target, the median seconds of a run,
the examples it ran (shrinking's replays included), the findings it reported, and how far its
findings shrank: the median number of elements of a finding's tensor inputs (an empty or 0-d
tensor counts 1) against the smallest failing input the planted bug admits (its ``minimal``,
else 1).
Run it with another checkout first on ``PYTHONPATH`` to compare two versions of the search on
the same machine (what continuing after a property's first failure costs):

    python bench/run_cost.py --seeds 3
    PYTHONPATH=/path/to/old/checkout python bench/run_cost.py --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from meta_corpus import corpus_targets, shrunk_size  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per target (default: 3)")
    parser.add_argument("--examples", type=int, default=150, help="examples per run")
    parser.add_argument("-k", "--target", action="append", help="only this target")
    args = parser.parse_args(argv)

    import fuzzgrad
    from fuzzgrad.engine.runner import fuzz_target

    targets = [
        t
        for t in corpus_targets("buggy") + corpus_targets("twobugs")
        if not t.slow and (not args.target or t.name in args.target)
    ]
    print(f"fuzzgrad from {Path(fuzzgrad.__file__).parent}")
    print(
        f"{'target':44s} {'median s':>9s} {'examples':>9s} {'findings':>9s} "
        f"{'shrunk':>7s} {'minimal':>7s}"
    )
    total = 0.0
    for target in targets:
        seconds, examples, findings, sizes = [], [], [], []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as report:
                start = time.perf_counter()
                result = fuzz_target(
                    target, max_examples=args.examples, seed=seed, report_dir=report
                )
                seconds.append(time.perf_counter() - start)
            examples.append(result.examples)
            findings.append(len(result.failures))
            sizes += [shrunk_size(f) for f in result.failures if f.case is not None]
        total += sum(seconds)
        planted = target.options.get("planted") or {}
        shrunk = f"{statistics.median(sizes):7.0f}" if sizes else "      -"
        print(
            f"{target.name:44s} {statistics.median(seconds):9.2f} "
            f"{statistics.median(examples):9.0f} {statistics.median(findings):9.1f} "
            f"{shrunk} {planted.get('minimal', 1):7d}"
        )
    print(f"\n{len(targets)} targets x {args.seeds} seeds: {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
