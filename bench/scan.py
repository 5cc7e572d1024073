"""`fuzzgrad scan` with no registration: per package, what it finds and what that costs.

Scans each package (the published libraries of `examples/` where installed, and the test
corpus package `tests/corpus/scan_pkg`) in a fresh process, as a user would run it, and prints
per package: the custom Functions (and custom operators) found, how many are registered, the
contracts inferred (how many judged by finite differences), the findings per property, the
targets that errored, and the wall time of the inference and of the whole scan.

    python bench/scan.py                         # entmax, pypose, kornia, scan_pkg
    python bench/scan.py --max-examples 100 --seed 0 entmax
    python bench/scan.py --trace "python examples/entmax_ops.py" entmax

The findings are the scan's claims: each must be verified independently (gradcheck or hand
math) before it is called a bug (`benchmarks.md` says which were).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "entmax": "entmax",
    "pypose": "pypose",
    "kornia": "kornia",
    "scan_pkg": str(ROOT / "tests" / "corpus" / "scan_pkg"),
}


def scan(spec: str, args: argparse.Namespace, report: Path) -> dict:
    argv = [sys.executable, "-m", "fuzzgrad.integrations.cli", "scan", spec, "--report"]
    argv += [str(report), "--max-examples", str(args.max_examples), "--seed", str(args.seed)]
    argv += ["--database", "none"] + (["--trace", args.trace] if args.trace else [])
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - started
    record = (
        json.loads((report / "scan.json").read_text()) if (report / "scan.json").exists() else {}
    )
    results = report / "results.json"
    targets = json.loads(results.read_text())["targets"] if results.exists() else []
    fuzzing = sum(t.get("seconds") or 0 for t in targets)
    traced = [line for line in done.stdout.splitlines() if line.startswith("fuzzgrad scan: traced")]
    return {"exit": done.returncode, "wall": wall, "fuzzing": fuzzing, "record": record,
            "targets": targets, "stderr": done.stderr[-2000:], "traced": traced}  # fmt: skip


def row(name: str, out: dict) -> str:
    functions = out["record"].get("functions", [])
    registered = sum(1 for f in functions if f.get("registered"))
    inferred = [f for f in functions if f.get("contract")]
    by_differences = sum(1 for f in inferred if f.get("oracle") == "differences")
    findings = Counter(p for t in out["targets"] for p in {f["property"] for f in t["failures"]})
    failed = sorted(t["name"] for t in out["targets"] if t["status"] == "failed")
    errors = sorted(t["name"] for t in out["targets"] if t["status"] == "error")
    found = ", ".join(f"{p} {n}" for p, n in sorted(findings.items())) or "none"
    return (
        f"{name:10s} {len(functions):4d} found {registered:3d} registered "
        f"{len(inferred):3d} inferred ({by_differences} by differences)  "
        f"findings: {found}  failed: {', '.join(failed) or '-'}  errors: {len(errors)}  "
        f"exit {out['exit']}  wall {out['wall']:.0f}s (fuzzing {out['fuzzing']:.0f}s, "
        f"inference and start-up {out['wall'] - out['fuzzing']:.0f}s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=list(PACKAGES), metavar="PACKAGE")
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace", default=None, help="a command whose calls seed the contracts")
    args = parser.parse_args()
    for name in args.packages:
        spec = PACKAGES.get(name, name)
        if not Path(spec).exists() and importlib.util.find_spec(spec) is None:
            print(f"{name:10s} not installed (pip install -e '.[examples]')")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            out = scan(spec, args, Path(tmp) / "report")
        print(row(name, out), flush=True)
        for line in out["traced"]:
            print(f"  {line}")
        if out["exit"] not in (0, 1):
            print(f"  scan exited {out['exit']}: {out['stderr']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
