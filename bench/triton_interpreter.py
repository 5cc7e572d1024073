"""What Triton's interpreter costs fuzzgrad, and how fast it finds the planted Triton bugs.

For each built-in Triton target (and, to compare, the torch targets they mirror): examples per
second over a derandomized run of every property. For each planted twin in
tests/corpus/buggy_triton.py: seconds and examples to the first failure, seconds with shrinking
and diagnosis, and the shrunk case. Prints markdown tables (benchmarks.md keeps a run's output).

    python bench/triton_interpreter.py --examples 30
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARE = {"TritonRMSNorm": "RMSNorm", "TritonSoftmax": "Softmax"}


def _throughput(targets, examples: int, report: Path) -> list[str]:
    from fuzzgrad.engine.runner import fuzz_target

    rows = ["| target | examples | seconds | examples/s |", "|---|---|---|---|"]
    for t in targets:
        started = time.perf_counter()
        result = fuzz_target(t, max_examples=examples, derandomize=True, report_dir=report)
        seconds = time.perf_counter() - started
        state = "" if not (result.failures or result.error) else " (failed!)"
        rows.append(
            f"| {t.name}{state} | {result.examples} | {seconds:.1f} | "
            f"{result.examples / seconds:.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def _planted(examples: int, report: Path) -> list[str]:
    from fuzzgrad.engine.runner import fuzz_target
    from fuzzgrad.registry.discovery import load_targets

    rows = [
        "| twin | bug | caught by | s to find | examples to find | s with shrinking | shrunk to "
        "| diagnosis |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in load_targets([str(ROOT / "tests" / "corpus" / "buggy_triton.py")]):
        planted = t.options["planted"]
        started = time.perf_counter()
        result = fuzz_target(t, max_examples=examples, derandomize=True, report_dir=report)
        seconds = time.perf_counter() - started
        hit = next((f for f in result.failures if f.property == planted["property"]), None)
        if hit is None:
            rows.append(f"| {t.name} | {planted['bug_class']} | MISSED | | | {seconds:.1f} | | |")
        else:
            shapes = ", ".join(
                f"{tuple(i['shape'])} {i['dtype']} stride {tuple(i['stride'])}" for i in hit.inputs
            )
            rows.append(
                f"| {t.name} | {planted['bug_class']} | {hit.property} | "
                f"{hit.seconds_to_find:.1f} | {hit.examples_to_find} | {seconds:.1f} | {shapes} | "
                f"{hit.diagnosis} |"
            )
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=30, help="examples per target")
    parser.add_argument("--bug-examples", type=int, default=150, help="examples per twin")
    args = parser.parse_args(argv)
    from fuzzgrad.registry.discovery import load_targets
    from fuzzgrad.targets import _triton

    if not _triton.USABLE:
        print(f"Triton is not usable here: {_triton.WHY_NOT}", file=sys.stderr)
        return 2
    mode = "interpreter (CPU)" if _triton.INTERPRETED else "compiled (GPU)"
    print(f"Triton {_triton.triton.__version__}, {mode}\n")
    builtin = {t.name: t for t in load_targets()}
    triton = [t for name, t in builtin.items() if name.startswith("Triton")]
    torch_twins = [builtin[COMPARE[t.name]] for t in triton if t.name in COMPARE]
    with tempfile.TemporaryDirectory() as tmp:
        table = _throughput(triton + torch_twins, args.examples, Path(tmp))
        print("\n" + "\n".join(table) + "\n")
        print("\n".join(_planted(args.bug_examples, Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
