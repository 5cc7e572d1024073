"""The example database of a nightly run, from its ``--database`` spec: a folder; a Redis server
that all machines share (``redis://...``), with a folder in the report to fall back on when the
server cannot be reached; or a GitHub Actions artifact (``github-artifact://owner/repo[/name]``)
read through Hypothesis's `GitHubArtifactDatabase`, read-only, beside a local folder that takes
what is saved (upload that folder as the artifact, and the next run replays it).

An unreachable server (at the start, or going away mid-run) is one warning, and fuzzing goes
on: what is saved from then on goes to the fallback folder, so nothing found is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis.database import ExampleDatabase

#: The fallback database's folder inside the report, when the shared one is out of reach.
FALLBACK_DATABASE = "examples"

_REDIS: dict[str, Any] = {}
_DOWN: set[str] = set()  # shared databases this process found unreachable
_ARTIFACTS: dict[tuple[str, ...], Any] = {}  # one GitHubArtifactDatabase per artifact

GITHUB = "github-artifact://"
#: The artifact a ``github-artifact://owner/repo`` spec reads when it names none.
DEFAULT_ARTIFACT = "fuzzgrad-examples"


def is_shared(spec: str | None) -> bool:
    """Whether a ``--database`` value names a Redis server (else a folder, an artifact, or
    none)."""
    return bool(spec and spec.startswith(("redis://", "rediss://", "unix://")))


def is_folder(spec: str | None) -> bool:
    """Whether a ``--database`` value names a folder."""
    return (
        spec is not None
        and spec.lower() not in ("", "none")
        and not is_shared(spec)
        and ("://" not in spec)
    )


def github_artifact(spec: str) -> tuple[str, str, str, Path]:
    """``(owner, repo, artifact name, local folder)`` of a ``github-artifact://owner/repo[/name]
    [?local=DIR]`` spec; the local folder (default ``.fuzzgrad/<name>``) takes what the run
    saves. A ValueError says what is wrong."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(spec)
    path = [p for p in parts.path.split("/") if p]
    query = parse_qs(parts.query)
    valid = parts.scheme == GITHUB[:-3] and parts.netloc and 1 <= len(path) <= 2
    if not valid or set(query) - {"local"}:
        raise ValueError(
            f"--database {spec!r}: write github-artifact://OWNER/REPO[/ARTIFACT][?local=DIR]"
        )
    name = path[1] if len(path) == 2 else DEFAULT_ARTIFACT
    local = Path(query["local"][-1]) if "local" in query else Path(".fuzzgrad") / name
    return parts.netloc, path[0], name, local


def without_userinfo(spec: str) -> str:
    """``spec`` with everything between ``scheme://`` and the last ``@`` replaced by ``***``: a
    malformed URL (a ``#`` or ``/`` in its password) cannot be trusted to say where its password
    ends, so all that could be one goes."""
    scheme, sep, rest = spec.partition("://")
    if not sep or "@" not in rest:
        return spec if sep else "***"
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def redis_problem(spec: str) -> str | None:
    """Why a Redis URL is malformed (None: it is well formed), checked here rather than by the
    client, whose messages quote the parts it could not read, password included. The URL is
    shown without its user and password."""
    from urllib.parse import urlsplit

    if spec.startswith("unix://"):
        return None
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018 - reading it checks it (a ValueError when not a number)
        path = parts.path.strip("/")
        if not parts.hostname or parts.fragment or (path and not path.isdigit()):
            raise ValueError
    except ValueError:
        return (
            f"--database {without_userinfo(spec)!r} is not a Redis URL fuzzgrad can read; write "
            "redis://[USER:PASSWORD@]HOST[:PORT][/DB], with characters such as # / @ : in the "
            "password percent-encoded (%23 %2F %40 %3A)"
        )
    return None


def with_local_folder(spec: str | None) -> str | None:
    """``spec`` with its folder as an absolute path (for workers that run in other folders)."""
    from urllib.parse import quote

    if spec is not None and is_folder(spec):
        return str(Path(spec).resolve())
    if spec and spec.startswith(GITHUB):
        owner, repo, name, local = github_artifact(spec)
        return f"{GITHUB}{owner}/{repo}/{name}?local={quote(str(local.resolve()), safe='/')}"
    return spec


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
    if spec.startswith(GITHUB):
        return _artifact_database(spec, key)
    if not is_shared(spec):
        return DirectoryBasedExampleDatabase(Path(spec) / key)
    from hypothesis.extra.redis import RedisExampleDatabase
    from redis.exceptions import RedisError

    local = DirectoryBasedExampleDatabase(Path(fallback or FALLBACK_DATABASE) / key)
    shared = RedisExampleDatabase(redis_client(spec), key_prefix=f"fuzzgrad:{key}:".encode())
    return _with_fallback(spec, shared, local, (RedisError, OSError), warn, fallback)


def _artifact_database(spec: str, key: str):
    """The GitHub artifact, read-only, then the local folder (which takes every save): the
    artifact is a zip of such a folder, so both hold one target's examples under keys prefixed
    with its name (as in Redis)."""
    from hypothesis.database import (
        DirectoryBasedExampleDatabase,
        GitHubArtifactDatabase,
        MultiplexedDatabase,
        ReadOnlyDatabase,
    )

    owner, repo, name, local = github_artifact(spec)
    cache = local.parent / "github-artifacts" / name
    artifact = _ARTIFACTS.get((owner, repo, name, str(cache)))
    if artifact is None:  # downloaded (at most once a day: Hypothesis caches it) on first fetch
        artifact = GitHubArtifactDatabase(owner, repo, artifact_name=name, path=cache)
        _ARTIFACTS[(owner, repo, name, str(cache))] = artifact
    prefix = f"fuzzgrad:{key}:".encode()
    return MultiplexedDatabase(
        _Prefixed(DirectoryBasedExampleDatabase(local), prefix),
        _Prefixed(ReadOnlyDatabase(artifact), prefix),
    )


class _Prefixed(ExampleDatabase):
    """``db`` with every key prefixed: one target's share of a database of many."""

    def __init__(self, db: ExampleDatabase, prefix: bytes):
        super().__init__()
        self.db, self.prefix = db, prefix

    def __repr__(self) -> str:
        return f"_Prefixed({self.db!r}, {self.prefix!r})"

    def fetch(self, key: bytes):
        return self.db.fetch(self.prefix + key)

    def save(self, key: bytes, value: bytes) -> None:
        self.db.save(self.prefix + key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self.db.delete(self.prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.db.move(self.prefix + src, self.prefix + dest, value)


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

    folder = github_artifact(spec)[3] if spec.startswith(GITHUB) else Path(spec)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"the example database folder {folder} cannot be written ({exc})"
    return None
