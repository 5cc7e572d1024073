"""The README's commands are what CI runs: they cannot drift apart (issue: a README test command
that failed on a fresh machine while CI, installing more on its own, passed)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """Every command line of the README's bash blocks marked ``<!-- ci ... -->``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- ci\b[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def ci_lines() -> list[str]:
    return [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]


def test_every_readme_command_is_run_by_ci_word_for_word():
    commands = readme_commands()
    assert any(c.startswith("python3 -m venv") and "fuzzgrad fuzz" in c for c in commands)
    assert "pytest -n auto" in commands
    missing = [c for c in commands if c not in ci_lines()]
    assert not missing, f"README commands that .ci/run does not run as written: {missing}"


def test_ci_installs_and_tests_only_as_the_readme_says():
    """Every install or test command in .ci/run is one of the README's (the wheel check aside)."""
    commands = set(readme_commands())
    ours = [
        line
        for line in ci_lines()
        if re.match(r"(python3? -m venv|pip install|apt-get|pytest|fuzzgrad )", line)
    ]
    assert ours, ".ci/run runs no install or test command"
    extra = [line for line in ours if line not in commands]
    assert not extra, f".ci/run installs or tests in ways the README does not say: {extra}"


def test_dev_extra_has_every_package_the_tests_import():
    """A fresh `pip install -e ".[dev]"` runs the tests: what they import unconditionally is
    in the dev extra (optional services use pytest.importorskip with the install hint)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower().replace("-", "_")
        for req in project["dependencies"] + project["optional-dependencies"]["dev"]
    }
    declared |= {"pytest", "hypothesis", "torch", "jax", "numpy", "xdist", "_pytest"}

    def skips(path: Path) -> set[str]:
        return set(re.findall(r"importorskip\(\s*\"(\w+)", path.read_text()))

    shared = skips(ROOT / "tests" / "conftest.py")  # fixtures that skip without a package
    for path in sorted((ROOT / "tests").rglob("*.py")):
        skipped = shared | skips(path)
        text = path.read_text()
        for match in re.finditer(r"^\s*(?:from (\w+)[\w.]* import |import (\w+))", text, re.M):
            name = match.group(1) or match.group(2)
            if name in ("fuzzgrad", "bench", "corpus", "__future__") or _stdlib(name):
                continue
            if name in skipped or (path.parent / f"{name}.py").exists():  # or a sibling module
                continue
            if any(parent.name == name for parent in path.parents):  # its own test package
                continue
            assert name.lower() in declared, f"{path.name} imports {name!r}, not in the dev extra"


def test_the_wheel_lists_every_package_on_disk():
    """pyproject lists fuzzgrad's packages by hand (strategies/ and targets/ live outside the
    fuzzgrad/ folder), so a new subpackage must be added there or a wheel install lacks it (CI
    failed so: `fuzzgrad.integrations.scan` was missing from the wheel)."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    folders = {name: Path(folder) for name, folder in setup["package-dir"].items()}
    on_disk = set()
    for name, folder in folders.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in parts:
                on_disk.add(".".join((name, *parts)))
    missing = sorted(on_disk - listed)
    assert not missing, (
        f"packages on disk missing from pyproject's [tool.setuptools] packages: {missing}"
    )


def _stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names


def test_the_property_table_lists_every_property_and_says_which_are_opt_in():
    """Adding a property is adding a module and a row in the documentation's table."""
    from fuzzgrad.properties import catalog

    table = (ROOT / "docs" / "reference" / "properties.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): line for line in table.splitlines() if (m := re.match(r"\| `(\w+)` \|", line))
    }
    assert set(rows) == set(catalog()), set(rows) ^ set(catalog())
    for name, prop in catalog().items():
        assert ("*opt-in*" in rows[name]) == (not prop.default), name
