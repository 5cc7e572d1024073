"""pytest plugin (entry point ``pytest11: fuzzgrad``): every registered Function becomes tests.

In a project that configures fuzzgrad (``[tool.fuzzgrad] targets = [...]`` in pyproject.toml,
``--fuzzgrad-targets``, or a ``targets/`` folder whose modules use fuzzgrad), a run without path
arguments collects one item per target and property, ``test_fuzzgrad[MyOp-vjp]``, marked
``fuzzgrad``. Elsewhere the plugin does nothing, and its import costs nothing: torch, JAX and
Hypothesis load only when fuzzgrad items are collected or run.

The properties of one target share a single fuzz run (`fuzz_target` checks them all on each
case), done by whichever process first runs one of its items, in a worker process of its own
(``--no-fuzzgrad-isolate`` to fuzz in the test process), so that a target that segfaults or
aborts fails its items with a reproducer instead of ending the session. Under xdist a target's
items share an ``xdist_group`` (the plugin turns xdist's default ``--dist load`` into
``loadgroup``), and whichever worker fuzzes a target first shares the result with the others
through the session's temporary folder under a file lock, so a target is fuzzed once even where
the scheduler spreads its items: JAX compilation and torch warm-up make up much of a short run,
so fuzzing each property separately costs more than it gains in balance.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import pytest

from fuzzgrad.integrations.profiles import (
    DATABASE,
    DEFAULT_PROFILE,
    PROFILES,
    Profile,
    _active,
    default_profile_name,
    from_hypothesis,
    register_hypothesis_profiles,
)

#: The fuzzgrad item marker; ``-m fuzzgrad`` selects (or ``-m "not fuzzgrad"`` skips) them all.
MARKER = "fuzzgrad"


_KEY = pytest.StashKey["_Setup"]()
_PROFILE = pytest.StashKey["Profile"]()
_RUNS = pytest.StashKey["_Runs"]()


@dataclass(frozen=True)
class _Setup:
    """Resolved once per process at configure time."""

    specs: tuple[str, ...]  # modules, files or folders that register targets
    source: str  # where they were named, for the report header
    explicit: bool  # named by --fuzzgrad-targets: collect even when paths are given


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzzgrad", "fuzzgrad: fuzz registered autograd Functions")
    group.addoption(
        "--fuzzgrad-targets",
        metavar="MODULES_OR_PATHS",
        help="comma-separated modules, .py files or folders that register targets "
        "(default: [tool.fuzzgrad] targets in pyproject.toml, else the rootdir's targets/)",
    )
    group.addoption(
        "--fuzzgrad-scan",
        metavar="MODULES_OR_PATHS",
        help="comma-separated packages, modules, .py files or folders whose unregistered custom "
        "Functions get items too, with contracts inferred as `fuzzgrad scan` infers them",
    )
    group.addoption(
        "--fuzzgrad-profile",
        metavar="NAME",
        help="ci, dev, nightly or a registered Hypothesis profile (default: $HYPOTHESIS_PROFILE, "
        "else the fuzzgrad_profile ini value, else [tool.fuzzgrad] profile in pyproject.toml, "
        f"else {DEFAULT_PROFILE}, or ci where Hypothesis detects a CI system)",
    )
    group.addoption(
        "--fuzzgrad-max-examples",
        type=int,
        metavar="N",
        help="examples per target, overriding the profile's",
    )
    group.addoption(
        "--fuzzgrad-report",
        metavar="DIR",
        help="write reproducers here (default: a fuzzgrad/ folder under pytest's basetemp)",
    )
    group.addoption(
        "--fuzzgrad-isolate",
        dest="fuzzgrad_isolate",
        action="store_true",
        default=True,
        help="fuzz each target in a worker process, so that one that segfaults or aborts fails "
        "its own tests (with a reproducer) instead of ending the session (the default)",
    )
    group.addoption(
        "--no-fuzzgrad-isolate",
        dest="fuzzgrad_isolate",
        action="store_false",
        help="fuzz in the test process itself (for debugging with pdb or a profiler)",
    )
    group.addoption(
        "--fuzzgrad-slow",
        action="store_true",
        help="also fuzz targets registered slow=True (on by default in the nightly profile)",
    )
    parser.addini("fuzzgrad_profile", "the default fuzzgrad profile (ci, dev, nightly)")


_RESOLVER = pytest.StashKey[Any]()
_LOADGROUP = "fuzzgrad_loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "dist", None) == "load" and config.pluginmanager.hasplugin("xdist"):
        # xdist's default for -n: the same, but each fuzzgrad target's items stay together
        config.option.dist = "loadgroup"
    if getattr(config, "workerinput", {}).get(_LOADGROUP):
        # an xdist worker parses the command line, not the controller's choice: told by the
        # controller (pytest_configure_node), it names its items by group as under --dist loadgroup
        config.option.loadgroup = True
    resolver = config.stash[_RESOLVER] = lambda: _profile(config)
    _active.append(resolver)
    config.addinivalue_line("markers", f"{MARKER}: a test generated by fuzzgrad for a target")
    config.addinivalue_line("markers", "slow: a fuzzgrad target registered slow=True")
    setup = _find_setup(config)
    if setup is not None:
        config.stash[_KEY] = setup
        _profile(config)  # an unknown profile is a usage error before anything runs


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, controller side) Tell each worker that this session distributes by group."""
    if node.config.getvalue("dist") == "loadgroup":
        node.workerinput[_LOADGROUP] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    resolver = config.stash.get(_RESOLVER, None)
    if resolver in _active:
        _active.remove(resolver)
    runs = config.stash.get(_RUNS, None)
    if runs is not None:
        runs.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    setup = config.stash.get(_KEY, None)
    if setup is None:
        return None
    return (
        f"fuzzgrad: {', '.join(setup.specs)} (from {setup.source}); {_profile(config).describe()}"
    )


@pytest.hookimpl(tryfirst=True)  # before -m/-k deselect, so they apply to fuzzgrad items too
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    setup = config.stash.get(_KEY, None)
    if setup is None or not _wanted(config, setup):
        return
    root = Targets.from_parent(session, name="fuzzgrad", nodeid="fuzzgrad")
    # Fuzz items first: they are the long ones, and xdist balances best starting with them.
    items[:0] = list(session.genitems(root))


# -- configuration ----------------------------------------------------------------------------
def _find_setup(config: pytest.Config) -> _Setup | None:
    setup = _configured_setup(config)
    scan = config.getoption("fuzzgrad_scan")
    if not scan:
        return setup
    import tempfile

    from fuzzgrad.errors import FuzzgradError
    from fuzzgrad.integrations.scan.command import infer_registrations

    here = config.invocation_params.dir
    specs = [_resolve(s.strip(), here, config.rootpath) for s in scan.split(",") if s.strip()]
    try:
        coverage, _, written = infer_registrations(
            specs, Path(tempfile.mkdtemp(prefix="fuzzgrad-scan-"))
        )
    except FuzzgradError as exc:
        raise pytest.UsageError(str(exc)) from None
    source = f"--fuzzgrad-scan: {coverage.line()}"
    scanned = (str(written),) if written is not None else ()
    if setup is None:
        return _Setup(scanned, source, True) if scanned else None
    return _Setup(setup.specs + scanned, f"{setup.source}; {source}", True)


def _configured_setup(config: pytest.Config) -> _Setup | None:
    root = config.rootpath
    option = config.getoption("fuzzgrad_targets")
    if option:
        here = config.invocation_params.dir
        specs = [s.strip() for s in option.split(",") if s.strip()]
        return _Setup(tuple(_resolve(s, here, root) for s in specs), "--fuzzgrad-targets", True)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        from fuzzgrad.errors import FuzzgradError
        from fuzzgrad.registry.project import configured_targets, on_sys_path

        try:
            configured = configured_targets(pyproject)
        except FuzzgradError as exc:
            raise pytest.UsageError(str(exc)) from None
        if configured is not None:
            # Module names in it are found from the project's folder, as `fuzzgrad fuzz` does.
            on_sys_path(configured.root).add()
            return _Setup(configured.specs, "pyproject.toml", False)
    folder = root / "targets"
    if folder.is_dir() and _uses_fuzzgrad(folder):
        return _Setup((str(folder),), "the targets/ folder", False)
    return None


def _resolve(spec: str, *bases: Path) -> str:
    """A path that exists (relative to the first base that has it), else a module name."""
    for base in bases:
        path = base / spec
        if path.exists():
            return str(path)
    return spec


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    from fuzzgrad.registry.project import ConfigError, fuzzgrad_table

    try:
        return fuzzgrad_table(path)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _uses_fuzzgrad(folder: Path, limit: int = 200) -> bool:
    """Whether a ``targets/`` folder is fuzzgrad's: some module in it mentions fuzzgrad.

    Guards unrelated projects that happen to have a ``targets/`` folder from having its files
    imported by the plugin.
    """
    for n, file in enumerate(sorted(folder.rglob("*.py"))):
        if n >= limit:
            break
        with contextlib.suppress(OSError):
            if b"fuzzgrad" in file.read_bytes():
                return True
    return False


def _profile(config: pytest.Config) -> Profile:
    """The session's fuzzing budget: the Hypothesis profile chosen by ``--fuzzgrad-profile``,
    ``--hypothesis-profile``, ``$HYPOTHESIS_PROFILE``, the ``fuzzgrad_profile`` ini value or
    ``[tool.fuzzgrad] profile`` (``dev`` by default, ``ci`` where Hypothesis has loaded its
    ``ci`` profile, as it does on a CI system); ``ci``, ``dev`` and ``nightly`` are
    registered where the project has none of its own; ``--hypothesis-seed`` seeds every target."""
    if _PROFILE in config.stash:
        return config.stash[_PROFILE]
    table = _pyproject_table(config.rootpath / "pyproject.toml") or {}
    name = (
        config.getoption("fuzzgrad_profile")
        or config.getoption("hypothesis_profile", None)
        or os.environ.get("HYPOTHESIS_PROFILE")
        or config.getini("fuzzgrad_profile")
        or table.get("profile")
        or default_profile_name()
    )
    if not isinstance(name, str):
        raise pytest.UsageError(f"fuzzgrad: [tool.fuzzgrad] profile must be a name, got {name!r}")
    register_hypothesis_profiles()
    profile = from_hypothesis(name)
    if profile is None:
        raise pytest.UsageError(
            f"fuzzgrad: unknown profile {name!r}; use {', '.join(PROFILES)} or register a "
            "Hypothesis profile of that name (settings.register_profile) in a conftest.py."
        )
    count = config.getoption("fuzzgrad_max_examples")
    if count is not None:
        if count < 1:
            raise pytest.UsageError(f"fuzzgrad: --fuzzgrad-max-examples must be >= 1, got {count}")
        profile = replace(profile, max_examples=count)
    seed = config.getoption("hypothesis_seed", None)
    if seed is not None:
        profile = replace(profile, seed=int(seed), derandomize=False)
    if profile.database and profile.seed is None:
        profile = replace(profile, database_dir=config.rootpath / DATABASE)
    config.stash[_PROFILE] = profile
    return profile


def _properties(config: pytest.Config, target) -> list[str] | None:
    """The properties a target is fuzzed for in this session: its own (or the defaults), plus
    the profile's opt-in ones (None: just those)."""
    opt_in = _profile(config).opt_in
    if not opt_in:
        return None
    from fuzzgrad.properties import DEFAULT_PROPERTIES

    own = target.options.get("properties") or DEFAULT_PROPERTIES
    return list(dict.fromkeys([*own, *opt_in]))


def _wanted(config: pytest.Config, setup: _Setup) -> bool:
    """Collect fuzz items for whole-project runs, not when the user named some test paths."""
    if setup.explicit or config.args_source is not pytest.Config.ArgsSource.ARGS:
        return True
    here = config.invocation_params.dir
    for arg in config.args:
        path = (here / arg.split("::")[0]).resolve()
        if path == config.rootpath or path in config.rootpath.parents:
            return True
    return False


# -- collection -------------------------------------------------------------------------------
class Targets(pytest.Collector):
    """The synthetic collector that holds one `TargetNode` per registered Function."""

    def collect(self):
        from fuzzgrad.registry.discovery import load_targets

        setup = self.config.stash[_KEY]
        for target in load_targets(list(setup.specs)):
            yield TargetNode.from_parent(self, name=target.name, target=target)


class TargetNode(pytest.Collector):
    """One registered Function; its items are its properties, which share one fuzz run."""

    def __init__(self, *, target, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self):
        from fuzzgrad.properties.checker import Checker

        for prop in Checker(self.target, _properties(self.config, self.target)).properties:
            yield FuzzItem.from_parent(self, name=f"test_fuzzgrad[{self.name}-{prop}]", prop=prop)


class FuzzItem(pytest.Item):
    """One property of one target: passes, fails with the shrunk case, or is a known bug."""

    def __init__(self, *, prop: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prop = prop
        self.target = cast(TargetNode, self.parent).target
        self.add_marker(MARKER)
        # one worker fuzzes a target once for all its items (xdist's --dist loadgroup)
        self.add_marker(pytest.mark.xdist_group(name=f"fuzzgrad:{self.target.key}"))
        # -k matches what `fuzzgrad fuzz -k` matches (name, module or file), and the property
        self.extra_keyword_matches.update({self.target.name, self.target.display_module, prop})
        if self.target.slow:
            self.add_marker("slow")
            if not (
                self.config.getoption("fuzzgrad_slow") or _profile(self.config).name == "nightly"
            ):
                self.add_marker(
                    pytest.mark.skip(
                        reason=f"{self.target.name} is registered slow=True: run it with "
                        "--fuzzgrad-slow or --fuzzgrad-profile nightly"
                    )
                )
        if self.target.known_bug_in(self.prop):
            from fuzzgrad.integrations.messages import TargetFailed

            self.add_marker(
                pytest.mark.xfail(reason=self.target.xfail, strict=True, raises=TargetFailed)
            )

    def runtest(self) -> None:
        from fuzzgrad.integrations.messages import (
            TargetCrashed,
            TargetFailed,
            describe_error,
            describe_failures,
        )

        result = _runs(self.config).result(self.target)
        if result.get("error"):
            raise TargetCrashed(describe_error(result["name"], result["error"]))
        from fuzzgrad.report.common import failure_properties

        failing = sorted({p for f in result["failures"] for p in failure_properties(f)})
        if self.prop in failing:
            raise TargetFailed(describe_failures(result, [self.prop]))
        known = [p for p in failing if self.target.known_bug_in(p)]
        if self.target.known_bug_in(self.prop) and known and not self.config.option.runxfail:
            # The known bug is in the target, not in each property: it is still there.
            raise TargetFailed(
                f"{self.target.name}: {self.prop!r} holds; the known bug shows in "
                f"{', '.join(map(repr, known))}.\n\n{describe_failures(result)}"
            )

    def repr_failure(self, excinfo, style=None):
        from fuzzgrad.integrations.messages import TargetCrashed, TargetFailed

        if isinstance(excinfo.value, (TargetFailed, TargetCrashed)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        import inspect

        obj = self.target.function or self.target.fn
        try:
            lineno = inspect.getsourcelines(obj)[1] - 1
        except (OSError, TypeError):
            lineno = None
        return self.target.source_file or self.path, lineno, self.name


# -- running ----------------------------------------------------------------------------------
def _runs(config: pytest.Config) -> _Runs:
    if _RUNS not in config.stash:
        config.stash[_RUNS] = _Runs(config)
    return config.stash[_RUNS]


class _Runs:
    """One fuzz run per target per session, shared by its items and by xdist workers."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        factory = getattr(config, "_tmp_path_factory", None)  # what xdist itself relies on
        if factory is None:  # -p no:tmpdir
            import tempfile

            shared = Path(tempfile.mkdtemp(prefix="fuzzgrad-"))
        else:
            basetemp = factory.getbasetemp()
            shared = basetemp.parent if hasattr(config, "workerinput") else basetemp
        self.directory = shared / "fuzzgrad"
        self.directory.mkdir(parents=True, exist_ok=True)
        report = config.getoption("fuzzgrad_report")
        self.report_dir = Path(report).resolve() if report else self.directory / "reproducers"
        self.profile = _profile(config)
        self.results: dict[str, dict[str, Any]] = {}
        workers = getattr(config, "workerinput", {}).get("workercount")
        if workers:
            _share_cores(int(workers))
        self.isolated = None
        if config.getoption("fuzzgrad_isolate"):
            from fuzzgrad.nightly.isolated import Isolated

            database = self.profile.database_dir
            self.isolated = Isolated(
                list(config.stash[_KEY].specs),
                self.report_dir,
                self.directory / f".work-{os.getpid()}",
                database=str(database) if database else None,
                threads=max(1, (os.cpu_count() or 1) // max(int(workers or 1), 1)),
            )

    def close(self) -> None:
        if self.isolated is not None:
            self.isolated.close()

    def result(self, target) -> dict[str, Any]:
        """The target's JSON result, fuzzing it unless this session already has. A target's
        items share an ``xdist_group``, so under ``--dist loadgroup`` one worker runs them all;
        where the scheduler spreads them anyway (``--dist load``, ``worksteal``, or pytest 9.2
        with xdist 3.8, whose group suffix no longer reaches the node id), the first worker's
        result is shared with the others through the session's folder under a file lock."""
        from fuzzgrad.registry.target import file_safe

        if target.key not in self.results:
            path = self.directory / f"{file_safe(target.key)}.json"
            with _locked(path.with_suffix(".lock")):
                if path.exists():
                    data = json.loads(path.read_text(encoding="utf-8"))
                else:
                    data = self._fuzz(target)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
                    os.replace(tmp, path)
            self.results[target.key] = data
        return self.results[target.key]

    def _fuzz(self, target) -> dict[str, Any]:
        from fuzzgrad.engine.runner import fuzz_target

        p = self.profile
        properties = _properties(self.config, target)
        if self.isolated is not None:
            return self.isolated.fuzz(
                target,
                max_examples=p.max_examples,
                derandomize=p.derandomize,
                seed=p.seed,
                properties=properties,
            )
        return fuzz_target(
            target,
            max_examples=p.max_examples,
            derandomize=p.derandomize,
            seed=p.seed,
            properties=properties,
            report_dir=self.report_dir,
            database_dir=p.database_dir,
        ).to_json()


def _share_cores(workers: int) -> None:
    """Under xdist, each worker's torch gets its share of the cores: by default every worker
    takes them all, and on a busy machine their thread pools then thrash."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(workers, 1)))


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock between processes (released by the OS if its holder dies)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; a shared target is fuzzed twice, same verdict
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
