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
# Hypothesis's defaults as parent: on a CI system the loaded profile is Hypothesis's `ci`, whose
# derandomization and lack of a database the others would otherwise inherit
_DEFAULT = settings.get_profile("default")
settings.register_profile("dev", _DEFAULT, deadline=None, max_examples=100)
settings.register_profile("nightly", _DEFAULT, deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TESTS = Path(__file__).parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # so `corpus` imports as a package

os.environ.setdefault("FUZZGRAD_JAX_CACHE", str(Path.home() / ".cache" / "fuzzgrad" / "jax"))


#: results.json files already validated: path -> (mtime, size) when they were.
_VALIDATED: dict[Path, tuple[int, int]] = {}


def validate_reports(root: Path, skip: tuple[Path, ...] | set[Path] = ()) -> None:
    """Validate every results.json under ``root`` against the package's JSON Schema, with the
    jsonschema package (the loader's own check is a small interpreter of the same schema)."""
    import json

    import jsonschema

    from fuzzgrad.report.results import schema

    validator = jsonschema.Draft202012Validator(schema())
    for path in sorted(root.rglob("results.json")):
        if any(path.is_relative_to(folder) for folder in skip):
            continue
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if _VALIDATED.get(path) == stamp:
            continue
        document = json.loads(path.read_text())
        error = jsonschema.exceptions.best_match(validator.iter_errors(document))
        assert error is None, (
            f"{path} breaks fuzzgrad/report/results.schema.json at {error.json_path}: "
            f"{error.message}"
        )
        _VALIDATED[path] = stamp


#: tmp_path folders of tests marked ``malformed_results``: they write broken files on purpose.
_BROKEN_ON_PURPOSE: set[Path] = set()


@pytest.fixture(autouse=True)
def _reports_follow_the_schema(request):
    """Every results.json a test writes under its tmp_path follows the schema (unless the test
    is marked ``malformed_results``: it writes broken ones on purpose)."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is None or not tmp.is_dir():
        return
    if request.node.get_closest_marker("malformed_results"):
        _BROKEN_ON_PURPOSE.add(tmp)
    else:
        validate_reports(tmp)


@pytest.fixture(scope="session", autouse=True)
def _all_reports_follow_the_schema(tmp_path_factory):
    """And those written elsewhere in this session's temp folder (module-scoped fixtures,
    pytester projects), checked once at the end."""
    yield
    validate_reports(tmp_path_factory.getbasetemp(), skip=_BROKEN_ON_PURPOSE)


WRONG_MODULE = """
import torch
import fuzzgrad as fg


class Wrong(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        {backward}


fg.register(Wrong, reference=lambda x: x * 2, name={name!r})
"""


@pytest.fixture
def wrong_module(tmp_path):
    """``wrong_module(name, backward=...)``: the path of a module registering, as ``name``, a
    Function that doubles x and whose backward (by default ``return grad * 3``) is wrong."""

    def write(name: str, backward: str = "return grad * 3") -> Path:
        path = tmp_path / "wrong.py"
        path.write_text(WRONG_MODULE.format(name=name, backward=backward))
        return path

    return write


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


@pytest.fixture
def redis_server():
    """``with redis_server(password=...) as url``: a Redis server of the test's own."""
    return _redis_server


@pytest.fixture
def schema_check():
    """`validate_reports`, the check every report the tests write goes through."""
    return validate_reports


@contextlib.contextmanager
def _redis_server(password: str | None = None):
    """Start a Redis server on a free loopback port (requiring ``password`` when given) and
    yield its URL (without the password); skip the test where Redis is not available."""
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
    auth = ["--requirepass", password] if password else []
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         *auth],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url, password=password, socket_connect_timeout=0.2).ping()
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
    with _redis_server() as url:
        yield url
