"""Correct Functions, part 3: kernels that work in blocks, right at every size (the twins of
`buggy_sizes`)."""

import importlib

import fuzzgrad as fg

try:  # the tests folder is on sys.path (pytest, bench/)
    from corpus._blocked import REFERENCES, BlockedLogSumExpBase
except ImportError:  # loaded by path alone: its own folder is on sys.path while it imports
    _blocked = importlib.import_module("_blocked")
    REFERENCES, BlockedLogSumExpBase = _blocked.REFERENCES, _blocked.BlockedLogSumExpBase


@fg.register(**REFERENCES)
class BlockedLogSumExp(BlockedLogSumExpBase):
    """Online logsumexp in blocks of 64, each block's sum rescaled to the running maximum."""
