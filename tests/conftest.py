"""Shared fixtures and the Hypothesis profiles for fuzzgrad's own tests."""

from __future__ import annotations

import contextlib
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


def _free_loopback_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server():
    """Start a Redis server on a free loopback port; yield its URL; stop it on leaving.

    Skips the calling test (with the install hint the README gives) where the ``redis`` client
    package or ``redis-server`` is missing.
    """
    import shutil
    import subprocess
    import time

    redis = pytest.importorskip(
        "redis", reason='the Redis client is not installed: pip install -e ".[redis]"'
    )
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("no redis-server on PATH: apt-get install -y redis-server (see README)")
    port = _free_loopback_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url, socket_connect_timeout=0.2).ping()
                break
            except redis.exceptions.RedisError:
                if proc.poll() is not None:
                    pytest.skip(f"redis-server exited with status {proc.returncode}")
                time.sleep(0.05)
        else:
            pytest.skip(f"redis-server did not answer on {url}")
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="session")
def redis_url():
    """A Redis server on loopback for this test session, started and stopped here.

    ``FUZZGRAD_TEST_REDIS`` points at a server of your own instead. Skipped (with the install
    hint the README gives) where neither the ``redis`` client package nor a server is available.
    """
    pytest.importorskip(
        "redis", reason='the Redis client is not installed: pip install -e ".[redis]"'
    )
    url = os.environ.get("FUZZGRAD_TEST_REDIS")
    if url:
        yield url
        return
    with redis_server() as url:
        yield url
