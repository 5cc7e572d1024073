"""The example database of a nightly run: a folder, or a Redis server that all machines share,
with a folder in the report to fall back on when the server cannot be reached.

An unreachable server (at the start, or going away mid-run) is one warning, and fuzzing goes
on: what is saved from then on goes to the fallback folder, so nothing found is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The fallback database's folder inside the report, when the shared one is out of reach.
FALLBACK_DATABASE = "examples"

_REDIS: dict[str, Any] = {}
_DOWN: set[str] = set()  # shared databases this process found unreachable


def is_shared(spec: str | None) -> bool:
    """Whether a ``--database`` value names a Redis server (else a folder, or none)."""
    return bool(spec and spec.startswith(("redis://", "rediss://", "unix://")))


def redis_client(spec: str):
    """A Redis client that gives up quickly: an unreachable server is a warning, not a stall."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = _REDIS.get(spec)
    if client is None:
        client = _REDIS[spec] = Redis.from_url(
            spec, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 1)
        )
    return client


def open_database(
    spec: str | None,
    key: str,
    *,
    fallback: Path | None = None,
    warn: Callable[[str, str], None] | None = None,
) -> Any:
    """The Hypothesis example database for one target: a folder, a Redis URL, or none.

    A Redis database falls back to the folder ``fallback / key`` (in the report) once the server
    cannot be reached, at the start or mid-run: ``warn("database", message)`` is called the first
    time, and fuzzing goes on with nothing lost.
    """
    from hypothesis.database import DirectoryBasedExampleDatabase

    if not spec or spec.lower() == "none":
        return None
    if not is_shared(spec):
        return DirectoryBasedExampleDatabase(Path(spec) / key)
    from hypothesis.extra.redis import RedisExampleDatabase
    from redis.exceptions import RedisError

    local = DirectoryBasedExampleDatabase(Path(fallback or FALLBACK_DATABASE) / key)
    shared = RedisExampleDatabase(redis_client(spec), key_prefix=f"fuzzgrad:{key}:".encode())
    return _with_fallback(spec, shared, local, (RedisError, OSError), warn, fallback)


def _with_fallback(spec, shared, local, errors, warn, folder):
    from hypothesis.database import ExampleDatabase

    class FallbackDatabase(ExampleDatabase):
        """``shared`` while it answers, then ``local`` for the rest of this process."""

        def __repr__(self) -> str:
            return f"FallbackDatabase({shared!r}, {local!r})"

        def _use(self, operation: Callable[[Any], Any]) -> Any:
            if spec not in _DOWN:
                try:
                    return operation(shared)
                except errors as exc:
                    _DOWN.add(spec)
                    if warn is not None:
                        warn(
                            "database",
                            f"{_unreachable(exc)}; failures are kept in "
                            f"{folder or FALLBACK_DATABASE} instead, and fuzzing goes on",
                        )
            return operation(local)

        def fetch(self, key: bytes):
            return iter(self._use(lambda db: list(db.fetch(key))))

        def save(self, key: bytes, value: bytes) -> None:
            self._use(lambda db: db.save(key, value))

        def delete(self, key: bytes, value: bytes) -> None:
            self._use(lambda db: db.delete(key, value))

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            self._use(lambda db: db.move(src, dest, value))

    return FallbackDatabase()


def _unreachable(exc: BaseException) -> str:
    # The URL is left out: it may carry a password.
    return f"the Redis example database is unreachable ({type(exc).__name__}: {exc})"


def database_problem(spec: str | None) -> str | None:
    """Why the database cannot be used as given (None: it can, as far as a quick probe tells):
    a Redis server that does not answer, or a folder that cannot be written."""
    if not spec or spec.lower() == "none":
        return None
    if is_shared(spec):
        from redis.exceptions import RedisError

        try:
            redis_client(spec).ping()
        except (RedisError, OSError) as exc:
            _DOWN.add(spec)
            return _unreachable(exc)
        return None
    import tempfile

    try:
        Path(spec).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=spec):
            pass
    except OSError as exc:
        return f"the example database folder {spec} cannot be written ({exc})"
    return None
