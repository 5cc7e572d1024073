"""``--database`` specs: ``github-artifact://owner/repo[/name]`` is Hypothesis's
GitHubArtifactDatabase, read-only, beside a local folder that takes every save; a database that
survives from one night to the next through the artifact. No network: GitHub is never asked
(the artifact is put in the download cache, as Hypothesis keeps it, and fetching fails the test).
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    GitHubArtifactDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)
from test_nightly import WRONG_FOR_LARGE_VALUES, by_name, write_targets

from fuzzgrad.integrations.cli import main
from fuzzgrad.nightly import database


@pytest.fixture
def offline(monkeypatch):
    """Fail the test if anything asks GitHub, or writes to the artifact."""

    def refuse(*args, **kwargs):
        raise AssertionError("GitHub was asked (the test is offline)")

    for name in ("_fetch_artifact", "_get_bytes", "save", "delete", "move"):
        monkeypatch.setattr(GitHubArtifactDatabase, name, refuse)
    monkeypatch.setattr(database, "_ARTIFACTS", {})


def parts(db) -> tuple:
    """(local folder database, the artifact's read-only wrapper) of an artifact spec's database."""
    assert isinstance(db, MultiplexedDatabase)
    local, remote = db._wrapped
    return local, remote


def test_the_spec_maps_to_the_artifact_read_only_beside_a_local_folder(tmp_path, offline):
    spec = f"github-artifact://octo/widgets/nightly-db?local={tmp_path / 'db'}"
    db = database.open_database(spec, "mod.Target")
    local, remote = parts(db)
    assert isinstance(local.db, DirectoryBasedExampleDatabase)
    assert local.db.path == tmp_path / "db" and local.prefix == b"fuzzgrad:mod.Target:"
    assert isinstance(remote.db, ReadOnlyDatabase)
    artifact = remote.db._wrapped
    assert isinstance(artifact, GitHubArtifactDatabase)
    assert (artifact.owner, artifact.repo, artifact.artifact_name) == (
        "octo",
        "widgets",
        "nightly-db",
    )
    assert artifact.path == tmp_path / "github-artifacts" / "nightly-db"  # its download cache
    assert not artifact.path.exists()  # nothing downloaded by opening it
    db.save(b"key", b"value")  # saves reach the local folder only
    db.delete(b"key", b"other")
    assert list(local.fetch(b"key")) == [b"value"]
    again = database.open_database(spec, "other.Target")
    assert parts(again)[1].db._wrapped is artifact  # one download per artifact and process


def test_default_artifact_name_and_local_folder():
    assert database.github_artifact("github-artifact://octo/widgets") == (
        "octo",
        "widgets",
        "fuzzgrad-examples",
        Path(".fuzzgrad/fuzzgrad-examples"),
    )
    absolute = database.with_local_folder("github-artifact://octo/widgets/a b+c")
    assert Path(database.github_artifact(absolute)[3]).is_absolute()
    for bad in (
        "github-artifact://octo",
        "github-artifact://o/r/n/extra",
        "github-artifact://o/r?x=1",
    ):
        with pytest.raises(ValueError, match="OWNER/REPO"):
            database.github_artifact(bad)


def _artifact(zip_from: Path, cache: Path) -> None:
    """Put a zip of ``zip_from`` (a local database folder, as upload-artifact zips it) into the
    download cache, stamped now, where GitHubArtifactDatabase looks before downloading."""
    cache.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).isoformat().replace(":", "_")
    with zipfile.ZipFile(cache / f"{stamp}.zip", "w") as zf:
        zf.writestr("README", "fuzzgrad example database")  # never an empty archive
        for path in sorted(zip_from.rglob("*")) if zip_from.exists() else ():
            if path.is_file():
                zf.write(path, path.relative_to(zip_from).as_posix())


def test_a_failure_found_one_night_replays_first_the_next_through_the_artifact(tmp_path, offline):
    folder = write_targets(tmp_path / "targets", {"wrong": WRONG_FOR_LARGE_VALUES})
    nights = []
    for night in ("night1", "night2"):
        local = tmp_path / night / "db"
        cache = tmp_path / night / "github-artifacts" / "fuzzgrad-db"
        previous = tmp_path / "night1" / "db" if night == "night2" else tmp_path / "none"
        _artifact(previous, cache)  # night 1: an empty artifact; night 2: night 1's upload
        report = tmp_path / night / "report"
        code = main(
            ["fuzz", str(folder), "--budget", "30s", "--max-examples", "20", "--no-isolate",
             "--properties", "vjp", "--report", str(report),
             "--database", f"github-artifact://octo/widgets/fuzzgrad-db?local={local}"]
        )  # fmt: skip
        assert code == 1
        nights.append(by_name(report)["wrong"]["failures"][0])
        assert any(local.rglob("*")), "the failure was saved in the local folder"
    first, second = nights
    assert first["signature"] == second["signature"]
    assert first["examples_to_find"] > 1
    assert second["examples_to_find"] == 1  # replayed from the artifact before generating
