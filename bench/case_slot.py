"""What writing the running example costs a nightly worker, per example: the in-place
`CaseSlot` against a temporary file renamed over the last one at zlib level 9 (the way before).

    python bench/case_slot.py
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from fuzzgrad.nightly.worker import CaseSlot
from fuzzgrad.registry.target import make_target
from fuzzgrad.report.reproducer import encode_value
from fuzzgrad.strategies import Case


def renamed(path: Path, case: Case) -> None:
    data = {"example": 1, "args": [encode_value(a) for a in case.args]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main() -> None:
    target = make_target(lambda x: x * 2, reference=lambda x: x * 2, name="double")
    folder = Path(tempfile.mkdtemp())
    for label, x in (("1 element", torch.tensor([0.5])), ("64 float32", torch.randn(64)),
                     ("4096 float64", torch.randn(4096, dtype=torch.float64))):  # fmt: skip
        case = Case(args=(x,), requires_grad=(True,), cotangents=())
        slot = CaseSlot(folder / "slot.json")
        writers = {
            "rename, level 9": lambda c=case: renamed(folder / "old.json", c),
            "in place, level 1": lambda c=case, s=slot: s.write(target, c, 1),
        }
        times = {}
        for name, write in writers.items():
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < 1.0:
                write()
                n += 1
            times[name] = (time.perf_counter() - start) / n * 1e6
        print(f"{label:>13}: " + ", ".join(f"{k} {v:.0f} us" for k, v in times.items()))


if __name__ == "__main__":
    main()
