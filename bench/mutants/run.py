"""The bug-finding benchmark: fuzzgrad against gradcheck baselines on mutants of the built-ins.

    python -m bench.mutants.run --budget 3 --jobs 2 [--json out.json]
    python -m bench.mutants.run --limit 20 --targets SiLU,Linear --operators flip_sign,drop_grad

Every tool gets the same wall budget per subject (a mutant, or an unmutated target for the
false-alarm count), in one process each of ``--jobs`` spawned workers, one thread each.
Mutants that fuzzgrad misses are re-fuzzed with ``--confirm-budget``; those that no tool kills
even then are equivalence candidates, listed with the hand-checked reason in `equivalent.py`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
import warnings
import zlib
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `bench.mutants` importable
    sys.path.insert(0, str(ROOT))

_MUTANTS: dict = {}


class TaskTimeout(BaseException):
    """A baseline ran far past its budget (a hanging mutant): a BaseException, so that neither
    Hypothesis nor gradcheck's callers treat it as an ordinary failure."""


def _init_worker() -> None:
    """One thread per worker (the budget is per core), a bounded shrink, JAX warmed up."""
    warnings.filterwarnings("ignore")
    import hypothesis.internal.conjecture.engine as engine
    import torch

    from bench.mutants.tools import SHRINK_SECONDS
    from fuzzgrad.oracles.jax_ref import shared_jax

    torch.set_num_threads(1)
    engine.MAX_SHRINKING_SECONDS = SHRINK_SECONDS
    shared_jax()


def _subject(mutant_id: str | None, target_name: str):
    from bench.mutants.mutants import all_mutants, build, builtin_targets

    targets = builtin_targets()
    if mutant_id is None:
        return targets[target_name]
    if not _MUTANTS:
        _MUTANTS.update({m.id: m for m in all_mutants(targets.values())})
    return build(_MUTANTS[mutant_id], targets[target_name])


def _on_alarm(signum, frame):
    raise TaskTimeout


def run_task(task: tuple) -> dict:
    """Run one tool on one subject; returns the `tools.Outcome` as a dict (picklable)."""
    from bench.mutants.tools import RUNNERS, SHRINK_SECONDS, Outcome

    phase, tool, target_name, mutant_id, budget = task
    name = mutant_id or target_name
    seed = zlib.crc32(f"{phase}:{name}".encode())
    start = time.monotonic()
    subject = _subject(mutant_id, target_name)
    guard = tool != "fuzzgrad"  # fuzzgrad arms its own per-example SIGALRM
    if guard:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(int(budget + SHRINK_SECONDS + 60))
    try:
        out = RUNNERS[tool](subject, budget, seed)
    except TaskTimeout:
        out = Outcome(
            tool,
            name,
            True,
            time.monotonic() - start,
            None,
            0,
            time.monotonic() - start,
            "hung: ran far past the budget",
        )
    finally:
        if guard:
            signal.alarm(0)
    out.subject = name
    return {"phase": phase, "target": target_name, "mutant": mutant_id, **asdict(out)}


def _spread(items: list, n: int) -> list:
    """``n`` items evenly spaced over ``items`` (all of them if there are fewer)."""
    if n >= len(items):
        return list(items)
    return [items[round(k * (len(items) - 1) / max(n - 1, 1))] for k in range(n)]


def select(mutants: list, targets: list[str] | None, per_operator: int, limit: int | None) -> list:
    """The mutants to run: at most ``per_operator`` sites per (target, operator), spread out."""
    groups: dict[tuple[str, str], list] = {}
    for m in mutants:
        if targets is None or m.target in targets:
            groups.setdefault((m.target, m.operator), []).append(m)
    chosen = [m for group in groups.values() for m in _spread(group, per_operator)]
    return _spread(chosen, limit) if limit else chosen


def _pool_run(pool, tasks: list[tuple], label: str) -> list[dict]:
    results = []
    started = time.monotonic()
    for k, r in enumerate(pool.imap_unordered(run_task, tasks, chunksize=1), 1):
        results.append(r)
        if k % 25 == 0 or k == len(tasks):
            print(
                f"  {label}: {k}/{len(tasks)} ({time.monotonic() - started:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per tool per subject")
    parser.add_argument(
        "--confirm-budget",
        type=float,
        default=None,
        help="fuzzgrad's seconds on mutants no tool killed (default 5x budget)",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--per-operator",
        type=int,
        default=1,
        help="at most this many sites per target and operator",
    )
    parser.add_argument("--limit", type=int, default=None, help="run at most N mutants")
    parser.add_argument("--targets", default=None, help="comma-separated target names")
    parser.add_argument("--operators", default=None, help="comma-separated operator names")
    parser.add_argument("--tools", default="fuzzgrad,gradcheck,hypothesis")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="print the tables of an earlier --json file; run nothing",
    )
    args = parser.parse_args(argv)
    if args.report:
        return _report(args.report)
    # before torch or JAX is imported anywhere: one thread per process, also in the workers
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )
    warnings.filterwarnings("ignore")

    from bench.mutants.mutants import all_mutants, builtin_targets
    from bench.mutants.operators import OPERATORS
    from bench.mutants.report import summarise

    tools = args.tools.split(",")
    operators = args.operators.split(",") if args.operators else None
    unknown = sorted(set(operators or []) - set(OPERATORS))
    if unknown:
        parser.error(f"unknown operators {unknown}; known: {', '.join(OPERATORS)}")
    targets = builtin_targets()
    wanted = args.targets.split(",") if args.targets else None
    if wanted and set(wanted) - set(targets):
        parser.error(f"unknown targets {sorted(set(wanted) - set(targets))}")
    generated = all_mutants(targets.values(), operators)
    chosen = select(generated, wanted, args.per_operator, args.limit)
    names = sorted({m.target for m in chosen}, key=list(targets).index)
    confirm = args.confirm_budget or 5 * args.budget
    print(
        f"{len(generated)} mutants generated, {len(chosen)} selected on {len(names)} targets; "
        f"budget {args.budget:g}s per tool, {args.jobs} jobs",
        file=sys.stderr,
    )

    started = time.monotonic()
    tasks = [("main", tool, n, None, args.budget) for n in names for tool in tools]
    tasks += [("main", tool, m.target, m.id, args.budget) for m in chosen for tool in tools]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.jobs, initializer=_init_worker) as pool:
        outcomes = _pool_run(pool, tasks, "main")
        killed = {(o["tool"], o["subject"]) for o in outcomes if o["killed"]}
        # fuzzgrad's misses get a longer run: equivalence candidates (no tool killed them) and
        # a measure of whether a miss is the budget or a blind spot
        redo = [
            ("confirm", "fuzzgrad", m.target, m.id, confirm)
            for m in chosen
            if ("fuzzgrad", m.id) not in killed
        ]
        if redo and "fuzzgrad" in tools:
            outcomes += _pool_run(pool, redo, "confirm")
    seconds = time.monotonic() - started

    print(summarise(outcomes, generated, chosen, names, tools, args.budget, confirm, seconds))
    if args.json:
        payload = {
            "version": 1,
            "budget": args.budget,
            "confirm_budget": confirm,
            "jobs": args.jobs,
            "seconds": round(seconds, 1),
            "tools": tools,
            "targets": names,
            "generated": [m.operator for m in generated],
            "mutants": [asdict(m) for m in chosen],
            "outcomes": outcomes,
        }
        args.json.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    return 0


def _report(path: Path) -> int:
    """Re-print the tables of a finished run (e.g. after editing `equivalent.py`)."""
    from types import SimpleNamespace

    from bench.mutants.mutants import Mutant
    from bench.mutants.report import summarise

    data = json.loads(path.read_text())
    chosen = [Mutant(**m) for m in data["mutants"]]
    tools = data.get("tools") or sorted({o["tool"] for o in data["outcomes"]})
    names = data.get("targets") or list(dict.fromkeys(m.target for m in chosen))
    generated = [SimpleNamespace(operator=op) for op in data.get("generated", [])] or chosen
    print(
        summarise(
            data["outcomes"],
            generated,
            chosen,
            names,
            tools,
            data["budget"],
            data["confirm_budget"],
            data["seconds"],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
