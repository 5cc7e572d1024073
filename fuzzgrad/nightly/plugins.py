"""Hypothesis plugins (the ``hypothesis`` entry points of installed packages), paid for at most
once per ``fuzzgrad fuzz`` run, and by default not at all.

``import hypothesis`` runs every installed plugin. One of them is hypothesis-torch's, which
imports all of ``hypothesis_torch`` and with it ``transformers`` wherever that is installed
(seconds; a half-installed ``transformers`` breaks the import). A run's parent process and its
fork server each import Hypothesis, so each would pay. fuzzgrad's own strategies need no plugin:
the one thing hypothesis-torch's hook does for fuzzgrad (letting Hypothesis seed and restore
torch's global random state around each example it runs) fuzzgrad does itself
(`fuzzgrad.engine.torch_random.manage_torch_random`). So by default a run sets Hypothesis's own
switch, ``HYPOTHESIS_NO_PLUGINS=1``, for itself and its workers.

What a user loses: whatever their own Hypothesis plugins register (``register_type_strategy``
for ``st.from_type``/``st.builds`` in their ``inputs=`` strategies, say). With
``FUZZGRAD_HYPOTHESIS_PLUGINS=1`` the plugins run, once: in the fork server that the workers
come from (so every worker has them), never in the parent; with ``--no-isolate``, in the one
process. A ``HYPOTHESIS_NO_PLUGINS`` the user set is left as it is. Under pytest, Hypothesis is
imported by pytest's own plugin loading, before fuzzgrad can say anything: plugins run there as
the user's environment has them.
"""

from __future__ import annotations

import contextlib
import os
import sys

#: Set to 1 to let a run load the installed Hypothesis plugins (once, where it fuzzes).
OPT_IN = "FUZZGRAD_HYPOTHESIS_PLUGINS"
#: Hypothesis's own switch: no entry point runs when it is set before ``import hypothesis``.
SWITCH = "HYPOTHESIS_NO_PLUGINS"
#: Whether `prepare` turned the plugins off here only, for the fork server to load them.
_FOR_CHILDREN = False


def prepare(isolate: bool) -> None:
    """Decide, before anything in this process imports Hypothesis, where a run's plugins load
    (see the module docstring). ``isolate``: the run fuzzes in workers from a fork server."""
    global _FOR_CHILDREN
    if "hypothesis" in sys.modules or os.environ.get(SWITCH):
        return  # already imported (the plugins ran), or the user's own choice
    if not os.environ.get(OPT_IN):
        os.environ[SWITCH] = "1"  # here, and in every process the run starts
    elif isolate:
        os.environ[SWITCH] = "1"  # not in this parent, which never runs a test ...
        _FOR_CHILDREN = True  # ... but in the fork server: `in_fork_server`


def loads_in_fork_server() -> bool:
    """Whether the plugins load in the fork server only (then it is started under
    `in_fork_server`, never implicitly by a worker's start)."""
    return _FOR_CHILDREN


@contextlib.contextmanager
def in_fork_server():
    """Around starting the fork server: give it back the plugins that `prepare` kept from
    this parent process only."""
    if not _FOR_CHILDREN:
        yield
        return
    value = os.environ.pop(SWITCH, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[SWITCH] = value


__all__ = ["OPT_IN", "SWITCH", "in_fork_server", "loads_in_fork_server", "prepare"]
