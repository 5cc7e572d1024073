"""What `fuzzgrad scan --trace` runs in the tests: real calls of the traced Functions."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scan_pkg.traced import Cross, CrossFlipped  # noqa: E402

for rows in (5, 2):
    a, b = torch.randn(rows, 3), torch.randn(rows, 3)
    Cross.apply(a, b)
    CrossFlipped.apply(a, b)
