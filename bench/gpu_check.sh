#!/usr/bin/env bash
# The GPU check, on a machine with a CUDA GPU, in at most about five minutes:
#   1. install fuzzgrad with its dev and triton extras (keeping a CUDA torch already there);
#   2. run the test suite's CUDA-marked tests (tests/test_cuda.py: compiled Triton kernels,
#      device discovery, the `cuda` property catching a CUDA-only bug);
#   3. fuzz every built-in target, the Triton ones compiled (not interpreted), for a short budget;
#   4. run the `cuda` property (CUDA vs CPU) alone on the built-in torch targets.
# Each step has its own time limit; its log goes to $GPU_CHECK_DIR (default gpu-check/), and a
# short summary to $GPU_CHECK_DIR/result.txt. The script always exits 0: read the summary.
#
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_CHECK_DIR:-gpu-check}
mkdir -p "$DIR"
RESULT="$DIR/result.txt"
: >"$RESULT"
START=$(date +%s)

note() { echo "$*" | tee -a "$RESULT"; }

step() { # step NAME SECONDS COMMAND...: run with a time limit, log it, note how it ended
    local name=$1 limit=$2 began rc
    shift 2
    began=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$DIR/$name.log" 2>&1
    rc=$?
    note "$name: exit $rc$([ $rc = 124 ] && echo ' (time limit)') in $(($(date +%s) - began))s"
    tail -n 4 "$DIR/$name.log" | sed 's/^/    /' | tee -a "$RESULT"
}

note "gpu_check $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 |
    sed 's/^/gpu: /' | tee -a "$RESULT"

# 1. Install. --system-site-packages keeps a CUDA torch (and Triton) the machine already has;
# short pip timeouts, so a machine without the registry fails fast and says so.
python3 -m venv --system-site-packages .venv-gpu && . .venv-gpu/bin/activate
step install 75 pip install --timeout 10 --retries 1 -e ".[dev,triton]"
python - <<'PY' 2>&1 | tee -a "$RESULT"
import torch
from fuzzgrad.targets import _triton  # decides compiled or interpreted, as the targets do
from fuzzgrad.strategies._tensors import device_names
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), devices {device_names()}")
print(f"triton {getattr(_triton.triton, '__version__', None)}: usable={_triton.USABLE} "
      f"interpreted={_triton.INTERPRETED} devices={_triton.DEVICES} ({_triton.WHY_NOT or 'ok'})")
PY

# 2. The CUDA-marked tests.
step cuda_tests 60 python -m pytest -q -p no:cacheprovider -m cuda tests

# 3. Every built-in target, compiled Triton included (--budget includes the slow ones).
step fuzz 90 fuzzgrad fuzz --budget 60s --jobs auto --example-timeout 20s \
    --report "$DIR/fuzz-report" --database none --seed 0

# 4. CUDA vs CPU on the torch targets (the Triton ones are drawn on CUDA only: see README).
step cuda_property 60 fuzzgrad fuzz --properties cuda --max-examples 40 --jobs auto \
    --report "$DIR/cuda-report" --database none --seed 0

python - "$DIR" <<'PY' 2>&1 | tee -a "$RESULT"
import json, sys
from pathlib import Path
for name in ("fuzz-report", "cuda-report"):
    path = Path(sys.argv[1]) / name / "results.json"
    if not path.exists():
        print(f"{name}: no results.json")
        continue
    targets = json.loads(path.read_text())["targets"]
    counts = {}
    for t in targets:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    print(f"{name}: {len(targets)} targets, {counts}")
    for t in targets:
        if t["status"] not in ("passed", "xfailed"):
            why = [f["property"] + ": " + f["diagnosis"] for f in t.get("failures") or []]
            print(f"    {t['name']} {t['status']} {t.get('error') or why}"[:400])
        elif t["name"].startswith("Triton"):
            print(f"    {t['name']} {t['status']}: {t['examples']} examples in {t['seconds']}s")
PY
note "total: $(($(date +%s) - START))s"
exit 0
