"""Shared fixtures and the Hypothesis profiles for fuzzgrad's own tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=50,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile("nightly", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # so `corpus` imports as a package

os.environ.setdefault("FUZZGRAD_JAX_CACHE", str(Path.home() / ".cache" / "fuzzgrad" / "jax"))


@pytest.fixture
def write_module(tmp_path):
    """Write a Python module into a temp folder and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        return path

    return write
