"""Start-up pays for what a run uses, once: an installed Hypothesis plugin (hypothesis-torch's
imports transformers wherever that is installed) loads in no process of a run by default, and
once, where the run fuzzes (never also in the parent), when asked for with
FUZZGRAD_HYPOTHESIS_PLUGINS=1; `import fuzzgrad` and `fuzzgrad list` import neither JAX nor
hypothesis_torch. A stand-in plugin writes its process id each time it loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def plugin(tmp_path):
    """A package with a ``hypothesis`` entry point that logs the pid it loads in."""
    site = tmp_path / "site"
    info = site / "standin_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: standin-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[hypothesis]\n_ = standin_plugin:hook\n")
    (site / "standin_plugin.py").write_text(
        "import os\n\n\ndef hook():\n"
        "    with open(os.environ['STANDIN_LOG'], 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
    )
    log = tmp_path / "loads.txt"
    env = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_NO_PLUGINS"}
    env.update(
        PYTHONPATH=os.pathsep.join([str(site), env.get("PYTHONPATH", "")]), STANDIN_LOG=str(log)
    )
    return env, log


def _fuzz(tmp_path, env, *extra):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzgrad", "fuzz", "fuzzgrad.targets.seed", "-k", "MyElementWise",
         "--max-examples", "3", "--database", "none", "--report", str(tmp_path / "r"), *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return proc.pid


def _loads(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_a_run_loads_no_hypothesis_plugin_by_default(plugin, tmp_path):
    env, log = plugin
    _fuzz(tmp_path, env)
    assert _loads(log) == []


def test_asked_for_plugins_load_once_in_the_fork_server_not_the_parent(plugin, tmp_path):
    env, log = plugin
    parent = _fuzz(tmp_path, {**env, "FUZZGRAD_HYPOTHESIS_PLUGINS": "1"})
    (loaded,) = _loads(log)
    assert loaded != parent


def test_the_light_commands_import_neither_jax_nor_hypothesis_torch(tmp_path):
    """(The built-in targets import JAX themselves, for their references: a project's own
    torch-only targets are listed here.)"""
    (tmp_path / "ops.py").write_text(
        "import torch\nimport fuzzgrad as fg\n\n"
        "fg.register(torch.sin, reference=torch.sin, name='sine', inputs=[fg.tensor()])\n"
    )
    code = (
        "import sys\n"
        "import fuzzgrad\n"
        "light = sorted(m for m in ('jax', 'hypothesis_torch') if m in sys.modules)\n"
        "from fuzzgrad.integrations.cli import main\n"
        "assert main(['list', 'ops.py']) == 0\n"
        "listed = sorted(m for m in ('jax', 'hypothesis_torch') if m in sys.modules)\n"
        "print('IMPORTS', light, listed)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    assert "IMPORTS [] []" in out.stdout, out.stdout
