"""Every code block of the README and the documentation (docs/) is executed or checked, so the
docs cannot drift from what fuzzgrad does.

- A ``python`` block runs: a page's blocks run in order as one module, in a folder of its own;
  every target the page registers must pass a short derandomized run. A block marked
  ``<!-- not-run: why -->`` is a sketch (its ``...`` stand for the reader's code) and is only
  compiled; one marked ``<!-- file: NAME -->`` is written to that file instead (the tutorial's
  ``ops.py``, then its fixed version).
- A ``bash`` block marked ``<!-- run: exit N -->`` runs, in the page's folder, and must exit N
  (the tutorial's commands, word for word). In any other ``bash`` block, each ``fuzzgrad ...``
  line must parse with fuzzgrad's own command line.
- ``toml`` and ``yaml`` blocks must parse.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzzgrad.engine.runner import fuzz_target

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?:<!-- (?P<mark>[\w-]+)(?::\s*(?P<arg>[^>]*?))? -->\s*\n)?"
    r"```(?P<lang>\w*)\n(?P<code>.*?)```",
    re.S,
)


@dataclass
class Block:
    lang: str
    code: str
    mark: str | None
    arg: str | None
    line: int


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return [
        Block(
            m["lang"],
            m["code"],
            m["mark"],
            (m["arg"] or "").strip() or None,
            text.count("\n", 0, m.start("code")),
        )
        for m in BLOCK.finditer(text)
    ]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_page_has_its_blocks_found():
    """The block pattern sees every fenced block: as many as there are fences, halved."""
    for page in PAGES:
        fences = len(re.findall(r"^```", page.read_text(encoding="utf-8"), re.M))
        assert fences % 2 == 0 and len(blocks(page)) == fences // 2, _id(page)


@pytest.mark.parametrize("page", [p for p in PAGES if "tutorial" not in p.name], ids=_id)
def test_the_python_blocks_run_and_their_targets_pass(page, tmp_path, monkeypatch):
    code = [b for b in blocks(page) if b.lang == "python"]
    runnable = [b for b in code if b.mark not in ("not-run", "file")]
    for b in code:
        if b.mark == "not-run":
            assert b.arg, f"{_id(page)}:{b.line}: say why a block does not run"
            compile(b.code, f"{page}:{b.line}", "exec")
    if not runnable:
        return
    monkeypatch.chdir(tmp_path)
    lines = [""] * (max(b.line + b.code.count("\n") for b in runnable) + 1)
    for b in runnable:  # each block at its own lines: tracebacks point into the page
        block = b.code.splitlines()
        lines[b.line : b.line + len(block)] = block
    module = types.ModuleType(f"fuzzgrad_docs_{page.stem}")
    sys.modules[module.__name__] = module
    try:
        exec(compile("\n".join(lines), str(page), "exec"), module.__dict__)  # noqa: S102
        for name, value in module.__dict__.items():  # the page's own pytest-style tests
            if name.startswith("test_") and callable(value):
                value()
        for target in module.__dict__.get("__fuzzgrad_targets__", {}).values():
            result = fuzz_target(target, max_examples=25, derandomize=True)
            assert result.status == "passed", (
                _id(page),
                target.name,
                result.error,
                result.failures,
            )
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_the_commands_parse_and_the_config_blocks_load(page):
    from fuzzgrad.integrations.cli import _parser

    parser = _parser()
    for b in blocks(page):
        where = f"{_id(page)}:{b.line}"
        if b.lang == "bash" and b.mark != "run":
            for line in b.code.splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["fuzzgrad"]:
                    try:
                        parser.parse_args(words[1:])
                    except SystemExit as exc:  # argparse's way of saying no
                        pytest.fail(f"{where}: {line!r} does not parse (exit {exc.code})")
        elif b.lang == "toml":
            tomllib.loads(b.code)
        elif b.lang == "yaml":
            yaml = pytest.importorskip("yaml")
            yaml.safe_load(b.code)


def test_the_tutorial_runs_word_for_word(tmp_path):
    """The tutorial's files are written and its commands run in order, in an empty folder, each
    exiting as the page says: a bug found, replayed, kept as a failing regression test, fixed."""
    page = ROOT / "docs" / "tutorial.md"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("PYTHONPATH", None)
    ran = []
    for b in blocks(page):
        where = f"tutorial.md:{b.line}"
        if b.mark == "file":
            (tmp_path / b.arg).write_text(b.code)
        elif b.lang == "python":
            done = subprocess.run(
                [sys.executable, "-c", b.code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, (where, done.stderr[-2000:])
        elif b.mark == "run":
            expected = int(re.fullmatch(r"exit (\d+)", b.arg)[1])
            done = subprocess.run(
                ["bash", "-c", b.code], cwd=tmp_path, env=env, capture_output=True, text=True
            )
            assert done.returncode == expected, (
                where,
                b.code,
                done.stdout[-3000:],
                done.stderr[-3000:],
            )
            ran.append(b.code.strip())
    assert ran[0] == "fuzzgrad fuzz ops.py" and len(ran) >= 5, ran
