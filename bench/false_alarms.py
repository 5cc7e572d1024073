"""False alarms on correct code: every target that should pass, fuzzed from fresh seeds.

The targets: fuzzgrad's built-in ones, the published libraries' registrations of `examples/`
(their known-wrong ones, registered ``xfail``, are left out: they are expected to fail), the
correct twins of the meta-corpus (`tests/corpus/correct*.py`) and the README's and docs'
examples. Each is fuzzed from ``--seeds`` seeds (``--first-seed`` on, so each sweep can use seeds
no earlier one used) with ``--max-examples`` examples; every failure or error of any of them is a
false alarm, printed with its message. A Triton or CUDA target is left out where its backend is
missing, as a plain run would.

    python bench/false_alarms.py --seeds 20 --max-examples 200 --first-seed 1000
    python bench/false_alarms.py --seeds 2 --max-examples 100 -k corpus
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _doc_targets() -> list:
    """The targets the README's and docs' runnable Python blocks register (as tests/test_docs.py
    runs them)."""
    from test_docs import PAGES, blocks

    out = []
    for page in PAGES:
        code = [
            b.code for b in blocks(page) if b.lang == "python" and b.mark not in ("not-run", "file")
        ]
        if not code or "tutorial" in page.name:
            continue
        module = types.ModuleType(f"fuzzgrad_docs_{page.stem}")
        sys.modules[module.__name__] = module
        exec(compile("\n".join(code), str(page), "exec"), module.__dict__)  # noqa: S102
        out += [("docs", t) for t in module.__dict__.get("__fuzzgrad_targets__", {}).values()]
    return out


def correct_targets() -> list[tuple[str, object]]:
    """(group, target) for every target that should pass."""
    from fuzzgrad.registry.discovery import load_targets

    out = [("built-in", t) for t in load_targets(["fuzzgrad.targets"]) if not t.xfail]
    try:
        out += [("examples", t) for t in load_targets([str(ROOT / "examples")]) if not t.xfail]
    except Exception as exc:  # noqa: BLE001 - the extra is not installed
        print(f"examples/ left out: {type(exc).__name__}: {exc}")
    for f in sorted((ROOT / "tests" / "corpus").glob("correct*.py")):
        out += [("corpus", t) for t in load_targets([str(f)])]
    return out + _doc_targets()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--max-examples", type=int, default=200)
    p.add_argument("-k", default=None, help="only targets whose group or name matches (regex)")
    args = p.parse_args()

    import torch

    from fuzzgrad.engine.runner import fuzz_target

    torch.set_num_threads(1)
    targets = correct_targets()
    if args.k:
        targets = [(g, t) for g, t in targets if re.search(args.k, f"{g} {t.name}")]
    alarms = runs = examples = 0
    start = time.perf_counter()
    for group, target in targets:
        if target.options.get("slow"):
            continue  # the Triton interpreter's targets: bench/triton_interpreter.py
        bad: list[str] = []
        n = 0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = fuzz_target(target, max_examples=args.max_examples, seed=seed)
            runs, n = runs + 1, n + r.examples
            if r.status == "skipped":
                continue
            bad += [f"seed {seed} {f.property}: {f.message[:160]}" for f in r.failures]
            if r.error:
                bad.append(f"seed {seed} error: {str(r.error.get('message'))[:160]}")
        examples += n
        alarms += len(bad)
        print(f"{group:9s} {target.name:34s} {n:7d} examples  {len(bad)} false alarms", flush=True)
        for line in bad:
            print(f"    {line}")
    print(
        f"\n{len(targets)} targets, {runs} runs, {examples} examples in "
        f"{time.perf_counter() - start:.0f}s: {alarms} false alarms"
    )
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main())
