"""fuzzgrad fuzzes itself (issue 23): random registrations made through the public API, each
fuzzed for a few examples, raise no exception of fuzzgrad's own, draw no input outside its
spec, raise no false alarm on a correct Function, and are registration errors (naming the
target) only where the drawn registration is invalid. ``bench/self_fuzz.py --minutes N`` runs
the same for longer; this is its fast, seeded slice."""

from __future__ import annotations

import random
import sys
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.self_fuzz import FAMILIES, draw_registration, run_one  # noqa: E402

#: Registrations drawn, and examples each: about 40 s on one core.
REGISTRATIONS = 100
EXAMPLES = 8


def test_random_registrations_fuzz_without_internal_errors_inside_their_specs(tmp_path):
    rng = random.Random(0)
    findings: list[str] = []
    families: Counter = Counter()
    statuses: Counter = Counter()
    cases = 0
    with warnings.catch_warnings():  # a user's run: the Functions' warnings are not errors
        warnings.simplefilter("ignore")
        for i in range(REGISTRATIONS):
            drawn = draw_registration(rng)
            out = run_one(drawn, max_examples=EXAMPLES, seed=i, report_dir=str(tmp_path))
            families[drawn.family.split("_")[0]] += 1
            statuses[out.status] += 1
            cases += out.cases
            findings += [f"[{i}] {drawn.describe()}\n{f}" for f in out.findings]
    assert not findings, "\n\n".join(findings)
    # the draw reaches every family, every kind of outcome, and many cases
    assert set(families) == {f.split("_")[0] for f in FAMILIES}
    assert {"passed", "failed", "registration error"} <= set(statuses), statuses
    assert cases >= REGISTRATIONS * EXAMPLES // 2, cases
